#!/bin/bash
# The Balancer (issue 11): a loaded three-datanode cluster gets a fourth,
# empty datanode; `caudal balancer -t 3` moves replicas to it until every
# datanode's use is within 3% of the cluster's mean, and every file still
# reads back the same, fsck HEALTHY, no replica lost or counted twice.
# Stopped half-way (SIGTERM), it is resumed by running it again. Each
# datanode's data dir is a 96 MiB tmpfs, so use is a real share of a real
# capacity. Abuse: bad thresholds and bandwidths are refused, and so is a
# mount certificate (the RPC is for admins only).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/dn_disk_lib.sh"

export CAUDAL_HOME=$T/cluster
for i in 1 2 3; do mount_tmpfs "$CAUDAL_HOME/dn$i" 96m; done
cluster_up
C=$CAUDAL_HOME/certs
live_is() { [ "$(caudal report | sed -n 's/^live datanodes: //p')" = "$1" ]; }

say "load: 10 files of 2 MiB, 3 replicas each, on three datanodes"
for i in $(seq 1 10); do
	mkfile "$T/f$i" $((2 * BS + i * 1000))
	caudal put "$T/f$i" "/f$i" >/dev/null
done
healthy() { caudal fsck / | grep -q '^status: HEALTHY'; }
wait_until 30 "every block with 3 replicas" healthy

say "a fourth, empty datanode on 127.0.0.5"
mount_tmpfs "$T/dn4" 96m
caudal cert create-node 127.0.0.5 datanode >/dev/null
mkdir -p "$T/dn4log/logs" "$T/dn4log/pids"
"$BIN/caudal-datanode" --namenode="$CAUDAL_NAMENODE" --host=127.0.0.5 --port="$CAUDAL_DN_PORT" \
	--data_dir="$T/dn4" --heartbeat_ms=300 --tls_ca="$C/ca.crt" \
	--tls_cert="$C/datanode-127.0.0.5.crt" --tls_key="$C/datanode-127.0.0.5.key" \
	>"$T/dn4log/logs/dn4.log" 2>&1 &
register_pid $!
printf '%s\ncaudal-datanode\n' $! >"$T/dn4log/pids/dn4.pid"
wait_until 30 "4 live datanodes" live_is 4

# Replicas a datanode holds, from the report.
blocks_of() { # HOST
	caudal report | awk -v h="$1:" 'index($1, h) == 1 { print $7 }'
}
spread() { # prints "widest-deviation mean", from used/capacity of the report
	caudal report >"$T/rep"
	python3 - "$T/rep" <<'PY'
import re, sys
units = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
def b(s):
    m = re.match(r"([0-9.]+)([KMGT]?)", s)
    return float(m.group(1)) * units[m.group(2)]
rows = [l.split() for l in open(sys.argv[1]) if l.split() and l.split()[2:3] == ["live"]]
cap = [b(r[3]) for r in rows]
used = [b(r[4]) for r in rows]
mean = 100 * sum(used) / sum(cap)
print("%.2f %.2f" % (max(abs(100 * u / c - mean) for u, c in zip(used, cap)), mean))
PY
}
read -r wide mean <<<"$(spread)"
say "before: the widest datanode is $wide% from the mean $mean%"
awk -v w="$wide" 'BEGIN { exit !(w > 3) }' || fail "the cluster is balanced already ($wide%)"

say "abuse: bad arguments, a mount certificate"
assert_fails caudal balancer -t 0
assert_fails caudal balancer -t 101
assert_fails caudal balancer -bandwidth 0
assert_fails caudal balancer -t
assert_fails env CAUDAL_CERT="$C/mount.crt" CAUDAL_KEY="$C/mount.key" CAUDAL_CA="$C/ca.crt" \
	"$CAUDAL" balancer -t 3
assert_contains "$OUT" "ermission" "a mount's balancer"

say "a slow balancer (1 MB/s), stopped after its first move"
"$CAUDAL" balancer -t 3 -bandwidth 1 >"$T/bal1.out" 2>&1 &
BAL=$!
register_pid $BAL
wait_until 30 "the first move" grep -q '^moving ' "$T/bal1.out"
kill -TERM $BAL
rc=0
wait $BAL || rc=$?
assert_eq "$rc" 130 "exit status of a stopped balancer ($(cat "$T/bal1.out"))"
assert_contains "$(cat "$T/bal1.out")" "run the balancer again" "stopped balancer's output"
read -r wide mean <<<"$(spread)"
say "stopped at: widest $wide% from the mean $mean%"
awk -v w="$wide" 'BEGIN { exit !(w > 3) }' || fail "one round of 2 MiB balanced it: the resume is not tested"

say "run again: resumes until every datanode is within 3% of the mean"
t0=$SECONDS
assert_ok caudal balancer -t 3 -bandwidth 20
echo "$OUT"
assert_contains "$OUT" "balanced:" "balancer output"
# the report lags the moves by a heartbeat or two: wait for the last deletes
# (3.2: the report rounds used and capacity to 0.1 MiB)
within3() { local w; read -r w _ <<<"$(spread)"; awk -v w="$w" 'BEGIN { exit !(w <= 3.2) }'; }
wait_until 20 "every datanode within 3% of the mean" within3
read -r wide mean <<<"$(spread)"
say "after $((SECONDS - t0)) s: widest $wide% from the mean $mean%"
awk -v w="$wide" 'BEGIN { exit !(w <= 3.2) }' || fail "not balanced: widest $wide% from the mean"
[ "$(blocks_of 127.0.0.5)" -gt 0 ] || fail "the new datanode holds no replica"

say "every file reads back the same; fsck HEALTHY, replicas as wanted"
for i in $(seq 1 10); do
	caudal get "/f$i" "$T/back$i" || fail "cannot read /f$i"
	assert_same_file "$T/f$i" "$T/back$i"
done
no_excess() { caudal fsck / | grep -q '^over-replicated: 0' && healthy; }
wait_until 20 "fsck HEALTHY with no excess" no_excess
fsck=$(caudal fsck /)
found=$(sed -n 's/^replicas: \([0-9]*\) found, \([0-9]*\) wanted/\1/p' <<<"$fsck")
wanted=$(sed -n 's/^replicas: \([0-9]*\) found, \([0-9]*\) wanted/\2/p' <<<"$fsck")
assert_eq "$found" "$wanted" "replicas found and wanted"
sum=$(caudal report | awk '$3 == "live" { s += $7 } END { print s + 0 }')
assert_eq "$sum" "$found" "the datanodes' block counts"
say "PASS"
