#!/bin/bash
# A file unlinked while open through the mount stays readable and
# writable until its last close, as POSIX has it (issue 9; pjdfstest
# unlink/14): the mount renames it aside and removes it at the last close.
# Its directory can be removed right after the close; a file nobody has
# open is removed at once.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cluster_up
M=$T/mnt
mount_caudal "$M"

say "read, write and fstat an unlinked open file"
mkdir "$M/d"
/usr/bin/python3 - "$M/d" <<'PY'
import os, sys
d = sys.argv[1]
p = os.path.join(d, "f")
fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b"Hello, World!")
os.unlink(p)
assert not os.path.exists(p), "the name is still there after unlink"
assert os.fstat(fd).st_nlink == 0, f"nlink {os.fstat(fd).st_nlink} after unlink"
assert os.pread(fd, 13, 0) == b"Hello, World!", "cannot read the unlinked file"
os.write(fd, b" more")
assert os.pread(fd, 18, 0) == b"Hello, World! more", "cannot write the unlinked file"
# a second, read-only descriptor of a file written and closed before
q = os.path.join(d, "g")
with open(q, "wb") as f:
    f.write(b"x" * 100000)
r = os.open(q, os.O_RDONLY)
os.unlink(q)
assert len(os.read(r, 200000)) == 100000, "short read of an unlinked file"
os.close(r)
os.close(fd)
PY
wait_until 10 "the hidden files are removed after the last close" \
	sh -c "[ -z \"\$(ls -A '$M/d')\" ]"
rmdir "$M/d"

say "a directory removed right after closing its unlinked file"
mkdir "$M/e"
/usr/bin/python3 - "$M/e" <<'PY'
import os, sys
p = os.path.join(sys.argv[1], "f")
fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"abc")
os.unlink(p)
os.close(fd)
PY
rmdir "$M/e" || fail "rmdir right after the last close of an unlinked file"

say "a file nobody has open goes at once; an open one is kept aside until closed"
echo x >"$M/plain"
rm "$M/plain"
[ -z "$(ls -A "$M")" ] || fail "left after rm: $(ls -A "$M")"
echo y >"$M/held"
exec 7<"$M/held"
rm "$M/held"
caudal ls / | grep -q caudal_hidden || fail "the open, unlinked file is not kept aside"
[ "$(cat <&7)" = y ] || fail "cannot read a held, unlinked file"
exec 7<&-
wait_until 10 "the held file is removed once closed" \
	sh -c "! caudal ls / | grep -q caudal_hidden"
umount_caudal "$M"
say "ok"
