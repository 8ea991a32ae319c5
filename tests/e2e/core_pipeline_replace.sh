#!/bin/bash
# A replacement datanode joins a pipeline that lost a node (HDFS's
# ReplaceDatanodeOnFailure). Four datanodes, replication 3: a write that
# hsyncs every 64 KiB loses a node of its pipeline to SIGKILL mid-block; a
# survivor copies the acked bytes to the fourth datanode (DT_TRANSFER) and
# the block carries on over three nodes, so the file closes with three
# replicas at once (the namenode committed the pipeline with three nodes:
# not the replication monitor's copy after the close), byte-identical.
# Then with no datanode to spare the write carries on with two.
source "$(dirname "$0")/../lib.sh"
export CAUDAL_DN_HOSTS=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5
cluster_up
build_tool "$ROOT/tests/crash/crash_client.c" "$T/crash_client"
NNLOG=$CAUDAL_HOME/logs/namenode.log
[ -f "$NNLOG" ] || fail "no namenode log at $NNLOG"

# Feeds file $1 into FIFO $2: the first $3 bytes, then creates $4 and waits
# for $5 to exist, then the rest.
feeder() { # FILE FIFO PAUSE_AT PAUSED GO
	python3 - "$@" <<'PY'
import os, sys, time
path, fifo, pause_at, paused, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
data = open(path, "rb").read()
with open(fifo, "wb") as out:
    out.write(data[:pause_at]); out.flush()
    open(paused, "w").close()
    while not os.path.exists(go):
        time.sleep(0.05)
    out.write(data[pause_at:])
PY
}

# Writes /$1 (repl 3, an hsync every 64 KiB) and SIGKILLs a datanode of the
# pipeline of its third block, 2.5 MiB in. Prints the killed host.
write_and_kill() { # NAME
	local f=/$1
	mkfile "$T/$1" $((4 * BS + 4321))
	rm -f "$T/paused" "$T/go" "$T/fifo"
	mkfifo "$T/fifo"
	feeder "$T/$1" "$T/fifo" $((2 * BS + BS / 2)) "$T/paused" "$T/go" &
	register_pid $!
	printf 'putsync\t%s\t%s\t3\t65536\n' "$f" "$T/fifo" |
		"$T/crash_client" "$CAUDAL_NAMENODE" "${IO_MS:-5000}" >"$T/$1.out" 2>"$T/$1.err" &
	PUT=$!
	register_pid $PUT
	wait_until 30 "the writer to take 2.5 MiB" test -e "$T/paused"
	wait_until 30 "the writer to hsync 2.5 MiB" grep -qx "synced $((2 * BS + BS / 2))" "$T/$1.out"
	local locs
	locs=$(caudal blocks "$f" | tail -1 | awk '{print $5}') # the block being written
	[ "$(echo "$locs" | tr ',' '\n' | grep -c .)" = 3 ] || fail "pipeline of $f is not 3 nodes: $locs"
	VICTIM_HOST=$(echo "$locs" | cut -d, -f2 | cut -d: -f1)
	VICTIM=$(dn_name_of_host "$VICTIM_HOST")
	say "$f: killing $VICTIM ($VICTIM_HOST) of the pipeline $locs"
	stop_daemon "$VICTIM" KILL
	touch "$T/go"
	local rc=0
	wait $PUT || rc=$?
	[ $rc -eq 0 ] && [ "$(tail -1 "$T/$1.out")" = ok ] ||
		fail "write of $f failed (exit $rc): $(tail -3 "$T/$1.out") $(cat "$T/$1.err")"
}

# The block of /$1 that went through a pipeline recovery (a stamp above 1):
# "id gen offset length locations".
recovered() { # NAME
	local b
	b=$(caudal blocks "/$1" | awk '$2 > 1')
	[ "$(echo "$b" | grep -c .)" = 1 ] || fail "expected one recovered block in /$1: $(caudal blocks "/$1")"
	echo "$b"
}

# Hosts of the recovered block of /$1, one per line.
recovered_hosts() { # NAME
	recovered "$1" | awk '{print $5}' | tr ',' '\n' | cut -d: -f1 | sort -u
}

say "four datanodes: a pipeline node dies mid-block, the fourth replaces it"
write_and_kill f1
caudal blocks /f1
read -r id gen _ _ _ <<<"$(recovered f1)"
assert_eq "$(recovered_hosts f1 | wc -l)" 3 "hosts of block $id right after the close"
recovered_hosts f1 | grep -qx "$VICTIM_HOST" && fail "block $id lists the killed $VICTIM_HOST"
# the namenode committed the pipeline with three nodes at the block's stamp:
# the third replica came with the write, not from the monitor after the close
grep -q "block $id of inode [0-9]*: pipeline recovering on 2 node(s) adding " "$NNLOG" ||
	fail "the namenode handed out no replacement for block $id"
grep -q "block $id of inode [0-9]*: pipeline now 3 node(s), generation $gen" "$NNLOG" ||
	fail "block $id was not committed with 3 nodes at generation $gen: $(grep "block $id " "$NNLOG")"
grep -qh "block $id: copied [0-9]* bytes under generation" "$CAUDAL_HOME"/logs/dn*.log ||
	fail "no survivor copied block $id to the replacement"
caudal get /f1 "$T/f1.got"
assert_same_file "$T/f1" "$T/f1.got"

say "waiting for the namenode to see $VICTIM dead: three datanodes, none to spare"
wait_until 30 "$VICTIM_HOST dead" sh -c "'$CAUDAL' report | grep '^$VICTIM_HOST:' | grep -q dead"
write_and_kill f2
caudal blocks /f2
read -r id gen _ _ _ <<<"$(recovered f2)"
assert_eq "$(recovered_hosts f2 | wc -l)" 2 "hosts of block $id right after the close"
grep -q "block $id: no datanode to add to its pipeline" "$NNLOG" ||
	fail "the namenode did not say it had no replacement for block $id"
caudal get /f2 "$T/f2.got"
assert_same_file "$T/f2" "$T/f2.got"
echo "PASS"
