#!/bin/bash
# The trash (issue 11, HDFS's fs.trash.interval): `caudal rm` moves into
# /user/NAME/.Trash/Current/<path> (folders 0700, the user's own) and mv
# restores; -skipTrash and rm inside the trash remove at once; the mount's
# unlink stays immediate unless mounted with -o trash; a user (through a
# user certificate) cannot list, read or purge another user's trash, and
# `caudal expunge` empties only the caller's; with a short interval the
# namenode checkpoints Current and removes the checkpoint once it is older
# than the interval; with the trash off rm removes at once.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
export CAUDAL_TRASH_INTERVAL_S=3600
cluster_up
M=$T/mnt
M2=$T/mnt-trash
mount_caudal "$M"
mount_caudal "$M2" trash
TR=/user/root/.Trash
C=$CAUDAL_HOME/certs
caudal cert create-client nobody >/dev/null
as_nobody() { env CAUDAL_CA="$C/ca.crt" CAUDAL_CERT="$C/users/nobody.crt" CAUDAL_KEY="$C/users/nobody.key" "$CAUDAL" "$@"; }
exists() { caudal stat "$1" >/dev/null 2>&1; }
mode_owner() { stat -c '%a %U' "$M$1"; }

say "rm moves into the trash; mv restores"
caudal mkdir -p /data/sub
mkfile "$T/f1" $((BS + 777))
caudal put "$T/f1" /data/f1
caudal put "$T/f1" /data/sub/f2
assert_ok caudal rm /data/f1
assert_contains "$OUT" "Moved: '/data/f1' to trash at: $TR/Current/data/f1" "rm's message"
exists /data/f1 && fail "/data/f1 is still there after rm"
exists $TR/Current/data/f1 || fail "/data/f1 is not in the trash"
assert_eq "$(mode_owner /user/root)" "700 root" "mode and owner of the home the trash made"
assert_eq "$(mode_owner $TR)" "700 root" "mode and owner of .Trash"
assert_eq "$(mode_owner $TR/Current/data)" "700 root" "mode and owner of a folder in the trash"
caudal mv $TR/Current/data/f1 /data/f1 || fail "mv out of the trash"
caudal get /data/f1 "$T/back" && cmp "$T/f1" "$T/back" || fail "the restored file differs"

say "a second removal of the same name keeps both; rm -r of a tree"
caudal put "$T/f1" /data/f3
caudal rm /data/f3 >/dev/null
caudal put "$T/f1" /data/f3
assert_ok caudal rm /data/f3
case $OUT in *"$TR/Current/data/f3."[0-9]*) ;; *) fail "the second f3 was not renamed in the trash: $OUT" ;; esac
assert_eq "$(caudal ls $TR/Current/data | grep -c '^f3')" 2 "copies of f3 in the trash"
assert_fails caudal rm /data/sub
assert_ok caudal rm -r /data/sub
exists $TR/Current/data/sub/f2 || fail "rm -r did not move the tree into the trash"

say "-skipTrash, and rm inside the trash, remove at once"
caudal put "$T/f1" /data/skip
assert_ok caudal rm -skipTrash /data/skip
exists /data/skip && fail "-skipTrash left the file"
exists $TR/Current/data/skip && fail "-skipTrash moved the file into the trash"
assert_ok caudal rm -r $TR/Current/data/sub
exists $TR/Current/data/sub && fail "rm in the trash did not remove"
assert_fails caudal rm -r /user
assert_contains "$OUT" "holds the trash" "rm of a folder holding the trash"
exists $TR || fail "rm of /user removed the trash"

say "the mount's unlink is immediate unless mounted with -o trash"
caudal put "$T/f1" /data/m1
caudal put "$T/f1" /data/m2
rm "$M/data/m1"
exists /data/m1 && fail "unlink through the mount left the file"
exists $TR/Current/data/m1 && fail "unlink through a mount without -o trash used the trash"
rm "$M2/data/m2"
exists /data/m2 && fail "unlink through the -o trash mount left the file"
exists $TR/Current/data/m2 || fail "unlink through the -o trash mount did not use the trash"

say "a user's trash is theirs: others cannot list, read or purge it"
caudal mkdir /pub
chmod 1777 "$M/pub"
as_nobody put "$T/f1" /pub/n1 || fail "nobody cannot write /pub"
assert_ok as_nobody rm /pub/n1
assert_contains "$OUT" "/user/nobody/.Trash/Current/pub/n1" "nobody's rm"
assert_eq "$(mode_owner /user/nobody/.Trash)" "700 nobody" "mode and owner of nobody's .Trash"
assert_fails as_nobody ls $TR/Current/data
assert_contains "$OUT" "ermission denied" "nobody listing root's trash"
assert_fails as_nobody cat $TR/Current/data/m2
assert_fails as_nobody rm -r -skipTrash $TR
assert_fails as_nobody rm -r $TR/Current
assert_ok as_nobody expunge
assert_contains "$OUT" "/user/nobody/.Trash" "nobody's expunge"
exists /user/nobody/.Trash && fail "nobody's expunge left nobody's trash"
exists $TR/Current/data/m2 || fail "nobody's expunge touched root's trash"
assert_fails as_nobody mv $TR/Current/data/m2 /pub/stolen
# nor can it move root's files into its own trash
assert_fails as_nobody rm /data/f1
assert_contains "$OUT" "ermission denied" "nobody's rm of root's file"
exists /data/f1 || fail "nobody's rm moved root's file"
exists /user/nobody/.Trash/Current/data/f1 && fail "root's file is in nobody's trash"

say "expunge empties the caller's trash"
assert_ok caudal expunge
exists $TR && fail "expunge left root's trash"

say "with a short interval, Current becomes a checkpoint, which expires"
stop_daemon namenode TERM
CAUDAL_TRASH_INTERVAL_S=2 caudal up >/dev/null || fail "caudal up with a 2 s trash interval"
wait_until 30 "the namenode takes changes" caudal mkdir -p /probe
caudal put "$T/f1" /data/e1
caudal rm /data/e1 >/dev/null
checkpoints() { caudal ls $TR 2>/dev/null | grep -E '^[0-9]{12}(-[0-9])?$' || true; }
wait_until 30 "Current becomes a checkpoint" sh -c "! '$CAUDAL' stat $TR/Current >/dev/null 2>&1"
ck=$(checkpoints | head -1)
[ -n "$ck" ] || wait_until 10 "a checkpoint is listed" sh -c "'$CAUDAL' ls $TR | grep -Eq '^[0-9]{12}'"
ck=$(checkpoints | head -1)
exists "$TR/$ck/data/e1" || fail "the checkpoint $ck does not hold data/e1"
wait_until 30 "the checkpoint expires" sh -c "! '$CAUDAL' stat $TR/$ck >/dev/null 2>&1"
assert_contains "$(cat "$CAUDAL_HOME/logs/namenode.log")" "trash: removed checkpoint '$TR/$ck'" "the namenode's log"

say "with the trash off rm removes at once"
stop_daemon namenode TERM
CAUDAL_TRASH_INTERVAL_S=0 caudal up >/dev/null || fail "caudal up with the trash off"
wait_until 30 "the namenode takes changes" caudal mkdir -p /probe2
caudal put "$T/f1" /data/off
assert_ok caudal rm /data/off
case $OUT in *Moved*) fail "rm with the trash off moved: $OUT" ;; esac
exists /data/off && fail "rm with the trash off left the file"
exists $TR/Current/data/off && fail "rm with the trash off used the trash"
assert_ok caudal expunge
assert_contains "$OUT" "trash is off" "expunge with the trash off"
assert_ok caudal rm --help
assert_contains "$OUT" "skipTrash" "rm --help"
say "trash ok"
