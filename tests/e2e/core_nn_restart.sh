#!/bin/bash
# The namenode keeps the whole namespace across a stop, a crash (SIGKILL)
# and a full down/up; files are readable again once block reports arrive.
source "$(dirname "$0")/../lib.sh"
cluster_up

caudal mkdir -p /d/e/f /g
mkfile "$T/x" $((2 * BS + 100))
mkfile "$T/y" 5000
caudal put "$T/x" /d/e/x
caudal put "$T/y" /g/y
caudal put "$T/y" /g/gone
caudal mv /d/e/x /d/e/f/x
caudal rm /g/gone
caudal setrep 2 /g/y

snapshot() {
	for p in / /d /d/e /d/e/f /g; do
		echo "## $p"
		caudal ls -l "$p"
	done
	caudal stat /d/e/f/x | grep -v -e '^access' -e '^block '
	caudal stat /g/y | grep -v -e '^access' -e '^block '
}
snapshot >"$T/before"

check_namespace() { # WHAT
	snapshot >"$T/after" || fail "cannot list the namespace $1"
	diff -u "$T/before" "$T/after" || fail "namespace changed $1"
}
check_data() { # WHAT
	wait_until 30 "files readable $1" caudal get /d/e/f/x "$T/x.out"
	assert_same_file "$T/x" "$T/x.out"
	wait_until 30 "files readable $1" caudal get /g/y "$T/y.out"
	assert_same_file "$T/y" "$T/y.out"
	rm -f "$T/x.out" "$T/y.out"
}

say "namenode stopped: clients get a clear error, not a hang"
stop_daemon namenode TERM
start=$SECONDS
assert_fails caudal --timeout 2000 ls /
assert_contains "$OUT" "unreachable"
[ $((SECONDS - start)) -le 6 ] || fail "ls took $((SECONDS - start))s with the namenode down"

say "namenode restarted with caudal up (datanodes left alone)"
caudal up | tee "$T/up"
assert_eq "$(grep -c 'already running' "$T/up")" 3 "datanodes already running"
check_namespace "after a restart"
check_data "after a restart"

say "namenode crash (SIGKILL)"
caudal put "$T/y" /g/after-crash-test
snapshot >"$T/before"
stop_daemon namenode KILL
caudal up >/dev/null
check_namespace "after a crash"
check_data "after a crash"
wait_until 30 "file written just before the crash readable" caudal cat /g/after-crash-test
assert_same_file "$T/y" <(caudal cat /g/after-crash-test)

say "whole cluster down and up"
caudal down
[ -z "$(ls "$CAUDAL_HOME/pids")" ] || fail "pid files left after down: $(ls "$CAUDAL_HOME/pids")"
assert_fails caudal status
caudal up >/dev/null
assert_ok caudal status
check_namespace "after down/up"
check_data "after down/up"
wait_until 30 "fsck healthy after down/up" caudal fsck /
echo "PASS"
