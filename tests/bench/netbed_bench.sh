#!/bin/bash
# The bench's `cluster` section (tests/bench.sh; issue 11): the same
# figures measured from the client host of the multi-host test bed
# (tests/e2e/netbed_lib.sh: namespaces joined by a switch holding frames
# 0.5 ms within a rack, 5 ms across) and beside a loopback cluster that
# bench.sh started, interleaved, RUNS rounds:
#   put_MBps        `caudal put` of SIZE_MB (replication 3, 64 MiB blocks)
#   get_MBps        `caudal get` of it back, page cache dropped first
#   create_fps      NFILES empty files created through the mount, one process
#   stat_cold_ops   stat() of those files through a fresh mount, page, dentry
#                   and inode caches dropped
# Environment: LOOP_HOME, LOOP_NN (the loopback cluster: its CAUDAL_HOME
# and namenode), RESULTS (the TSV to append "target run metric value note"
# rows to), RUNS (2), SIZE_MB (256), NFILES (500), PHASE_TIMEOUT (seconds a
# create or stat phase may take, 30; one cut short reports its rate so far,
# marked partial). Needs root, like the bed. Progress goes to stdout.
# Everything the bed makes is removed in the trap (netbed_lib.sh); the
# loopback cluster is bench.sh's to stop, its mount is ours.
source "$(dirname "$0")/../lib.sh"
: "${LOOP_HOME:?LOOP_HOME (the home of the loopback cluster) is not set}"
: "${LOOP_NN:?LOOP_NN (the namenode of the loopback cluster) is not set}"
: "${RESULTS:?RESULTS (the TSV of figures) is not set}"
RUNS=${RUNS:-2}
SIZE_MB=${SIZE_MB:-256}
NFILES=${NFILES:-500}
PHASE_TIMEOUT=${PHASE_TIMEOUT:-30}
# namespaces of our own prefix: an e2e test's sweep (cdlbed-*) never takes
# them for leftovers of its own, nor ours its
BED_PREFIX=cdlbench
BED_OWNER=netbed_bench
source "$ROOT/tests/e2e/netbed_lib.sh"

bed_up "nn dn1 dn2 dn3 dn4 client"
say "namenode on ${ADDR[nn]} (64 MiB blocks, replication 3), datanodes on dn1..dn4"
# shellcheck disable=SC2119 # no flags beyond the bed's own
bed_namenode
for h in dn1 dn2 dn3 dn4; do bed_datanode "$h"; done
wait_until 60 "4 live datanodes" live_is 4

now() { date +%s.%N; }
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}
emit() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >>"$RESULTS"; }

# Sets TC to the prefix that runs a command line of TARGET: on the bed's
# client host, or on this host beside the loopback cluster (with the
# certificates of its home).
tcmd() { # TARGET
	case $1 in
	bed) TC=(nsenter --net="/run/netns/$(ns_of client)" -- env CAUDAL_CLIENT_HOST="${ADDR[client]}") ;;
	loopback) TC=(env -u CAUDAL_CA -u CAUDAL_CERT -u CAUDAL_KEY CAUDAL_HOME="$LOOP_HOME" CAUDAL_NAMENODE="$LOOP_NN") ;;
	esac
}

# Mounts TARGET at DIR with the mount's default caches (a fresh mount's
# are empty).
tmount() { # TARGET DIR
	case $1 in
	bed) bed_mount "$2" ;;
	loopback)
		mkdir -p "$2" "$T/loop/pids"
		register_mount "$2"
		env -u CAUDAL_CA -u CAUDAL_CERT -u CAUDAL_KEY CAUDAL_HOME="$LOOP_HOME" \
			"$BIN/caudal-mount" "$LOOP_NN" "$2" \
			-o "log=$T/logs/mount-loop.log,pidfile=$T/loop/pids/mount-loop.pid" ||
			fail "caudal-mount of the loopback cluster at '$2' failed"
		mountpoint -q "$2" || fail "'$2' is not mounted"
		;;
	esac
}
tumount() { fusermount3 -u "$1" || fail "cannot unmount '$1'"; }

# Runs the python phase PHASE (create|stat) over NFILES names in DIR and
# prints "RATE NOTE".
files_phase() { # PHASE DIR
	python3 - "$1" "$2" "$NFILES" "$PHASE_TIMEOUT" <<'PYEOF'
import os, sys, time
phase, d, n, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
names = [os.path.join(d, "f%05d" % i) for i in range(n)]
def create(p):
    os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
fn = create if phase == "create" else os.stat
done, t0 = 0, time.monotonic()
for p in names:
    fn(p)
    done += 1
    if done % 32 == 0 and time.monotonic() - t0 > limit:
        break
el = time.monotonic() - t0
print("%.0f %s" % (done / el, "" if done == n else "partial %d/%d" % (done, n)))
PYEOF
}

head -c $((SIZE_MB << 20)) /dev/urandom >"$T/src"
mkdir -p "$T/mnt"

rate() { awk -v b=$((SIZE_MB << 20)) -v a="$1" -v z="$2" 'BEGIN{printf "%.1f", b/1e6/(z-a)}'; }

measure() { # TARGET RUN
	local t=$1 r=$2 t0 t1 out rate note mnt=$T/mnt/$1
	tcmd "$t"
	say "$t, round $r: put and get of $SIZE_MB MiB"
	drop_caches
	t0=$(now)
	timeout 240 "${TC[@]}" "$CAUDAL" put -f "$T/src" "/bench-$r" >/dev/null || fail "$t: caudal put failed"
	t1=$(now)
	emit "$t" "$r" put_MBps "$(rate "$t0" "$t1")"
	drop_caches
	t0=$(now)
	timeout 240 "${TC[@]}" "$CAUDAL" get "/bench-$r" "$T/back" >/dev/null || fail "$t: caudal get failed"
	t1=$(now)
	cmp -s "$T/src" "$T/back" || fail "$t: the file read back differs from the one put"
	emit "$t" "$r" get_MBps "$(rate "$t0" "$t1")"
	rm -f "$T/back"
	timeout 60 "${TC[@]}" "$CAUDAL" rm "/bench-$r" >/dev/null || fail "$t: caudal rm failed"

	say "$t, round $r: $NFILES creates through the mount, then stat of each through a fresh mount"
	tmount "$t" "$mnt"
	mkdir "$mnt/files-$r"
	out=$(files_phase create "$mnt/files-$r") || fail "$t: creating files through the mount failed"
	read -r rate note <<<"$out"
	emit "$t" "$r" create_fps "$rate" "$note"
	tumount "$mnt"
	tmount "$t" "$mnt"
	drop_caches
	out=$(files_phase stat "$mnt/files-$r") || fail "$t: stat through the mount failed"
	read -r rate note <<<"$out"
	emit "$t" "$r" stat_cold_ops "$rate" "$note"
	tumount "$mnt"
}

for r in $(seq 1 "$RUNS"); do
	for t in loopback bed; do measure "$t" "$r"; done
done
say "done"
