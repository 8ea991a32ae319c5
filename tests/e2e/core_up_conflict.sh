#!/bin/bash
# `caudal up` in a second folder on the ports of a running cluster fails,
# naming the daemon and the port held, stops what it started and leaves the
# first cluster untouched, with TLS and without (where the second cluster's
# client could talk to the first); `caudal down` signals only daemons of its
# own folder, whatever its pid files claim (issue 8).
source "$(dirname "$0")/../lib.sh"

# The pids of a cluster's namenode and datanodes, one line.
pids_of() { # HOME
	local n
	for n in namenode dn1 dn2 dn3; do sed -n 1p "$1/pids/$n.pid"; done | tr '\n' ' '
}

# Every daemon of HOME still runs with the pids recorded in WANT.
check_alive() { # HOME WANT WHAT
	assert_eq "$(pids_of "$1")" "$2" "pids of the first cluster $3"
	local p
	for p in $2; do
		pid_is "$p" caudal-namenode || pid_is "$p" caudal-datanode ||
			fail "daemon pid $p of the first cluster died $3"
	done
}

# caudal up in HOME with the given ports, which must fail naming WANT.
up_must_fail() { # HOME NN_PORT HTTP_PORT DN_PORT WANT [FLAGS]
	local home=$1 nn=$2 http=$3 dn=$4 want=$5
	shift 5
	OUT=$(CAUDAL_HOME=$home CAUDAL_NAMENODE=127.0.0.1:$nn CAUDAL_NN_PORT=$nn \
		CAUDAL_NN_HTTP_PORT=$http CAUDAL_DN_PORT=$dn CAUDAL_UP_TIMEOUT_MS=15000 \
		"$CAUDAL" up "$@" 2>&1) && fail "caudal up in '$home' succeeded on ports in use: $OUT"
	echo "$OUT"
	assert_contains "$OUT" "$want" "the error of the second up"
	case $OUT in *"cluster up"*) fail "the failed up says the cluster is up: $OUT" ;; esac
	# what it started is stopped again, and no pid file names it
	local f
	for f in "$home"/pids/*.pid; do
		[ -e "$f" ] || continue
		pid_is "$(sed -n 1p "$f")" "$(sed -n 2p "$f")" &&
			fail "the failed up left $(basename "$f" .pid) running"
	done
	return 0
}

cluster_up
A=$CAUDAL_HOME
mkfile "$T/f" $((BS + 1234))
caudal put "$T/f" /f
APIDS=$(pids_of "$A")
NN_PID=$(daemon_pid namenode)

say "second cluster on the first's ports, both with TLS"
up_must_fail "$T/b" "$CAUDAL_NN_PORT" "$CAUDAL_NN_HTTP_PORT" "$CAUDAL_DN_PORT" \
	"cannot start namenode '127.0.0.1:$CAUDAL_NN_PORT': port $CAUDAL_NN_PORT on 127.0.0.1 is in use by another process (pid $NN_PID, 'caudal-namenode'"
check_alive "$A" "$APIDS" "after the second up"
caudal get /f "$T/f.out"
assert_same_file "$T/f" "$T/f.out"

say "down in the second folder signals nothing of the first"
CAUDAL_HOME=$T/b caudal down | tee "$T/down"
grep -q 'stopped' "$T/down" && fail "down in the second folder stopped something: $(cat "$T/down")"
check_alive "$A" "$APIDS" "after down in the second folder"

say "pid files that name processes not of this folder are not signalled"
sleep 100 &
SLEEP=$!
register_pid $SLEEP
(exec -a "$T/b/dn2" sleep 100) &
SLEEP2=$!
register_pid $SLEEP2
mkdir -p "$T/b/pids"
# the first cluster's namenode under its own folder (a copied or edited pid file)
printf '%s\ncaudal-namenode\n%s\n0\n' "$NN_PID" "$A/nn" >"$T/b/pids/namenode.pid"
# a pid reused by a process of another program
printf '%s\ncaudal-datanode\n%s\n1\n' "$SLEEP" "$T/b/dn1" >"$T/b/pids/dn1.pid"
# a process that is no daemon of ours, though its command line names the folder
printf '%s\nsleep\n%s\n1\n' "$SLEEP2" "$T/b/dn2" >"$T/b/pids/dn2.pid"
assert_fails env CAUDAL_HOME="$T/b" "$CAUDAL" status
assert_contains "$OUT" "namenode   stopped" "status of a pid file naming another folder's daemon"
CAUDAL_HOME=$T/b caudal down | tee "$T/down"
grep -q 'stopped' "$T/down" && fail "down stopped a process not of its folder: $(cat "$T/down")"
assert_contains "$(cat "$T/down")" "namenode not running (pid $NN_PID is another process, left alone)"
assert_contains "$(cat "$T/down")" "dn1 not running (pid $SLEEP is another process, left alone)"
kill -0 $SLEEP 2>/dev/null || fail "down signalled 'sleep' (pid $SLEEP), the pid of its dn1.pid"
kill -0 $SLEEP2 2>/dev/null || fail "down signalled 'sleep' (pid $SLEEP2), named by its dn2.pid"
check_alive "$A" "$APIDS" "after down with pid files naming its daemons"
[ -z "$(ls "$T/b/pids")" ] || fail "stale pid files left: $(ls "$T/b/pids")"

say "without TLS: the second up could talk to the first cluster, and must not"
read -r -a P <<<"$(free_ports 4)"
export CAUDAL_HOME=$T/c
CAUDAL_NN_PORT=${P[0]} CAUDAL_NN_HTTP_PORT=${P[1]} CAUDAL_DN_PORT=${P[2]} CAUDAL_DN_HTTP_PORT=${P[3]} \
	CAUDAL_NAMENODE=127.0.0.1:${P[0]} caudal up --insecure=yes
CPIDS=$(pids_of "$T/c")
CNN=$(sed -n 1p "$T/c/pids/namenode.pid")
up_must_fail "$T/d" "${P[0]}" "${P[1]}" "${P[2]}" \
	"cannot start namenode '127.0.0.1:${P[0]}': port ${P[0]} on 127.0.0.1 is in use by another process (pid $CNN, 'caudal-namenode'" \
	--insecure=yes
check_alive "$T/c" "$CPIDS" "after a second insecure up"

say "without TLS, a namenode of its own but the first's datanode port"
read -r -a Q <<<"$(free_ports 2)"
CDN1=$(sed -n 1p "$T/c/pids/dn1.pid")
up_must_fail "$T/e" "${Q[0]}" "${Q[1]}" "${P[2]}" \
	"port ${P[2]} on 127.0.0.2 is in use by another process (pid $CDN1, 'caudal-datanode'" \
	--insecure=yes
grep -q "namenode stopped" <<<"$OUT" || fail "the failed up did not stop its namenode: $OUT"
check_alive "$T/c" "$CPIDS" "after a second up on its datanode port"
CAUDAL_HOME=$T/e caudal down | tee "$T/down"
grep -q 'stopped' "$T/down" && fail "down in the third folder stopped something: $(cat "$T/down")"
check_alive "$T/c" "$CPIDS" "after down in the third folder"
CAUDAL_NAMENODE=127.0.0.1:${P[0]} caudal ls / >/dev/null

say "the first clusters still serve"
export CAUDAL_HOME=$A
caudal get /f "$T/f.out2"
assert_same_file "$T/f" "$T/f.out2"
assert_ok caudal status
check_alive "$A" "$APIDS" "at the end"
echo "PASS"
