#!/bin/bash
# `make bench`: Caudal's figures, measured beside a reference in the same
# run, each measurement taken BENCH_RUNS times (default 2) because the
# machine is shared and noisy. Nothing here asserts a speed.
#
# Sections (BENCH_SECTIONS, default "core nn fs jobs"):
#   core  put and get of a 1 GiB file (replication 3, 64 MiB blocks) against
#         cp of the same file on the local disk
#   nn    namenode operations per second through the client library
#         (create+complete, getattr, getBlockLocations), sync=always and batch
#   fs    ../shared/peers/fsbench.sh on the Caudal mount, on MooseFS and on
#         the local disk, interleaved; Caudal/MooseFS ratios
#   jobs  wordcount over a generated 1 GiB text file against
#         `tr | sort | uniq -c` and an awk hash count on the local disk
#   webhdfs  CREATE and OPEN of the same 1 GiB through WebHDFS (curl -L over
#         HTTPS with a client certificate) beside `caudal put`/`get`, and the
#         peak RSS (VmHWM) of the daemons before and after: the bodies stream
#   sec   what security costs: namenode ops/s (sync=batch) and put/get of
#         SEC_SIZE_MB with mutual TLS and block tokens (the default) beside
#         the same cluster started --insecure=yes, and with --encrypt-data,
#         interleaved
#   cluster  the multi-host test bed (tests/e2e/netbed_lib.sh: network
#         namespaces, 0.5 ms within a rack, 5 ms across) beside a loopback
#         cluster, interleaved (tests/bench/netbed_bench.sh): put and get of
#         CLUSTER_SIZE_MB (replication 3), creates through the mount
#         (CLUSTER_NFILES, one process), stat of those files through a fresh
#         mount; bed/loopback ratios. Needs root; bounded to
#         BENCH_CLUSTER_TIMEOUT seconds (300)
#
# Results go to stdout and to $B/bench/results-DATE.txt.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
BIN=$B/bin
CAUDAL=$BIN/caudal
RUNS=${BENCH_RUNS:-2}
SECTIONS=${BENCH_SECTIONS:-core nn webhdfs sec cluster fs jobs}
SEC_SIZE_MB=${BENCH_SEC_SIZE_MB:-512}
SIZE_MB=${BENCH_SIZE_MB:-1024}
CLUSTER_SIZE_MB=${BENCH_CLUSTER_SIZE_MB:-256}
CLUSTER_NFILES=${BENCH_CLUSTER_NFILES:-500}
CLUSTER_TIMEOUT=${BENCH_CLUSTER_TIMEOUT:-300}
PEERS=$ROOT/../shared/peers
W=$(mktemp -d "${BENCH_TMP:-/var/tmp}/caudal-bench.XXXXXX")
OUT=$B/bench/results-$(date +%Y%m%d-%H%M%S).txt
mkdir -p "$B/bench"
MOUNTS=()
HOMES=()
MFS_STARTED=0
BED_PID=

cleanup() {
	local m h
	# the bed's own trap removes its namespaces, mounts and daemons: let it
	# end before our folder (where the bed lives) goes (timeout -k bounds it)
	if [ -n "$BED_PID" ]; then
		kill -TERM "$BED_PID" 2>/dev/null
		wait "$BED_PID" 2>/dev/null
	fi
	for m in "${MOUNTS[@]}"; do fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
	for h in "${HOMES[@]}"; do CAUDAL_HOME=$h "$CAUDAL" down >/dev/null 2>&1; done
	[ $MFS_STARTED = 1 ] && MFS_WIPE=1 bash "$PEERS/moosefs-down.sh" >/dev/null 2>&1
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

log() { printf '%s\n' "$*" | tee -a "$OUT"; }
now() { date +%s.%N; }
rate() { awk -v b="$1" -v a="$2" -v z="$3" 'BEGIN{printf "%.1f", b/1e6/(z-a)}'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_cluster HOME [extra caudal up flags]: a cluster of our own on free
# ports, without mount or job daemons. Runs in a command substitution, so
# the caller records HOME in HOMES (for cleanup) itself.
start_cluster() {
	local home=$1
	shift
	local nn dn http dnhttp
	nn=$(free_port)
	dn=$(free_port)
	http=$(free_port)
	dnhttp=$(free_port)
	CAUDAL_HOME=$home "$CAUDAL" up --nn-port="$nn" --dn-port="$dn" --http-port="$http" \
		--dn-http-port="$dnhttp" \
		--mount=none --jobs=no "$@" \
		>"$home.up.log" 2>&1 || {
		cat "$home.up.log"
		return 1
	}
	echo "127.0.0.1:$nn"
}

log "# caudal bench $(date -Is) host=$(hostname) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"

if [[ " $SECTIONS " == *" core "* ]]; then
	log ""
	log "## core: 1 GiB, replication 3, 64 MiB blocks (MB/s; local cp is the reference)"
	head -c $((SIZE_MB << 20)) /dev/urandom >"$W/src"
	HOMES+=("$W/core")
	NN=$(start_cluster "$W/core") || exit 1
	export CAUDAL_NAMENODE=$NN CAUDAL_HOME=$W/core
	for run in $(seq 1 "$RUNS"); do
		drop_caches
		t0=$(now)
		cp "$W/src" "$W/copy" && sync "$W/copy"
		t1=$(now)
		cp_rate=$(rate $((SIZE_MB << 20)) "$t0" "$t1")
		rm -f "$W/copy"
		drop_caches
		t0=$(now)
		"$CAUDAL" put -f "$W/src" /big
		t1=$(now)
		put_rate=$(rate $((SIZE_MB << 20)) "$t0" "$t1")
		drop_caches
		t0=$(now)
		"$CAUDAL" get /big "$W/back"
		t1=$(now)
		get_rate=$(rate $((SIZE_MB << 20)) "$t0" "$t1")
		same=identical
		cmp -s "$W/src" "$W/back" || same=DIFFERENT
		rm -f "$W/back"
		log "run $run: put $put_rate MB/s, get $get_rate MB/s (cold), local cp+sync $cp_rate MB/s; put/cp $(awk -v a="$put_rate" -v b="$cp_rate" 'BEGIN{printf "%.2f", a/b}'), data $same"
	done
	"$CAUDAL" rm /big >/dev/null
	unset CAUDAL_NAMENODE CAUDAL_HOME
fi

if [[ " $SECTIONS " == *" webhdfs "* ]]; then
	log ""
	log "## webhdfs: 1 GiB CREATE and OPEN (curl -L, HTTPS, client certificate) beside caudal put/get (MB/s), replication 3, 64 MiB blocks; peak RSS (VmHWM, MiB) of the daemons"
	[ -f "$W/src" ] || head -c $((SIZE_MB << 20)) /dev/urandom >"$W/src"
	HOMES+=("$W/web")
	NN=$(start_cluster "$W/web") || exit 1
	export CAUDAL_NAMENODE=$NN CAUDAL_HOME=$W/web
	HP=$(sed -n 's/.*--http_port=\([0-9]*\).*/\1/p' <(tr '\0' ' ' <"/proc/$(sed -n 1p "$W/web/pids/namenode.pid")/cmdline"))
	C=$W/web/certs
	CURL=(curl -sS -f -L --cacert "$C/ca.crt" --cert "$C/admin.crt" --key "$C/admin.key")
	URL=https://127.0.0.1:$HP/webhdfs/v1/web
	hwm() { # the largest VmHWM (MiB) of the named daemons
		local n m=0 v
		for n in "$@"; do
			v=$(awk '/^VmHWM:/ {print int($2 / 1024)}' "/proc/$(sed -n 1p "$W/web/pids/$n.pid")/status")
			[ "$v" -gt "$m" ] && m=$v
		done
		echo "$m"
	}
	log "peak RSS at start: namenode $(hwm namenode) MiB, datanodes $(hwm dn1 dn2 dn3) MiB"
	for run in $(seq 1 "$RUNS"); do
		drop_caches
		t0=$(now)
		"$CAUDAL" put -f "$W/src" /big
		t1=$(now)
		put_rate=$(rate $((SIZE_MB << 20)) "$t0" "$t1")
		drop_caches
		t0=$(now)
		"$CAUDAL" get /big "$W/back"
		t1=$(now)
		get_rate=$(rate $((SIZE_MB << 20)) "$t0" "$t1")
		rm -f "$W/back"
		drop_caches
		t0=$(now)
		"${CURL[@]}" -X PUT -T "$W/src" "$URL?op=CREATE&overwrite=true" -o /dev/null
		t1=$(now)
		create_rate=$(rate $((SIZE_MB << 20)) "$t0" "$t1")
		drop_caches
		t0=$(now)
		"${CURL[@]}" -o "$W/back" "$URL?op=OPEN"
		t1=$(now)
		open_rate=$(rate $((SIZE_MB << 20)) "$t0" "$t1")
		same=identical
		cmp -s "$W/src" "$W/back" || same=DIFFERENT
		rm -f "$W/back"
		log "run $run: put $put_rate MB/s, get $get_rate MB/s; WebHDFS CREATE $create_rate MB/s, OPEN $open_rate MB/s; data $same; peak RSS namenode $(hwm namenode) MiB, datanodes $(hwm dn1 dn2 dn3) MiB"
	done
	"$CAUDAL" rm /big /web >/dev/null
	unset CAUDAL_NAMENODE CAUDAL_HOME
fi

if [[ " $SECTIONS " == *" nn "* ]]; then
	log ""
	log "## nn: namenode operations per second (4 threads x 2000 ops, one client)"
	for mode in always batch; do
		HOMES+=("$W/nn-$mode")
		NN=$(start_cluster "$W/nn-$mode" --sync="$mode") || exit 1
		for run in $(seq 1 "$RUNS"); do
			res=$(CAUDAL_HOME=$W/nn-$mode "$B/bench/nn_bench" "$NN" "/bench-$run" 4 2000 | tr '\n\t' ' =')
			log "sync=$mode run $run: $res"
		done
	done
fi

if [[ " $SECTIONS " == *" sec "* ]]; then
	log ""
	log "## sec: mutual TLS and block tokens (secure) beside --insecure=yes and --encrypt-data=yes, interleaved"
	head -c $((SEC_SIZE_MB << 20)) /dev/urandom >"$W/sec-src"
	declare -A SEC_NN
	for mode in secure insecure encrypted; do
		HOMES+=("$W/sec-$mode")
		flags=(--insecure=no)
		[ $mode = insecure ] && flags=(--insecure=yes)
		[ $mode = encrypted ] && flags=(--insecure=no --encrypt-data=yes)
		SEC_NN[$mode]=$(start_cluster "$W/sec-$mode" --sync=batch "${flags[@]}") || exit 1
	done
	for run in $(seq 1 "$RUNS"); do
		for mode in secure insecure encrypted; do
			export CAUDAL_HOME=$W/sec-$mode CAUDAL_NAMENODE=${SEC_NN[$mode]}
			res=$("$B/bench/nn_bench" "$CAUDAL_NAMENODE" "/bench-$run" 4 2000 | tr '\n\t' ' =')
			drop_caches
			t0=$(now)
			"$CAUDAL" put -f "$W/sec-src" /big
			t1=$(now)
			put_rate=$(rate $((SEC_SIZE_MB << 20)) "$t0" "$t1")
			drop_caches
			t0=$(now)
			"$CAUDAL" get /big "$W/sec-back"
			t1=$(now)
			get_rate=$(rate $((SEC_SIZE_MB << 20)) "$t0" "$t1")
			same=identical
			cmp -s "$W/sec-src" "$W/sec-back" || same=DIFFERENT
			rm -f "$W/sec-back"
			log "$mode run $run: $res put $put_rate MB/s, get $get_rate MB/s (cold), data $same"
			unset CAUDAL_HOME CAUDAL_NAMENODE
		done
	done
	rm -f "$W/sec-src"
fi

if [[ " $SECTIONS " == *" cluster "* ]] && [ "$(id -u)" != 0 ]; then
	log ""
	log "## cluster: skipped (the test bed needs root)"
elif [[ " $SECTIONS " == *" cluster "* ]]; then
	log ""
	log "## cluster: the multi-host test bed (0.5 ms one way within a rack, 5 ms across; client and namenode on different racks; 4 datanodes) beside a loopback cluster (3 datanodes), interleaved: put/get of $CLUSTER_SIZE_MB MiB (replication 3, 64 MiB blocks), $CLUSTER_NFILES creates through the mount (one process), stat of them through a fresh mount"
	HOMES+=("$W/cl-loop")
	NN=$(start_cluster "$W/cl-loop") || exit 1
	TSV=$W/cluster.tsv
	: >"$TSV"
	# in the background, so that our trap can stop it (and wait for its
	# cleanup) on ^C; timeout bounds the whole section
	LOOP_HOME=$W/cl-loop LOOP_NN=$NN RESULTS=$TSV RUNS=$RUNS SIZE_MB=$CLUSTER_SIZE_MB \
		NFILES=$CLUSTER_NFILES B=$B TEST_TMPROOT=$W \
		timeout -k 60 "$CLUSTER_TIMEOUT" bash "$ROOT/tests/bench/netbed_bench.sh" >"$W/cluster.log" 2>&1 &
	BED_PID=$!
	wait "$BED_PID" || log "cluster bench failed: $(tail -n 15 "$W/cluster.log")"
	BED_PID=
	CAUDAL_HOME=$W/cl-loop "$CAUDAL" down >/dev/null 2>&1
	python3 - "$TSV" "$RUNS" <<'PYEOF' | tee -a "$OUT"
import sys
vals, notes = {}, {}
for line in open(sys.argv[1]):
    p = line.rstrip("\n").split("\t")
    if len(p) < 4:
        continue
    vals[(p[0], p[1], p[2])] = p[3]
    if len(p) > 4 and p[4]:
        notes[(p[0], p[1], p[2])] = p[4]
runs = [str(r) for r in range(1, int(sys.argv[2]) + 1)]
metrics = [("put_MBps", "put MB/s"), ("get_MBps", "get MB/s (cold)"),
           ("create_fps", "creates/s (mount)"), ("stat_cold_ops", "stat of cold files/s")]
cols = [f"{t}-{r}" for r in runs for t in ("loopback", "bed")]
print("%-22s " % "metric" + " ".join("%11s" % c for c in cols) + "  " + " ".join("%9s" % f"ratio-{r}" for r in runs))
for m, name in metrics:
    row = [vals.get((c.rsplit("-", 1)[0], c.rsplit("-", 1)[1], m), "-") for c in cols]
    ratios = []
    for r in runs:
        try:
            ratios.append("%.2f" % (float(vals[("bed", r, m)]) / float(vals[("loopback", r, m)])))
        except (KeyError, ValueError, ZeroDivisionError):
            ratios.append("-")
    print("%-22s " % name + " ".join("%11s" % v for v in row) + "  " + " ".join("%9s" % x for x in ratios))
for k, n in sorted(notes.items()):
    print("note: %s run %s %s: %s" % (k[0], k[1], k[2], n))
print("(ratio = bed / loopback: the share of the loopback figure left with real round trips)")
PYEOF
fi

if [[ " $SECTIONS " == *" fs "* ]] && [ -x "$BIN/caudal-mount" ]; then
	log ""
	log "## fs: fsbench.sh on Caudal, MooseFS and the local disk, interleaved"
	HOMES+=("$W/fs")
	NN=$(start_cluster "$W/fs" --sync=batch) || exit 1
	CM=$W/mnt
	mkdir -p "$CM"
	CAUDAL_HOME=$W/fs "$BIN/caudal-mount" "$NN" "$CM" || exit 1
	MOUNTS+=("$CM")
	if ! mountpoint -q /tmp/peers/mnt/mfs; then
		bash "$PEERS/moosefs-up.sh" >"$W/mfs-up.log" 2>&1 || {
			cat "$W/mfs-up.log"
			exit 1
		}
		MFS_STARTED=1
	fi
	mkdir -p "$W/local"
	TSV=$W/fs.tsv
	for run in $(seq 1 "$RUNS"); do
		for target in caudal moosefs local; do
			case $target in
			caudal) dir=$CM ;;
			moosefs) dir=/tmp/peers/mnt/mfs ;;
			local) dir=$W/local ;;
			esac
			FSBENCH_OUT=$TSV bash "$PEERS/fsbench.sh" "$dir" "$target-$run" >"$W/fsbench-$target-$run.txt" 2>&1
		done
	done
	# one table: metric, then each target and run, then Caudal/MooseFS per run
	python3 - "$TSV" "$RUNS" <<'PYEOF' | tee -a "$OUT"
import sys, collections
rows = collections.defaultdict(dict)
order = []
for line in open(sys.argv[1]):
    parts = line.rstrip("\n").split("\t")
    if len(parts) < 3:
        continue
    label, metric, value = parts[:3]
    if metric not in order:
        order.append(metric)
    rows[metric][label] = value
runs = int(sys.argv[2])
labels = [f"{t}-{r}" for r in range(1, runs + 1) for t in ("caudal", "moosefs", "local")]
print("%-20s " % "metric" + " ".join("%11s" % l for l in labels) + "  " + " ".join("%9s" % f"ratio-{r}" for r in range(1, runs + 1)))
lower_better = {"ls_l_s"}
for m in order:
    if m.startswith("load1") or m == "python_rc":
        continue
    vals = [rows[m].get(l, "-") for l in labels]
    ratios = []
    for r in range(1, runs + 1):
        try:
            c = float(rows[m][f"caudal-{r}"]); o = float(rows[m][f"moosefs-{r}"])
            ratios.append("%.2f" % ((o / c) if m in lower_better else (c / o)))
        except (KeyError, ValueError, ZeroDivisionError):
            ratios.append("-")
    print("%-20s " % m + " ".join("%11s" % v for v in vals) + "  " + " ".join("%9s" % x for x in ratios))
print("(ratio = Caudal/MooseFS, higher is better; for ls_l_s it is MooseFS time / Caudal time)")
PYEOF
fi

if [[ " $SECTIONS " == *" jobs "* ]] && [ -x "$BIN/caudal-jobtracker" ]; then
	log ""
	log "## jobs: wordcount beside tr|sort|uniq -c and awk on the local disk"
	before=$(wc -l <"$OUT")
	B=$B RUNS=$RUNS SIZE_MB=$SIZE_MB OUT=$OUT bash "$ROOT/jobs/job_bench.sh" >"$W/jobs.log" 2>&1 ||
		log "job bench failed: $(tail -n 5 "$W/jobs.log")"
	tail -n +$((before + 1)) "$OUT"
fi

log ""
log "results saved in $OUT"
