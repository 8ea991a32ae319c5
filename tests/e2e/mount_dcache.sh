#!/bin/bash
# The mount's directory cache (issue 9): in a directory the mount made, a
# lookup of a missing name is answered without the namenode, yet a name
# another client makes there shows as soon as its event reaches the mount
# (the mount follows the namespace event log), and creating it through the
# mount finds it (O_EXCL: EEXIST; without: the existing file is opened,
# its bytes kept). A job's output, written by the job's tasks, is there to
# read the moment the job says it SUCCEEDED.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cluster_up
M=$T/mnt
# a long entry timeout: what shows another client's names is the event
# log, not the timeout
mount_caudal "$M" entry_timeout=30
wait_until 10 "the mount follows the event log" grep -q "directory cache on" "$T/logs/mount-mnt.log"

say "creates in a directory this mount made"
mkdir "$M/d"
for i in $(seq 1 200); do : >"$M/d/f$i"; done
assert_eq "$(ls "$M/d" | wc -l)" 200 "files made"

say "a name made by another client is seen once its event arrives"
echo "from the CLI" >"$T/x"
caudal put "$T/x" /d/other
end=$((SECONDS + 5))
until [ -e "$M/d/other" ]; do
	[ $SECONDS -lt $end ] || fail "a file made by another client is still hidden after 5 s"
	sleep 0.2
done
assert_eq "$(cat "$M/d/other")" "from the CLI" "the other client's file"

say "creating a name another client made: O_EXCL fails, O_APPEND keeps its bytes"
mkdir "$M/e"
: >"$M/e/mine" # the directory is known whole now
caudal put "$T/x" /e/theirs
/usr/bin/python3 - "$M/e/theirs" <<'PY'
import errno, os, sys
try:
    os.close(os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    sys.exit("O_EXCL create of an existing file succeeded")
except OSError as e:
    if e.errno != errno.EEXIST:
        raise
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
os.write(fd, b"appended\n")
os.close(fd)
PY
assert_eq "$(cat "$M/e/theirs")" "from the CLI
appended" "the other client's file after an append through the mount"

say "a file another client replaced by a rename reads at once, new bytes"
# the kernel's cached entry names the replaced inode: the mount answers
# ESTALE and the kernel looks the name up again
echo old >"$T/v1"
echo new >"$T/v2"
caudal put "$T/v1" /e/status
assert_eq "$(cat "$M/e/status")" old "before the replace"
for i in 1 2 3; do
	caudal put "$T/v2" /e/status.tmp
	caudal mv /e/status.tmp /e/status
	assert_eq "$(cat "$M/e/status")" new "right after another client's rename over it ($i)"
	assert_eq "$(stat -c %s "$M/e/status")" 4 "stat right after the rename ($i)"
	caudal put "$T/v1" /e/status.tmp
	caudal mv /e/status.tmp /e/status
	assert_eq "$(cat "$M/e/status")" old "and back ($i)"
done

say "removals and renames through the mount are seen at once"
rm "$M/d/f1"
[ ! -e "$M/d/f1" ] || fail "a removed file is still there"
mv "$M/d/f2" "$M/d/g2"
[ -e "$M/d/g2" ] || fail "a renamed file is not under its new name"
[ ! -e "$M/d/f2" ] || fail "a renamed file is still under its old name"
: >"$M/d/f1"
[ -e "$M/d/f1" ] || fail "a file made again after its removal is missing"

umount_caudal "$M"
hits=$(sed -n 's/.*lookups answered by the directory cache: \([0-9]*\) of.*/\1/p' "$T/logs/mount-mnt.log")
say "lookups answered by the directory cache: ${hits:-none}"
[ "${hits:-0}" -ge 200 ] || fail "the directory cache answered ${hits:-no} lookups for 200+ creates"
say "ok"
