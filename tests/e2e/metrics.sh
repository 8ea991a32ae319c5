#!/bin/bash
# Prometheus metrics on every daemon (issue 10). `caudal up` starts a whole
# cluster (namenode, 3 datanodes, jobtracker, 3 tasktrackers, the mount)
# with a /metrics port for each on fresh ports; files are written and read
# through the mount and a wordcount job runs. Then, for every daemon:
# `promtool check metrics` passes on its /metrics, and the values moved as
# they should (datanodes wrote at least the bytes written times the
# replication, the namenode counts the files and directories made, the
# jobtracker a SUCCEEDED job and data-local maps, the tasktrackers the
# attempts, the mount its bytes and operations). A real Prometheus (its
# own port and storage folder, started and killed by pid) scrapes them all:
# `up` is 1 for every target and a caudal_ metric of each daemon kind is
# there. Abuse: a flood of connections to a metrics port is cut at the
# HTTP layer's per-address cap and the daemon keeps serving; unknown paths
# answer 404, other methods 405.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
source "$(dirname "$0")/job_lib.sh"
command -v promtool >/dev/null && command -v prometheus >/dev/null ||
	fail "promtool and prometheus are not installed (Debian package 'prometheus', deps.txt)"

M=$T/mnt
read -r -a P <<<"$(free_ports 2)"
export CAUDAL_MOUNT=$M CAUDAL_JOBS=yes CAUDAL_MOUNT_METRICS_PORT=${P[0]}
PROM_PORT=${P[1]}
cluster_up >"$T/up.out"
cat "$T/up.out"
register_mount "$M"
mountpoint -q "$M" || fail "caudal up did not mount '$M'"
jobs_up

say "caudal up says where every daemon's /metrics are"
line=$(grep '^metrics: ' "$T/up.out") || fail "no metrics line from caudal up"
for d in namenode dn1 dn2 dn3 jobtracker tt1 tt2 tt3 mount; do
	assert_contains "$line" " $d=" "caudal up's metrics line"
done
# NAME=SCHEME://HOST:PORT/metrics pairs: with TLS (caudal up's default) the
# namenode's and datanodes' ports are HTTPS, with the cluster's CA
declare -A ADDR SCHEME
for pair in $(echo "${line#metrics: }" | tr ',' ' '); do
	url=${pair#*=}
	SCHEME[${pair%%=*}]=${url%%://*}
	url=${url#*://}
	ADDR[${pair%%=*}]=${url%/metrics}
done
assert_eq "${SCHEME[namenode]}" https "the namenode's scheme with TLS"
assert_eq "${SCHEME[dn1]}" https "a datanode's scheme with TLS"
assert_eq "${SCHEME[jobtracker]}" http "the jobtracker's scheme"
CA=$CAUDAL_HOME/certs/ca.crt
url() { echo "${SCHEME[$1]}://${ADDR[$1]}$2"; }
assert_eq "${ADDR[dn2]}" "127.0.0.3:$CAUDAL_DN_HTTP_PORT" "dn2's metrics address"
assert_eq "${ADDR[tt3]}" "127.0.0.4:$CAUDAL_TT_HTTP_PORT" "tt3's metrics address"
assert_eq "${ADDR[mount]}" "127.0.0.1:$CAUDAL_MOUNT_METRICS_PORT" "the mount's metrics address"

scrape() { curl -sf --max-time 10 --cacert "$CA" "$(url "$1" /metrics)"; }
# The value of sample NAME{LABELS} (exact text before the value) of daemon D.
value() { # D SAMPLE
	scrape "$1" | awk -v s="$2" 'index($0, s " ") == 1 { print $2; found = 1 } END { if (!found) print "none" }'
}
# Sum of a sample over daemons.
sum() { # SAMPLE D...
	local s=$1 t=0 v
	shift
	for d in "$@"; do
		v=$(value "$d" "$s")
		[ "$v" != none ] || fail "$d has no sample '$s'"
		t=$(awk -v a="$t" -v b="$v" 'BEGIN { printf "%.0f", a + b }')
	done
	echo "$t"
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }' || fail "${3:-value}: $1 < $2"; }

say "work: files written and read through the mount, a directory tree, a job"
nn_files0=$(value namenode caudal_namenode_files)
mkfile "$T/big" $((3 * BS + 12345))
mkdir -p "$M/m/a/b" "$M/data"
cp "$T/big" "$M/m/big"
for i in 1 2 3 4 5; do echo "small $i" >"$M/m/a/s$i"; done
cat "$M/m/big" >"$T/back"
assert_same_file "$T/big" "$T/back"
gen_text "$T/words.txt" 20000 7
cp "$T/words.txt" "$M/data/words.txt"
wrote=$(($(stat -c %s "$T/big") + $(stat -c %s "$T/words.txt")))
job_submit wc "input = /data/words.txt
output = /out/wc
map = wordcount
reduce = sum
reduces = 2"
job_expect wc SUCCEEDED 120

say "promtool check metrics passes on every daemon"
for d in "${!ADDR[@]}"; do
	scrape "$d" >"$T/$d.prom" || fail "cannot fetch /metrics of $d at ${ADDR[$d]}"
	# promtool's lint notes are printed; its exit status is the verdict
	promtool check metrics <"$T/$d.prom" >"$T/$d.lint" 2>&1 ||
		fail "promtool check metrics failed for $d: $(head -20 "$T/$d.lint")"
	grep -q '^# TYPE caudal_' "$T/$d.prom" || fail "$d exports no caudal_ metric"
	grep -q '^process_resident_memory_bytes ' "$T/$d.prom" || fail "$d has no process metrics"
done

say "values moved as expected"
repl=3
dn_written=$(sum caudal_datanode_bytes_written_total dn1 dn2 dn3)
ge "$dn_written" $((wrote * repl)) "bytes written on the datanodes (vs bytes written x $repl)"
ge "$(sum caudal_datanode_blocks_written_total dn1 dn2 dn3)" $((4 * repl)) "blocks written"
# big was read back through the mount, the job read words.txt
ge "$(sum caudal_datanode_bytes_read_total dn1 dn2 dn3)" "$(stat -c %s "$T/big")" "bytes read from the datanodes"
assert_eq "$(sum 'caudal_datanode_checksum_errors_total{source="disk"}' dn1 dn2 dn3)" 0 "checksum errors"
assert_eq "$(value dn1 'caudal_datanode_volumes{state="ok"}')" 1 "dn1's healthy volumes"
ge "$(value namenode caudal_namenode_files)" $((nn_files0 + 7)) "files on the namenode"
ge "$(value namenode caudal_namenode_directories)" 5 "directories on the namenode"
ge "$(value namenode caudal_namenode_inline_files)" 5 "inline files"
ge "$(value namenode caudal_namenode_blocks)" 4 "blocks on the namenode"
assert_eq "$(value namenode 'caudal_namenode_datanodes{state="live"}')" 3 "live datanodes"
assert_eq "$(value namenode caudal_namenode_blocks_missing)" 0 "missing blocks"
assert_eq "$(value namenode "caudal_namenode_datanode_live{datanode=\"127.0.0.3:$CAUDAL_DN_PORT\"}")" 1 "dn2 live on the namenode"
ge "$(value namenode "caudal_namenode_datanode_blocks{datanode=\"127.0.0.2:$CAUDAL_DN_PORT\"}")" 4 "dn1's blocks on the namenode"
ge "$(value namenode 'caudal_namenode_rpc_seconds_count{service="ClientProtocol",method="Create"}')" 7 "Create calls"
ge "$(value namenode 'caudal_namenode_rpc_seconds_count{service="DatanodeProtocol",method="Heartbeat"}')" 3 "heartbeats"
assert_eq "$(value jobtracker 'caudal_jobtracker_jobs_completed_total{state="SUCCEEDED"}')" 1 "succeeded jobs"
maps=$(job_field wc maps)
# (at least: an attempt retried on a loaded machine starts again)
ge "$(value jobtracker 'caudal_jobtracker_attempts_started_total{kind="map",locality="data-local"}')" \
	"$(job_field wc data_local_maps)" "data-local map attempts"
ge "$(value jobtracker 'caudal_jobtracker_rpc_seconds_count{service="JobProtocol",method="Report"}')" 1 "Report calls"
ge "$(sum 'caudal_tasktracker_attempts_total{kind="map",result="succeeded"}' tt1 tt2 tt3)" "$maps" "maps run"
ge "$(sum 'caudal_tasktracker_attempts_total{kind="reduce",result="succeeded"}' tt1 tt2 tt3)" 2 "reduces run"
assert_eq "$(value tt1 'caudal_tasktracker_slots{state="total"}')" 2 "tt1's slots"
ge "$(value mount caudal_mount_bytes_written_total)" "$wrote" "bytes written through the mount"
ge "$(value mount caudal_mount_bytes_read_total)" "$(stat -c %s "$T/big")" "bytes read through the mount"
ge "$(value mount 'caudal_mount_op_seconds_count{op="mkdir"}')" 3 "mkdirs through the mount"
ge "$(value mount 'caudal_mount_op_seconds_count{op="write"}')" 1 "writes through the mount"
hits=$(value mount 'caudal_mount_dcache_lookups_total{result="hit"}')
miss=$(value mount 'caudal_mount_dcache_lookups_total{result="miss"}')
ge "$(awk -v a="$hits" -v b="$miss" 'BEGIN { print a + b }')" 1 "directory cache lookups"
hits=$(value mount 'caudal_mount_acache_lookups_total{result="hit"}')
miss=$(value mount 'caudal_mount_acache_lookups_total{result="miss"}')
ge "$(awk -v a="$hits" -v b="$miss" 'BEGIN { print a + b }')" 1 "attribute cache lookups"

say "a real Prometheus scrapes the whole cluster"
mkdir -p "$T/prom"
{
	echo "global: {scrape_interval: 1s, scrape_timeout: 1s}"
	echo "scrape_configs:"
	for kind in namenode datanode jobtracker tasktracker mount; do
		echo "  - job_name: $kind"
		case $kind in namenode | datanode)
			# HTTPS with the cluster's CA (the server asks for a
			# client certificate but does not need one for /metrics)
			echo "    scheme: ${SCHEME[namenode]}"
			echo "    tls_config: {ca_file: '$CA'}"
			;;
		esac
		echo "    static_configs:"
		echo "      - targets:"
		for d in "${!ADDR[@]}"; do
			case $kind:$d in namenode:namenode | datanode:dn* | jobtracker:jobtracker | tasktracker:tt* | mount:mount)
				echo "          - '${ADDR[$d]}'"
				;;
			esac
		done
	done
} >"$T/prom/prometheus.yml"
promtool check config "$T/prom/prometheus.yml" >/dev/null || fail "bad prometheus config: $(cat "$T/prom/prometheus.yml")"
prometheus --config.file="$T/prom/prometheus.yml" --storage.tsdb.path="$T/prom/data" \
	--web.listen-address="127.0.0.1:$PROM_PORT" >"$T/prom/log" 2>&1 &
register_pid $!
PROM=http://127.0.0.1:$PROM_PORT
q() { curl -sf --max-time 5 "$PROM/api/v1/query" --data-urlencode "query=$1"; }
# number of series of a query's result
nres() { q "$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["result"]))' 2>/dev/null || echo 0; }
all_up() { [ "$(nres 'up == 1')" = 9 ]; }
end=$((SECONDS + 60))
until all_up; do
	[ $SECONDS -lt $end ] || fail "Prometheus does not see 9 targets up after 60 s: $(q up 2>/dev/null || true); its log: $(tail -5 "$T/prom/log")"
	sleep 0.5
done
assert_eq "$(nres 'up == 0')" 0 "targets down"
for m in caudal_namenode_files caudal_datanode_bytes_written_total caudal_jobtracker_jobs \
	caudal_tasktracker_slots caudal_mount_bytes_written_total; do
	has_metric() { [ "$(nres "$1")" -ge 1 ]; }
	wait_until 20 "Prometheus has '$m'" has_metric "$m"
done
assert_eq "$(nres 'caudal_datanode_bytes_written_total')" 3 "datanodes' series in Prometheus"
assert_eq "$(nres 'caudal_tasktracker_slots{state="total"}')" 3 "tasktrackers' series in Prometheus"
# a histogram works as one: a quantile of the namenode's Create latency
got=$(q 'histogram_quantile(0.5, sum by (le) (caudal_namenode_rpc_seconds_bucket{method="Create"}))')
assert_contains "$got" '"status":"success"' "histogram_quantile query"

say "abuse: unknown paths, other methods, a flood of connections"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "$(url dn1 /nothing)")
assert_eq "$code" 404 "unknown path on dn1"
code=$(curl -s -o /dev/null -w '%{http_code}' "$(url mount /metrics/x)")
assert_eq "$code" 404 "unknown path on the mount"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$(url jobtracker /metrics)")
assert_eq "$code" 405 "POST /metrics on the jobtracker"
# 200 idle connections from one address (127.0.0.9) to tt1: the HTTP layer takes at
# most its per-address cap (32) and closes the rest; /metrics still answers
# from another address meanwhile, and the daemon lives
python3 - "${ADDR[tt1]}" >"$T/flood.out" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
socks, refused = [], 0
for i in range(200):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.bind(("127.0.0.9", 0))  # not the address the checks below come from
        s.connect((host, int(port)))
        s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
        socks.append(s)
    except OSError:
        refused += 1
time.sleep(1)
alive = 0
for s in socks:
    try:
        s.settimeout(0.2)
        alive += s.recv(1) != b""
    except socket.timeout:
        alive += 1
    except OSError:
        pass
print(alive, refused)
time.sleep(3)
PY
flood=$!
register_pid "$flood"
wait_until 20 "the flood is in place" test -s "$T/flood.out"
read -r held refused <"$T/flood.out"
say "flood: tt1 holds $held of 200 connections from one address ($refused refused at connect)"
[ "$held" -le 32 ] || fail "tt1 holds $held idle connections from one address (cap 32)"
[ "$held" -ge 1 ] || fail "the flood reached nothing: no connection held"
curl -sf --max-time 5 "$(url tt1 /metrics)" >/dev/null ||
	fail "tt1's /metrics did not answer during the flood"
wait "$flood" || true
pid_is "$(daemon_pid tt1)" caudal-tasktracker || fail "tt1 died"
scrape tt1 | promtool check metrics >/dev/null 2>&1 || fail "tt1's /metrics after the flood"
say "ok"
