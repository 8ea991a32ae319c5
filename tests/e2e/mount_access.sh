#!/bin/bash
# Modes of access: a non-root user (setpriv) gets EACCES on a root file of
# mode 600 and can write in a directory it owns; two mounts of one cluster
# (the second through mount.caudal, as mount(8) calls it) see each other's
# closed and fsync'ed files; a write at an offset other than the end
# (dd conv=notrunc seek=1) fails with EOPNOTSUPP and leaves the file byte
# for byte unchanged, with a log line; append with >>; O_TRUNC; truncate
# both ways; a second open for writing gets EBUSY, from this mount and from
# the other; a handle reads back what it wrote.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cluster_up
# let the unprivileged user reach the mount points: $T and the folders the
# test runner made for it above $T (not /tmp itself)
d=$T
while [ "$d" != / ] && [ "$d" != /tmp ] && [ "$(stat -c %u "$d")" = 0 ]; do
	chmod a+x "$d"
	d=$(dirname "$d")
done
M=$T/mnt
M2=$T/mnt2
mount_caudal "$M" allow_other
mkdir -p "$M2" "$T/mounts/pids"
register_mount "$M2"
"$BIN/mount.caudal" "$CAUDAL_NAMENODE" "$M2" -o "rw,allow_other,io_timeout=10,log=$T/logs/mount-mnt2.log,pidfile=$T/mounts/pids/mnt2.pid" ||
	fail "mount.caudal failed"
mountpoint -q "$M2" || fail "mount.caudal did not mount"
USER_ID=4321
as_user() { setpriv --reuid=$USER_ID --regid=$USER_ID --clear-groups "$@"; }

say "permissions: a non-root user"
as_user ls "$M" >/dev/null || fail "user $USER_ID cannot even list the mount"
mkdir "$M/rootdir"
echo secret >"$M/rootdir/secret"
chmod 600 "$M/rootdir/secret"
assert_fails_with "Permission denied" as_user cat "$M/rootdir/secret"
assert_fails_with "Permission denied" as_user sh -c "echo x >> '$M/rootdir/secret'"
assert_fails_with "Permission denied" as_user touch "$M/rootdir/new"
assert_fails_with "Permission denied" as_user mkdir "$M/rootdir/sub"
assert_fails_with "Operation not permitted" as_user chmod 777 "$M/rootdir/secret"
assert_eq "$(cat "$M/rootdir/secret")" secret "root still reads its file"
mkdir "$M/home"
chown $USER_ID:$USER_ID "$M/home"
as_user sh -c "echo mine > '$M/home/f' && mkdir '$M/home/d' && echo more >> '$M/home/f'"
assert_eq "$(stat -c %u:%g "$M/home/f")" $USER_ID:$USER_ID "owner of a file made by the user"
assert_eq "$(as_user cat "$M/home/f")" "mine
more" "the user reads its file"
as_user chmod 600 "$M/home/f"
as_user mv "$M/home/f" "$M/home/d/g"
assert_eq "$(as_user cat "$M/home/d/g")" "mine
more" "after the user's own mv"
# the namenode checks too, not only the kernel: the second mount sees it
assert_fails_with "Permission denied" as_user cat "$M2/rootdir/secret"

say "two mounts see each other's closed files"
mkfile "$T/big" $((2 * BS + 5))
cp "$T/big" "$M/shared"
assert_same_file "$T/big" "$M2/shared"
echo tail >>"$M2/shared"
cat "$T/big" <(echo tail) >"$T/big+tail"
assert_same_file "$T/big+tail" "$M/shared"
echo "from two" >"$M2/new-in-2"
assert_eq "$(cat "$M/new-in-2")" "from two" "file made by the other mount"
rm "$M2/new-in-2"
assert_fails_with "No such file or directory" cat "$M/new-in-2"

say "fsync makes bytes visible to the other mount before close"
python3 - "$M/synced" "$M2/synced" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.write(fd, b"a" * 300000)
os.fsync(fd)
with open(sys.argv[2], "rb") as f:
    got = f.read()
if got != b"a" * 300000:
    sys.exit(f"the other mount read {len(got)} bytes after fsync, wanted 300000")
os.write(fd, b"b" * 10)
os.close(fd)
with open(sys.argv[2], "rb") as f:
    got = f.read()
if got != b"a" * 300000 + b"b" * 10:
    sys.exit(f"the other mount read {len(got)} bytes after close")
PY

say "a write elsewhere than the end: EOPNOTSUPP, file unchanged"
mkfile "$T/orig" 3000
cp "$T/orig" "$M/fixed"
assert_fails_with "Operation not supported" dd if=/dev/zero of="$M/fixed" bs=512 seek=1 count=1 conv=notrunc status=none
assert_same_file "$T/orig" "$M/fixed"
assert_same_file "$T/orig" "$M2/fixed"
grep -q "append-only" "$T/logs/mount-mnt.log" || fail "no log line says why the write was refused"
assert_eq "$(grep -c "append-only" "$T/logs/mount-mnt.log")" 1 "log lines about the refused write"
# writing at the end of an existing file without O_APPEND is an append
dd if="$T/orig" of="$M/fixed" bs=3000 seek=1 count=1 conv=notrunc status=none
cat "$T/orig" "$T/orig" >"$T/orig2"
assert_same_file "$T/orig2" "$M/fixed"

say "append with >>"
printf 'one\n' >"$M/log"
printf 'two\n' >>"$M/log"
printf 'three\n' >>"$M/log"
assert_eq "$(cat "$M/log")" "one
two
three" "appended lines"
cp "$T/big" "$M/bigappend"
head -c 777777 /dev/urandom >"$T/more"
cat "$T/more" >>"$M/bigappend"
cat "$T/big" "$T/more" >"$T/big+more"
assert_same_file "$T/big+more" "$M/bigappend"
assert_eq "$(stat -c %s "$M/bigappend")" $((2 * BS + 5 + 777777)) "size after append"

say "O_TRUNC and truncate"
printf 'short' >"$M/bigappend"
assert_eq "$(cat "$M/bigappend")" short "content after O_TRUNC"
assert_eq "$(stat -c %s "$M2/bigappend")" 5 "size after O_TRUNC seen by the other mount"
truncate -s 2 "$M/bigappend"
assert_eq "$(cat "$M/bigappend")" sh "content after truncate -s 2"
truncate -s 6 "$M/bigappend"
assert_eq "$(od -An -c "$M/bigappend" | tr -s ' ')" " s h \\0 \\0 \\0 \\0" "truncate -s 6 grows with zeros"
truncate -s 0 "$M/bigappend"
assert_eq "$(stat -c %s "$M/bigappend")" 0 "size after truncate -s 0"
python3 - "$M/ftrunc" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"0123456789")
os.ftruncate(fd, 4)
os.write(fd, b"AB")          # the offset is 10, past the new end: a hole of 6 zeros
try:
    os.lseek(fd, 4, os.SEEK_SET)
    os.write(fd, b"CD")      # inside the file: refused, HDFS files are append-only
    sys.exit("a write inside the file after ftruncate succeeded")
except OSError as e:
    if e.errno != 95:
        raise
os.lseek(fd, 12, os.SEEK_SET)
os.write(fd, b"EF")          # at the end: fine
os.close(fd)
PY
assert_eq "$(od -An -c "$M/ftrunc" | tr -s ' ')" " 0 1 2 3 \\0 \\0 \\0 \\0 \\0 \\0 A B E F" "ftruncate on an open file, a write past the end, then at the end"

say "one writer per file: EBUSY"
echo first >"$M/busy"
python3 - "$M/busy" "$T/holding" "$T/release" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
os.write(fd, b"held\n")
open(sys.argv[2], "w").close()
for _ in range(600):
    if os.path.exists(sys.argv[3]):
        break
    time.sleep(0.05)
os.close(fd)
PY
holder=$!
register_pid $holder
wait_until 10 "the writer holds the file" test -e "$T/holding"
assert_fails_with "Device or resource busy" sh -c "echo second >> '$M/busy'"
assert_fails_with "Device or resource busy" sh -c "echo trunc > '$M/busy'"
assert_fails_with "Device or resource busy" sh -c "echo other >> '$M2/busy'"
assert_fails_with "Device or resource busy" sh -c "echo trunc > '$M2/busy'"
assert_fails_with "Device or resource busy" truncate -s 1 "$M2/busy"
assert_eq "$(cat "$M2/busy")" first "readers see the closed part while it is written"
touch "$T/release"
wait $holder || fail "the holding writer failed"
echo second >>"$M2/busy"
assert_eq "$(cat "$M/busy")" "first
held
second" "after the writer closed"
# a shell's descriptor: closing a dup completes the file, the descriptor
# still owns it in this mount
exec 3>>"$M/busy"
echo third >&3
assert_fails_with "Device or resource busy" sh -c "echo fourth >> '$M/busy'"
exec 3>&-
echo fourth >>"$M/busy"
assert_eq "$(tail -n 2 "$M2/busy")" "third
fourth" "appends through a shell descriptor"

say "a handle reads back what it wrote"
python3 - "$M/rw" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.write(fd, b"hello world" * 1000)
if os.pread(fd, 11, 0) != b"hello world":
    sys.exit("read back of unsynced bytes failed")
os.write(fd, b"END")
data = os.pread(fd, 20000, 0)
if data != b"hello world" * 1000 + b"END":
    sys.exit(f"read back {len(data)} bytes")
os.close(fd)
PY

umount_caudal "$M2"
umount_caudal "$M"
say "ok"
