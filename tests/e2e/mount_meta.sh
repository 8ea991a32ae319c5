#!/bin/bash
# Links, metadata and attributes through the mount: ln -s and readlink;
# hard links refused (EPERM); chmod, chown, touch -d checked with stat;
# mkdir/rmdir (ENOTEMPTY); getfattr --absolute-names and setfattr on user.*; setrep through
# the user.caudal.replication xattr followed to 2 replicas and back to 3;
# user.caudal.blocksize and user.caudal.blocks; df shows the cluster.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cluster_up
M=$T/mnt
mount_caudal "$M"

say "symlinks"
echo target >"$M/t"
ln -s t "$M/rel"
ln -s /etc/hostname "$M/abs"
assert_eq "$(readlink "$M/rel")" t "readlink of a relative link"
assert_eq "$(readlink "$M/abs")" /etc/hostname "readlink of an absolute link"
assert_eq "$(cat "$M/rel")" target "reading through a link"
assert_eq "$(stat -c %F "$M/rel")" "symbolic link" "type of a link"
assert_eq "$(caudal stat /rel | sed -n 's/^type: //p')" symlink "the CLI sees a symlink"

say "hard links are refused"
assert_fails_with "Operation not permitted" ln "$M/t" "$M/hard"
[ ! -e "$M/hard" ] || fail "a hard link was made"

say "mkdir, rmdir, ENOTEMPTY"
mkdir -p "$M/d1/d2/d3"
assert_fails_with "Directory not empty" rmdir "$M/d1"
assert_fails_with "File exists" mkdir "$M/d1"
rmdir "$M/d1/d2/d3" "$M/d1/d2" "$M/d1"
[ ! -e "$M/d1" ] || fail "rmdir left the directory"
assert_fails_with "No such file or directory" rmdir "$M/d1"
assert_fails_with "Not a directory" rmdir "$M/t"
assert_fails_with "Is a directory" sh -c "echo x > '$M'"
mkdir "$M/e"
assert_fails_with "Is a directory" rm "$M/e"

say "chmod, chown, touch -d"
echo data >"$M/attrs"
chmod 640 "$M/attrs"
assert_eq "$(stat -c %a "$M/attrs")" 640 "mode after chmod"
chmod u+x,g-r "$M/attrs"
assert_eq "$(stat -c %a "$M/attrs")" 700 "mode after chmod u+x,g-r"
chmod 2755 "$M/e"
assert_eq "$(stat -c %a "$M/e")" 2755 "directory mode with setgid"
chown 1234:5678 "$M/attrs"
assert_eq "$(stat -c %u:%g "$M/attrs")" 1234:5678 "owner after chown"
chown :99 "$M/attrs"
assert_eq "$(stat -c %u:%g "$M/attrs")" 1234:99 "group after chgrp"
touch -d "2001-02-03 04:05:06.5 UTC" "$M/attrs"
assert_eq "$(stat -c %Y "$M/attrs")" 981173106 "mtime after touch -d"
assert_eq "$(stat -c %X "$M/attrs")" 981173106 "atime after touch -d"
assert_eq "$(stat -c %y "$M/attrs")" "2001-02-03 04:05:06.500000000 +0000" "mtime with ns"
touch -m -d "2010-01-01 00:00:00 UTC" "$M/attrs"
assert_eq "$(stat -c %Y:%X "$M/attrs")" 1262304000:981173106 "touch -m leaves atime"
before=$(date +%s)
touch "$M/attrs"
[ "$(stat -c %Y "$M/attrs")" -ge "$before" ] || fail "touch did not set mtime to now"
assert_eq "$(stat -c %s "$M/attrs")" 5 "size after metadata changes"
assert_eq "$(cat "$M/attrs")" data "content after metadata changes"
# times set while the file is open for writing survive its close (tar, rsync)
python3 - "$M/open-times" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"x" * 100000)
os.utime(fd, (1000000000, 1000000000))
os.close(fd)
PY
assert_eq "$(stat -c %Y "$M/open-times")" 1000000000 "mtime set before close"

say "user.* extended attributes"
setfattr -n user.color -v blue "$M/attrs"
setfattr -n user.empty "$M/attrs"
printf 'bin\x01\x02' >"$T/xval"
setfattr -n user.bin -v "0x62696e0102" "$M/attrs"
assert_eq "$(getfattr --absolute-names --only-values -n user.color "$M/attrs")" blue "user.color"
assert_eq "$(getfattr --absolute-names --only-values -n user.bin "$M/attrs" | od -An -tx1 | tr -d ' \n')" 62696e0102 "binary value"
names=$(getfattr --absolute-names -d -m '^user\.' "$M/attrs" 2>/dev/null | grep -o '^user\.[a-z.]*' | grep -v '^user\.caudal\.' | sort | tr '\n' ' ')
assert_eq "$names" "user.bin user.color user.empty " "listed user.* names"
setfattr -n user.color -v green "$M/attrs"
assert_eq "$(getfattr --absolute-names --only-values -n user.color "$M/attrs")" green "user.color replaced"
setfattr -x user.color "$M/attrs"
assert_fails_with "No such attribute" getfattr --absolute-names -n user.color "$M/attrs"
assert_fails_with "No such attribute" setfattr -x user.color "$M/attrs"
assert_fails_with "No such attribute" getfattr --absolute-names -n security.selinux "$M/attrs"
assert_fails_with "Operation not supported" setfattr -n trusted.x -v 1 "$M/attrs"
setfattr -n user.dir -v d "$M/e"
assert_eq "$(getfattr --absolute-names --only-values -n user.dir "$M/e")" d "xattr on a directory"

say "setrep through user.caudal.replication"
mkfile "$T/rep" $((2 * BS + 100))
cp "$T/rep" "$M/rep"
assert_eq "$(getfattr --absolute-names --only-values -n user.caudal.replication "$M/rep")" 3 "initial replication"
assert_eq "$(getfattr --absolute-names --only-values -n user.caudal.blocksize "$M/rep")" $BS "block size"
# hosts per block line ("id length host,host,...")
hosts_per_block() { getfattr --absolute-names --only-values -n user.caudal.blocks "$M/rep" | awk 'NF { n = split($3, h, ","); print n }' | sort -u | tr '\n' ' '; }
reps_are() { [ "$(hosts_per_block)" = "$1 " ]; }
assert_eq "$(getfattr --absolute-names --only-values -n user.caudal.blocks "$M/rep" | grep -c .)" 3 "block lines"
wait_until 20 "3 replicas of every block" reps_are 3
setfattr -n user.caudal.replication -v 2 "$M/rep"
assert_eq "$(getfattr --absolute-names --only-values -n user.caudal.replication "$M/rep")" 2 "replication after setrep 2"
wait_until 30 "2 replicas of every block" reps_are 2
setfattr -n user.caudal.replication -v 3 "$M/rep"
wait_until 30 "3 replicas of every block again" reps_are 3
assert_same_file "$T/rep" "$M/rep"
assert_fails setfattr -n user.caudal.replication -v 0 "$M/rep"
assert_fails setfattr -n user.caudal.blocks -v x "$M/rep"

say "df"
read -r size used avail <<<"$(df -B1 --output=size,used,avail "$M" | tail -n 1)"
[ "$size" -gt 0 ] || fail "df shows no capacity: $(df "$M")"
[ "$avail" -gt 0 ] || fail "df shows nothing available: $(df "$M")"
[ "$used" -le "$size" ] || fail "df: used $used > size $size"
assert_eq "$(df --output=fstype "$M" | tail -n 1)" fuse.caudal "df file system type"
assert_eq "$(stat -f -c %l "$M")" 255 "name length limit"

umount_caudal "$M"
say "ok"
