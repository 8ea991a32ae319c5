#!/bin/bash
# Failures: a mount whose cluster is not there fails at once with a clear
# message; the namenode stopped with SIGSTOP makes ls and cat fail within
# the I/O timeout instead of hanging, and after SIGCONT the mount works
# again; a datanode killed does not stop reads; unmounting (lazily, or by
# stopping the mount) with files still open loses nothing already closed
# and completes what was open.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"

say "no cluster: the mount fails at once"
read -r port <<<"$(free_ports 1)"
mkdir -p "$T/nomnt"
t0=$(now_s)
rc=0
# without any certificate it says so first
assert_fails env -u CAUDAL_HOME HOME=/nonexistent "$MOUNT_BIN" "127.0.0.1:$port" "$T/nomnt"
assert_contains "$OUT" "no certificate" "error without a certificate"
# (plaintext here: no cluster, so no CA, has been made)
OUT=$(CAUDAL_INSECURE=1 "$MOUNT_BIN" "127.0.0.1:$port" "$T/nomnt" -o probe_timeout=2 2>&1) || rc=$?
[ $rc -ne 0 ] || { fusermount3 -u "$T/nomnt"; fail "mounted without a cluster"; }
assert_contains "$OUT" "cannot reach the namenode at '127.0.0.1:$port'" "error without a cluster"
awk -v e="$(elapsed "$t0")" 'BEGIN { exit !(e < 10) }' || fail "failing without a cluster took $(elapsed "$t0") s"
mountpoint -q "$T/nomnt" && fail "something is mounted at $T/nomnt"
assert_fails "$MOUNT_BIN" "127.0.0.1:$port" "$T/does-not-exist"
assert_contains "$OUT" "cannot use mount point" "error for a missing mount point"
assert_fails "$MOUNT_BIN" "127.0.0.1:$port" "$T/nomnt" -o bogus_option
assert_contains "$OUT" "unknown mount option 'bogus_option'" "error for a bad option"

cluster_up
M=$T/mnt
MOUNT_IO_TIMEOUT=3 mount_caudal "$M"

say "namenode stopped: errors within the timeout, then recovery"
mkdir "$M/d"
echo hello >"$M/d/f"
mkfile "$T/big" $((3 * BS))
cp "$T/big" "$M/big"
sleep 1.5 # let the kernel's 1 s attribute and entry caches expire
nn=$(daemon_pid namenode)
kill -STOP "$nn"
t0=$(now_s)
ls_rc=0
ls_out=$(ls "$M/d" 2>&1) || ls_rc=$?
ls_secs=$(elapsed "$t0")
t0=$(now_s)
cat_rc=0
cat_out=$(cat "$M/d/f" 2>&1) || cat_rc=$?
cat_secs=$(elapsed "$t0")
t0=$(now_s)
stat_rc=0
stat_out=$(stat "$M/big" 2>&1) || stat_rc=$?
stat_secs=$(elapsed "$t0")
kill -CONT "$nn"
say "ls: rc $ls_rc in ${ls_secs}s ($ls_out); cat: rc $cat_rc in ${cat_secs}s ($cat_out); stat: rc $stat_rc in ${stat_secs}s"
[ $ls_rc -ne 0 ] || fail "ls succeeded with the namenode stopped: $ls_out"
[ $cat_rc -ne 0 ] || fail "cat succeeded with the namenode stopped: $cat_out"
[ $stat_rc -ne 0 ] || fail "stat succeeded with the namenode stopped: $stat_out"
case $ls_out$cat_out in *"timed out"* | *"Input/output error"*) ;; *) fail "unexpected errors: $ls_out / $cat_out" ;; esac
for s in "$ls_secs" "$cat_secs" "$stat_secs"; do
	awk -v e="$s" 'BEGIN { exit !(e < 10) }' || fail "an operation took ${s}s with a 3 s I/O timeout"
done
wait_until 15 "the mount lists again" ls "$M/d"
# the namenode may first count the datanodes dead (it heard nothing while
# stopped) until they heartbeat and report again
is_hello() { [ "$(cat "$M/d/f")" = hello ]; }
wait_until 20 "the mount reads again" is_hello
assert_same_file "$T/big" "$M/big"
echo again >"$M/d/g"
assert_eq "$(cat "$M/d/g")" again "write after SIGCONT"

say "a datanode killed: reads go on"
stop_daemon dn1 KILL
assert_same_file "$T/big" "$M/big"
assert_eq "$(cat "$M/d/f")" hello "small file with a datanode gone"

say "unmount with files still open"
cp "$T/big" "$M/closed"
python3 - "$M/held" "$T/held-ready" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"written before the unmount\n")
open(sys.argv[2], "w").close()
time.sleep(30)
PY
holder=$!
register_pid $holder
wait_until 10 "the writer is ready" test -e "$T/held-ready"
mpid=$(sed -n 1p "$T/mounts/pids/mnt.pid")
kill -TERM "$mpid"
wait_until 15 "the mount process to exit" sh -c "! kill -0 $mpid 2>/dev/null"
kill "$holder" 2>/dev/null || true
mountpoint -q "$M" && fail "still mounted after the mount process stopped"
caudal cat /closed >"$T/closed.out"
assert_same_file "$T/big" "$T/closed.out"
assert_eq "$(caudal cat /held)" "written before the unmount" "file open at unmount"
assert_eq "$(field under_construction caudal stat /held)" no "file open at unmount is completed"

say "lazy unmount with a reader open"
mount_caudal "$M"
exec 5<"$M/closed"
mpid=$(sed -n 1p "$T/mounts/pids/mnt.pid")
umount -l "$M"
mountpoint -q "$M" && fail "still mounted after umount -l"
assert_same_file "$T/big" /dev/fd/5
exec 5<&-
wait_until 15 "the mount process to exit after its last file closed" sh -c "! kill -0 $mpid 2>/dev/null"
say "ok"
