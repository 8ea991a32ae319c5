#!/bin/bash
# The exports file (issue 7, "Who may act for a uid"): the namenode lets a
# mount certificate act for other users only as a rule says. Attacked as a
# stranger would: a mount certificate in no rule gets nothing (not even a
# mount); a read-only export changes nothing, and its root is squashed to
# nobody (a root-only file stays unreadable through it); the local mount's
# rule still reads and writes everything.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cat >"$T/exports" <<EOF
# WHO               OPTIONS
mount:127.0.0.1     rw
mount:127.0.0.5     ro,maproot=65534
EOF
cluster_up --exports="$T/exports"
C=$CAUDAL_HOME/certs
M=$T/mnt
mount_caudal "$M"

say "root's private file and a shared one, through the local mount"
mkfile "$T/secret" 200000
mkdir -m 0700 "$M/priv"
cp "$T/secret" "$M/priv/secret"
chmod 600 "$M/priv/secret"
mkdir "$M/pub"
echo "for everyone" >"$M/pub/doc"

caudal cert create-node 127.0.0.5 mount >/dev/null
caudal cert create-node 127.0.0.6 mount >/dev/null

say "a read-only, root-squashed export"
RO=$T/ro
CAUDAL_CA=$C/ca.crt CAUDAL_CERT=$C/mount-127.0.0.5.crt CAUDAL_KEY=$C/mount-127.0.0.5.key \
	mount_caudal "$RO"
assert_eq "$(cat "$RO/pub/doc")" "for everyone" "a shared file through the read-only export"
mount_fails() { # WHAT CMD...
	local what=$1
	shift
	if "$@" 2>"$T/err"; then fail "$what succeeded through the read-only export"; fi
}
mount_fails "touch" touch "$RO/pub/new"
assert_contains "$(cat "$T/err")" "Read-only file system"
mount_fails "rm" rm -f "$RO/pub/doc"
mount_fails "mkdir" mkdir "$RO/pub/dir"
mount_fails "mv" mv "$RO/pub/doc" "$RO/pub/doc2"
mount_fails "chmod" chmod 777 "$RO/pub/doc"
mount_fails "append" sh -c "echo more >> '$RO/pub/doc'"
mount_fails "setfattr" setfattr -n user.x -v 1 "$RO/pub/doc"
# root through the squashed export is nobody: root's private file is closed
mount_fails "reading root's private file" cat "$RO/priv/secret"
assert_contains "$(cat "$T/err")" "Permission denied"
umount_caudal "$RO"

say "a mount certificate in no rule cannot even mount"
NO=$T/no
mkdir -p "$NO"
if CAUDAL_CA=$C/ca.crt CAUDAL_CERT=$C/mount-127.0.0.6.crt CAUDAL_KEY=$C/mount-127.0.0.6.key \
	"$BIN/caudal-mount" "$CAUDAL_NAMENODE" "$NO" -o "log=$T/logs/mount-no.log" 2>"$T/err"; then
	register_mount "$NO"
	fail "a mount in no exports rule mounted"
fi
assert_contains "$(cat "$T/err")" "ermission denied"
mountpoint -q "$NO" && fail "'$NO' is mounted"

say "a bad exports file stops the namenode with the line"
printf 'mount:127.0.0.1 rw\nmount:x sometimes\n' >"$T/bad-exports"
assert_fails "$BIN/caudal-namenode" --dir="$T/nn2" --port=1 --http_port=0 --exports="$T/bad-exports" \
	--insecure=yes
assert_contains "$OUT" "line 2"

say "nothing changed, and the rw export still writes"
assert_eq "$(cat "$M/pub/doc")" "for everyone" "the shared file"
assert_same_file "$M/priv/secret" "$T/secret"
echo "still writable" >"$M/pub/new"
assert_eq "$(cat "$M/pub/new")" "still writable" "a write through the rw export"
[ ! -e "$M/pub/doc2" ] || fail "a rename went through the read-only export"
say "ok"
