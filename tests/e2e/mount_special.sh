#!/bin/bash
# Special files through the mount (issue 9): fifos, UNIX sockets and (for
# root only) device nodes are metadata-only inodes with their type and
# device number, as in MooseFS. A fifo on the mount carries data between
# two processes; a socket bound there accepts a connection; tar and
# rsync -a copy a tree holding a fifo, a socket, a device, a symlink and
# files there and back unchanged; a user cannot make a device (EPERM);
# nothing turns a special file into a file with blocks (put over it is
# refused); the types survive a namenode restart.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cluster_up
# let the unprivileged user reach the mount point ($T and the folders the
# test runner made for it, not /tmp itself)
d=$T
while [ "$d" != / ] && [ "$d" != /tmp ] && [ "$(stat -c %u "$d")" = 0 ]; do
	chmod a+x "$d"
	d=$(dirname "$d")
done
M=$T/mnt
mount_caudal "$M" allow_other
USER_ID=4321
as_user() { setpriv --reuid=$USER_ID --regid=$USER_ID --clear-groups "$@"; }

say "mkfifo, and data through the fifo"
mkfifo -m 0640 "$M/fifo"
assert_eq "$(stat -c '%F %a' "$M/fifo")" "fifo 640" "type and mode of the fifo"
(echo "through the fifo" >"$M/fifo") &
writer=$!
register_pid "$writer"
assert_eq "$(timeout 10 cat "$M/fifo")" "through the fifo" "what the fifo carried"
wait "$writer"
assert_eq "$(caudal stat /fifo | sed -n 's/^type: //p')" fifo "the CLI sees a fifo"

say "a UNIX socket bound on the mount takes a connection"
/usr/bin/python3 - "$M/sock" <<'PY'
import os, socket, stat, sys, threading
path = sys.argv[1]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
if not stat.S_ISSOCK(os.lstat(path).st_mode):
    sys.exit("bind did not make a socket inode")
def serve():
    c, _ = srv.accept()
    c.sendall(c.recv(100).upper())
    c.close()
t = threading.Thread(target=serve)
t.start()
cl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
cl.settimeout(10)
cl.connect(path)
cl.sendall(b"ping")
got = cl.recv(100)
t.join(10)
if got != b"PING":
    sys.exit(f"the socket answered {got!r}")
PY
assert_eq "$(stat -c %F "$M/sock")" socket "type of the socket"

say "device nodes: root may, a user may not"
mknod -m 0600 "$M/null" c 1 3
mknod "$M/loopdev" b 7 200
assert_eq "$(stat -c '%F %t %T' "$M/null")" "character special file 1 3" "char device and its numbers"
assert_eq "$(stat -c '%F %t %T' "$M/loopdev")" "block special file 7 c8" "block device and its numbers"
mkdir -m 1777 "$M/pub"
assert_fails_with "Operation not permitted" as_user mknod "$M/pub/mine" c 1 3
[ ! -e "$M/pub/mine" ] || fail "a user made a device"
as_user mkfifo "$M/pub/userfifo" || fail "a user cannot make a fifo in a 1777 directory"
assert_eq "$(stat -c %u "$M/pub/userfifo")" "$USER_ID" "owner of the user's fifo"
assert_fails_with "File exists" mkfifo "$M/fifo"
assert_fails_with "Permission denied" as_user mkfifo "$M/notmine"

say "nothing writes blocks into a special file"
echo data >"$T/data"
caudal put "$T/data" /fifo 2>"$T/put.err" && fail "put over a fifo succeeded"
assert_eq "$(stat -c %F "$M/fifo")" fifo "the fifo after a refused put"
caudal put -f "$T/data" /null 2>"$T/put.err" && fail "put -f over a device succeeded"
assert_eq "$(stat -c '%F %s' "$M/null")" "character special file 0" "the device after a refused put"

say "tar and rsync -a round trips"
S=$T/src
mkdir -p "$S/d/e"
mkfifo "$S/d/f1"
mknod "$S/d/cdev" c 4 5
/usr/bin/python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$S/d/e/s1"
ln -s ../d/f1 "$S/d/e/link"
mkfile "$S/d/file" 300000
echo small >"$S/small"
chmod 0751 "$S/d/e"
listing_sz() { (cd "$1" && find . -printf '%p %y %m %l\n' && find . -type f -printf '%p %s\n' && find . \( -type c -o -type b \) -printf '%p\n' -exec stat -c '%t:%T' {} \;) | sort; }
mkdir "$M/tarred"
# tar does not archive sockets (it says so); everything else goes through
tar -C "$S" -cf - . 2>/dev/null | tar -C "$M/tarred" -xf -
mkdir "$T/back"
tar -C "$M/tarred" -cf - . | tar -C "$T/back" -xf -
rm "$S/d/e/s1"
assert_eq "$(listing_sz "$T/back")" "$(listing_sz "$S")" "tree after tar to the mount and back"
/usr/bin/python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$S/d/e/s1"
rsync -a --specials --devices "$S/" "$M/rsynced/"
rsync -a --specials --devices "$M/rsynced/" "$T/back2/"
assert_eq "$(listing_sz "$T/back2")" "$(listing_sz "$S")" "tree after rsync -a to the mount and back"
assert_eq "$(stat -c %F "$M/rsynced/d/e/s1")" socket "rsync copied the socket"
assert_same_file "$S/d/file" "$M/rsynced/d/file"

say "rm of special files; types after a namenode restart"
rm "$M/pub/userfifo"
[ ! -e "$M/pub/userfifo" ] || fail "rm left the fifo"
umount_caudal "$M"
stop_daemon namenode TERM
caudal up >>"$T/up.log" 2>&1 || fail "restart: $(tail -5 "$T/up.log")"
mount_caudal "$M" allow_other
assert_eq "$(stat -c '%F %t %T' "$M/null")" "character special file 1 3" "the device after a restart"
assert_eq "$(stat -c %F "$M/fifo")" fifo "the fifo after a restart"
assert_eq "$(listing_sz "$M/rsynced")" "$(listing_sz "$S")" "the rsynced tree after a restart"
caudal fsck / >"$T/fsck" || fail "fsck: $(cat "$T/fsck")"
assert_contains "$(cat "$T/fsck")" HEALTHY "fsck"
say "ok"
