#!/bin/bash
# Pipeline recovery: a datanode killed with SIGKILL in the middle of a block
# being written does not fail the write. The client drops it, gets a new
# generation stamp and resumes the block on the survivors; the file reads
# back byte-identical, and once the node is back the replication monitor
# restores 3 replicas. Done twice: killing the first node of the pipeline
# (the one the client talks to), then the middle one.
source "$(dirname "$0")/../lib.sh"
cluster_up

# Feeds file $1 to stdout: the first $2 bytes at once, then creates $3 and
# waits for $4 to exist, then the rest in 64 KiB pieces with short sleeps.
feeder() { # FILE PAUSE_AT PAUSED GO
	python3 - "$@" <<'PY'
import os, sys, time
path, pause_at, paused, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
data = open(path, "rb").read()
out = sys.stdout.buffer
out.write(data[:pause_at]); out.flush()
open(paused, "w").close()
while not os.path.exists(go):
    time.sleep(0.05)
for i in range(pause_at, len(data), 65536):
    out.write(data[i:i + 65536]); out.flush()
    time.sleep(0.01)
PY
}

# Pid of the process that has an established TCP connection from pid $1 to
# a datanode data port: the next node of the pipeline after pid $1.
next_hop_host() { # PID
	ss -tnpH state established "( dport = :$CAUDAL_DN_PORT )" |
		grep "pid=$1," | awk '{print $4}' | sed 's/:[0-9]*$//' | sort -u
}

run_round() { # NAME WHICH(first|middle)
	local f=/$1 which=$2
	mkfile "$T/$1" $((5 * BS + 12345))
	rm -f "$T/paused" "$T/go"
	feeder "$T/$1" $((2 * BS + BS / 2)) "$T/paused" "$T/go" |
		CAUDAL_LOG_LEVEL=warn "$CAUDAL" put - "$f" 2>"$T/$1.err" &
	local put=$!
	wait_until 30 "the feeder to pause" test -e "$T/paused"
	# the client must have the block open; wait for its connection
	local client=$put first second
	pid_is "$client" caudal || fail "pid $client is not the put"
	wait_until 20 "the client's pipeline connection" sh -c "ss -tnpH state established '( dport = :$CAUDAL_DN_PORT )' | grep -q 'pid=$client,'"
	first=$(next_hop_host "$client")
	[ "$(echo "$first" | wc -l)" = 1 ] || fail "client talks to several datanodes: $first"
	local victim host
	if [ "$which" = first ]; then
		host=$first
	else
		second=$(next_hop_host "$(daemon_pid "$(dn_name_of_host "$first")")")
		[ -n "$second" ] && [ "$(echo "$second" | wc -l)" = 1 ] ||
			fail "cannot find the second node of the pipeline: '$second'"
		host=$second
	fi
	victim=$(dn_name_of_host "$host")
	say "$f: killing $victim ($host), the $which node of the pipeline, 2.5 MiB into the write"
	stop_daemon "$victim" KILL
	touch "$T/go"
	local rc=0
	wait $put || rc=$?
	[ $rc -eq 0 ] || fail "put of $f failed (exit $rc): $(cat "$T/$1.err")"
	grep -q "continuing with" "$T/$1.err" ||
		fail "put of $f did not go through pipeline recovery: $(cat "$T/$1.err")"
	caudal get "$f" "$T/$1.out"
	assert_same_file "$T/$1" "$T/$1.out"
	# the block being written got a new generation stamp, without the dead node
	caudal blocks "$f" >"$T/$1.blocks"
	local nrec=0
	while read -r id gen off len locs; do
		[ "$gen" -gt 1 ] || continue
		nrec=$((nrec + 1))
		case ",$locs," in *",$host:"*) fail "recovered block $id of $f lists the killed $host" ;; esac
	done <"$T/$1.blocks"
	[ $nrec -eq 1 ] || fail "expected one block with a new generation stamp: $(cat "$T/$1.blocks")"
	say "$f: restarting $victim; the replication monitor restores 3 replicas"
	caudal up >/dev/null
	wait_until 90 "fsck healthy after restarting $victim" caudal fsck /
	caudal fsck / | tee "$T/fsck"
	assert_eq "$(sed -n 's/^under-replicated: //p' "$T/fsck")" 0 "under-replicated"
	caudal blocks "$f" | while read -r id gen off len locs; do
		assert_eq "$(echo "$locs" | tr ',' '\n' | cut -d: -f1 | sort -u | wc -l)" 3 "hosts of block $id of $f"
	done
	assert_same_file "$T/$1" <(caudal cat "$f")
}

run_round f1 first
run_round f2 middle
# the replicas of the old generations left on the killed nodes are gone
wait_until 30 "fsck / healthy" caudal fsck /
for f in f1 f2; do
	caudal blocks /$f | while read -r id gen off len locs; do
		for h in 127.0.0.2 127.0.0.3 127.0.0.4; do
			d=$(dn_dir_of_host $h)
			stale=$(find "$d/current" -name "blk_${id}_*" ! -name "blk_${id}_${gen}" ! -name "blk_${id}_${gen}.xxh")
			[ -z "$stale" ] || fail "stale replica of block $id (gen $gen) on $h: $stale"
		done
	done
done
echo "PASS"
