#!/bin/bash
# Root's mount and other local users (issue 7, items 6 and 9). The namenode,
# not only the kernel, decides what each caller of the mount may do: a
# second mount that caches attributes for ten minutes still lets its kernel
# allow an open that the namenode must refuse (the directory above was
# closed meanwhile through the first mount; the open names the file by
# inode id, so the namenode's check of the directories above is what stops
# it); a file closed the same way cannot be opened for reading either. The
# mount passes each caller's supplementary groups, so a member of
# a 0770 directory's group works there and a non-member does not.
# `-o noallow_other` keeps other users out of root's mount altogether.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cluster_up
d=$T
while [ "$d" != / ] && [ "$d" != /tmp ] && [ "$(stat -c %u "$d")" = 0 ]; do
	chmod a+x "$d"
	d=$(dirname "$d")
done
M=$T/mnt
CACHED=$T/cached
mount_caudal "$M"
NOBODY=65534
GROUP=4242
as_nobody() { setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$@"; }
as_member() { setpriv --reuid=$NOBODY --regid=$NOBODY --groups=$GROUP "$@"; }

say "the namenode refuses what a stale kernel cache would allow"
mkdir "$M/shared"
echo "readable while shared" >"$M/shared/doc"
chmod 644 "$M/shared/doc"
touch "$M/shared/log"
chmod 666 "$M/shared/log"
mount_caudal "$CACHED" attr_timeout=600,entry_timeout=600
assert_eq "$(as_nobody cat "$CACHED/shared/doc")" "readable while shared" "nobody reads a shared file"
as_nobody sh -c "echo first >> '$CACHED/shared/log'"
# close the directory through the other mount: the cached one's kernel still
# believes /shared is 0755, and lets the open through to the namenode
chmod 700 "$M/shared"
assert_eq "$(stat -c %a "$CACHED/shared")" 755 "mode the cached mount still shows"
assert_fails_with "Permission denied" as_nobody cat "$CACHED/shared/doc"
assert_fails_with "Permission denied" as_nobody sh -c "echo second >> '$CACHED/shared/log'"
assert_eq "$(cat "$M/shared/log")" first "the log after nobody's refused append"
# root's own callers are unaffected, and reopening restores nobody's access
assert_eq "$(cat "$CACHED/shared/doc")" "readable while shared" "root reads through the cached mount"
chmod 755 "$M/shared"
assert_eq "$(as_nobody cat "$CACHED/shared/doc")" "readable while shared" "nobody reads again"
# the same with the file itself closed: the namenode checks the right to
# read at open, before the mount reads with its own credentials
chmod 600 "$M/shared/doc"
assert_eq "$(stat -c %a "$CACHED/shared/doc")" 644 "mode the cached mount still shows"
assert_fails_with "Permission denied" as_nobody cat "$CACHED/shared/doc"
assert_fails_with "Permission denied" as_nobody python3 -c "open('$CACHED/shared/doc', 'r+')"
chmod 644 "$M/shared/doc"
chmod 222 "$M/shared/log"
assert_fails_with "Permission denied" as_nobody python3 -c "open('$CACHED/shared/log', 'r+')"
assert_eq "$(as_nobody cat "$CACHED/shared/doc")" "readable while shared" "nobody reads again"

say "supplementary groups reach the namenode"
mkdir "$M/team"
chgrp $GROUP "$M/team"
chmod 770 "$M/team"
echo "team notes" >"$M/team/notes"
chgrp $GROUP "$M/team/notes"
chmod 660 "$M/team/notes"
assert_eq "$(as_member cat "$M/team/notes")" "team notes" "a member of the group reads"
as_member sh -c "echo more >> '$M/team/notes' && echo new > '$M/team/new' && mkdir '$M/team/sub'"
assert_eq "$(cat "$M/team/notes")" "team notes
more" "the notes after the member's append"
assert_eq "$(stat -c %u "$M/team/new")" $NOBODY "owner of the member's file"
assert_fails_with "Permission denied" as_nobody cat "$M/team/notes"
assert_fails_with "Permission denied" as_nobody ls "$M/team"
assert_fails_with "Permission denied" as_nobody touch "$M/team/intruder"
[ ! -e "$M/team/intruder" ] || fail "a non-member made a file in the team's directory"

say "-o noallow_other keeps other users out"
PRIVATE=$T/private
mount_caudal "$PRIVATE" noallow_other
opts=$(findmnt -n -o OPTIONS -T "$PRIVATE")
case $opts in *allow_other*) fail "noallow_other mount has allow_other: $opts" ;; esac
assert_contains "$opts" default_permissions "options of the noallow_other mount"
assert_eq "$(cat "$PRIVATE/shared/doc")" "readable while shared" "root reads through its private mount"
assert_fails_with "Permission denied" as_nobody ls "$PRIVATE"
assert_fails_with "Permission denied" as_nobody cat "$PRIVATE/shared/doc"
# the same file through root's default mount is nobody's to read
assert_eq "$(as_nobody cat "$M/shared/doc")" "readable while shared" "nobody through the default mount"

umount_caudal "$PRIVATE"
umount_caudal "$CACHED"
umount_caudal "$M"
say "ok"
