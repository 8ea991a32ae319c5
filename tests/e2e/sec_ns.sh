#!/bin/bash
# Namespace defaults, attacked as another local user through root's mount
# (issue 7, items 5 and 9): `/` of a new cluster is 0755 root:root, so user
# nobody (setpriv) can neither remove nor rename root's files and
# directories there, nor create its own; a 0600 file of root in a 0700
# directory stays unreadable; a 1777 directory lets nobody make and remove
# its own files but not remove or rename another user's. The honest path
# works: the mount `caudal up` makes lets nobody list and read
# what it may (a 0644 file) and work in a directory it owns, with its own
# uid on what it makes. Each refused attack leaves the data as it was.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
# the attacked cluster is the one `caudal up` starts and mounts, as root
# and with its defaults
M=$T/mnt
export CAUDAL_MOUNT=$M
cluster_up
register_mount "$M"
mountpoint -q "$M" || fail "caudal up did not mount '$M'"
# let the unprivileged users reach the mount point: $T and the folders the
# test runner made for it above $T (not /tmp itself)
d=$T
while [ "$d" != / ] && [ "$d" != /tmp ] && [ "$(stat -c %u "$d")" = 0 ]; do
	chmod a+x "$d"
	d=$(dirname "$d")
done
NOBODY=65534
OTHER=4321
as_nobody() { setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$@"; }
as_other() { setpriv --reuid=$OTHER --regid=$OTHER --clear-groups "$@"; }

say "the mount of caudal up lets other users in, with permissions enforced"
opts=$(findmnt -n -o OPTIONS -T "$M")
assert_contains "$opts" allow_other "options of caudal up's mount"
assert_contains "$opts" default_permissions "options of caudal up's mount"
assert_eq "$(stat -c '%a %u %g' "$M")" "755 0 0" "mode and owner of / in a new namespace"
echo "for everyone" >"$M/public"
chmod 644 "$M/public"
assert_ok as_nobody ls -la "$M"
assert_contains "$OUT" public "nobody's listing of /"
assert_eq "$(as_nobody cat "$M/public")" "for everyone" "nobody reads a 0644 file"
assert_eq "$(as_nobody stat -c %s "$M/public")" 13 "size nobody sees"
assert_fails_with "Permission denied" as_nobody sh -c "echo x >> '$M/public'"
assert_fails_with "Permission denied" as_nobody touch "$M/planted"
assert_fails_with "Permission denied" as_nobody mkdir "$M/planted-dir"
assert_fails_with "Permission denied" as_nobody ln -s public "$M/planted-link"
[ ! -e "$M/planted" ] && [ ! -e "$M/planted-dir" ] && [ ! -L "$M/planted-link" ] ||
	fail "nobody made an entry at /"

say "nobody cannot remove or rename root's entries at /"
mkfile "$T/orig" $((BS + 123))
cp "$T/orig" "$M/rootfile"
mkdir "$M/rootdir"
cp "$T/orig" "$M/rootdir/inner"
assert_fails_with "Permission denied" as_nobody rm -f "$M/rootfile"
assert_fails_with "Permission denied" as_nobody rm -rf "$M/rootdir"
assert_fails_with "Permission denied" as_nobody rmdir "$M/rootdir"
assert_fails_with "Permission denied" as_nobody mv "$M/rootdir" "$M/stolen"
assert_fails_with "Permission denied" as_nobody mv "$M/rootfile" "$M/stolen"
assert_fails_with "Permission denied" as_nobody mv "$M/rootfile" "$M/rootdir/moved"
# the cluster's own view, not the kernel's cache: everything is where it was
assert_same_file "$T/orig" "$M/rootfile"
assert_same_file "$T/orig" "$M/rootdir/inner"
caudal ls / >"$T/ls" || fail "caudal ls / failed"
grep -q rootdir "$T/ls" && grep -q rootfile "$T/ls" || fail "root's entries left /: $(cat "$T/ls")"
if grep -q stolen "$T/ls"; then fail "a renamed entry appeared at /"; fi

say "a 0600 file of root in a 0700 directory"
mkdir "$M/vault"
chmod 700 "$M/vault"
echo "root only" >"$M/vault/secret"
chmod 600 "$M/vault/secret"
assert_fails_with "Permission denied" as_nobody cat "$M/vault/secret"
assert_fails_with "Permission denied" as_nobody ls "$M/vault"
assert_fails_with "Permission denied" as_nobody stat "$M/vault/secret"
assert_fails_with "Permission denied" as_nobody rm -f "$M/vault/secret"
# even with the directory opened up, the file itself stays closed
chmod 755 "$M/vault"
assert_fails_with "Permission denied" as_nobody cat "$M/vault/secret"
assert_fails_with "Permission denied" as_nobody rm -f "$M/vault/secret"
assert_eq "$(cat "$M/vault/secret")" "root only" "root still reads its file"

say "a sticky 1777 directory, as /tmp"
mkdir "$M/scratch"
chmod 1777 "$M/scratch"
assert_eq "$(stat -c %a "$M/scratch")" 1777 "mode of the sticky directory"
as_other sh -c "echo theirs > '$M/scratch/others'"
as_other mkdir "$M/scratch/others-dir"
assert_eq "$(stat -c %u "$M/scratch/others")" $OTHER "owner of the other user's file"
assert_fails_with "Operation not permitted" as_nobody rm -f "$M/scratch/others"
assert_fails_with "Operation not permitted" as_nobody rmdir "$M/scratch/others-dir"
assert_fails_with "Operation not permitted" as_nobody mv "$M/scratch/others" "$M/scratch/mine-now"
# nor replace it by renaming a file of its own over it
as_nobody sh -c "echo planted > '$M/scratch/planted'"
assert_fails_with "Operation not permitted" as_nobody mv -f "$M/scratch/planted" "$M/scratch/others"
assert_eq "$(cat "$M/scratch/others")" theirs "the other user's file after nobody's attempts"
[ -d "$M/scratch/others-dir" ] || fail "the other user's directory was removed"
# nobody's own files there are its own to remove
as_nobody sh -c "echo mine > '$M/scratch/nobodys' && mv '$M/scratch/nobodys' '$M/scratch/nobodys2'"
assert_eq "$(stat -c %u:%g "$M/scratch/nobodys2")" $NOBODY:$NOBODY "owner of nobody's file"
as_nobody rm "$M/scratch/nobodys2" "$M/scratch/planted"
[ ! -e "$M/scratch/nobodys2" ] && [ ! -e "$M/scratch/planted" ] ||
	fail "nobody could not remove its own files"
# the other user, and root, still remove theirs
as_other rm "$M/scratch/others"
rmdir "$M/scratch/others-dir"

say "honest work by nobody in a directory it owns"
mkdir "$M/home"
chown $NOBODY:$NOBODY "$M/home"
mkfile "$T/data" $((2 * BS + 7))
chmod 644 "$T/data"
as_nobody sh -c "cp '$T/data' '$M/home/data' && mkdir '$M/home/d' && echo more >> '$M/home/data'"
cat "$T/data" <(echo more) >"$T/data+more"
assert_same_file "$T/data+more" "$M/home/data"
assert_eq "$(as_nobody cat "$M/home/data" | cmp - "$T/data+more" && echo same)" same \
	"nobody reads back its file"
assert_eq "$(stat -c %u:%g "$M/home/data")" $NOBODY:$NOBODY "owner of a file nobody made"
assert_eq "$(stat -c %u:%g "$M/home/d")" $NOBODY:$NOBODY "owner of a directory nobody made"
as_nobody chmod 600 "$M/home/data"
as_nobody mv "$M/home/data" "$M/home/d/data"
as_nobody ln -s d/data "$M/home/link"
assert_same_file "$T/data+more" "$M/home/link"
assert_fails_with "Permission denied" as_other cat "$M/home/d/data"
as_nobody rm -r "$M/home/d" "$M/home/link"
assert_eq "$(as_nobody ls -A "$M/home")" "" "nobody's directory after its rm -r"
# and root's files nobody was refused are intact
assert_same_file "$T/orig" "$M/rootfile"

say "ok"
