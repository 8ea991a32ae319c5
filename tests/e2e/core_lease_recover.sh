#!/bin/bash
# Lease recovery with a new generation stamp (issue 8): a writer hsyncs part
# of a block and is stopped (SIGSTOP); its lease expires; the namenode has
# every holder of the block move its replica to a new stamp and closes the
# file at the hsynced length with that stamp, every replica carrying it.
# When the writer wakes up (SIGCONT) its further writes, sync and close fail
# and the closed file is unchanged. Then a holder that stops answering with
# the writer: the file is still closed, on the replicas that answered, and
# once the holder is back its old replica goes and the block is copied back
# to three replicas under the new stamp.
source "$(dirname "$0")/../lib.sh"
export CAUDAL_LEASE_MS=2000
cluster_up
build_tool "$ROOT/tests/e2e/core_lease_writer.c" "$T/writer"

mkfile "$T/data" 300000
NSYNC=200000
head -c $NSYNC "$T/data" >"$T/synced"

say "a writer hsyncs $NSYNC bytes and stops"
mkfifo "$T/in"
"$T/writer" "$CAUDAL_NAMENODE" /f "$T/data" $NSYNC <"$T/in" >"$T/out" 2>&1 &
WPID=$!
register_pid $WPID
exec 3>"$T/in"
wait_until 30 "the writer's hsync" grep -q "^synced $NSYNC" "$T/out"
read -r ID OLDGEN _ <<<"$(caudal blocks /f)"
[ -n "$ID" ] && [ -n "$OLDGEN" ] || fail "no block listed for /f: $(caudal blocks /f)"
kill -STOP $WPID

say "its lease expires: the file is closed by recovery under a new stamp"
closed() { [ "$(field under_construction caudal stat /f)" = no ]; }
wait_until 30 "/f closed by lease recovery" closed
read -r ID2 GEN _ LEN HOSTS <<<"$(caudal blocks /f)"
assert_eq "$ID2" "$ID" "block of /f"
[ "$GEN" -gt "$OLDGEN" ] || fail "the block kept its stamp $OLDGEN (now $GEN)"
assert_eq "$LEN" $NSYNC "length of the recovered block"
assert_eq "$(field size caudal stat /f)" $NSYNC "size of /f"
assert_eq "$(tr ',' '\n' <<<"$HOSTS" | wc -l)" 3 "locations of the recovered block"
caudal get /f "$T/f.out"
assert_same_file "$T/synced" "$T/f.out"
grep -q "closed by lease recovery" "$CAUDAL_HOME/logs/namenode.log" ||
	fail "the namenode did not log the recovery"
# on disk: every datanode holds the block under the new stamp only
on_disk() { # GEN
	find "$CAUDAL_HOME"/dn*/current -name "blk_${ID}_$1" | wc -l
}
assert_eq "$(on_disk "$GEN")" 3 "replicas under the new stamp"
assert_eq "$(on_disk "$OLDGEN")" 0 "replicas under the old stamp"

say "the stale writer wakes up: its writes fail, the file is unchanged"
kill -CONT $WPID
echo go >&3
exec 3>&-
rc=0
wait $WPID || rc=$?
cat "$T/out"
[ $rc -ne 0 ] || fail "the stale writer's write, sync and close all succeeded"
grep -q "^close: err" "$T/out" || fail "the stale writer closed the file"
read -r ID3 GEN3 _ LEN3 _ <<<"$(caudal blocks /f)"
assert_eq "$ID3 $GEN3 $LEN3" "$ID $GEN $NSYNC" "block of /f after the stale writer"
assert_eq "$(caudal blocks /f | wc -l)" 1 "blocks of /f after the stale writer"
caudal get /f "$T/f.out2"
assert_same_file "$T/synced" "$T/f.out2"
assert_eq "$(on_disk "$GEN")" 3 "replicas under the new stamp after the stale writer"
wait_until 30 "fsck HEALTHY" caudal fsck /

say "a holder stops with the writer: the file is closed on the others"
mkfifo "$T/in2"
"$T/writer" "$CAUDAL_NAMENODE" /g "$T/data" $NSYNC <"$T/in2" >"$T/out2" 2>&1 &
WPID=$!
register_pid $WPID
exec 3>"$T/in2"
wait_until 30 "the second writer's hsync" grep -q "^synced $NSYNC" "$T/out2"
read -r GID GOLD _ _ GHOSTS <<<"$(caudal blocks /g)"
SILENT=${GHOSTS##*,}
SILENT=${SILENT%:*}
SDN=$(basename "$(dn_dir_of_host "$SILENT")")
kill -STOP "$(daemon_pid "$SDN")" $WPID
gclosed() { [ "$(field under_construction caudal stat /g)" = no ]; }
wait_until 40 "/g closed without $SDN" gclosed
read -r _ GGEN _ GLEN GHOSTS2 <<<"$(caudal blocks /g)"
[ "$GGEN" -gt "$GOLD" ] || fail "/g kept its stamp $GOLD (now $GGEN)"
assert_eq "$GLEN" $NSYNC "length of /g's recovered block"
case $GHOSTS2 in *"$SILENT:"*) fail "the silent holder $SILENT is a location: $GHOSTS2" ;; esac
caudal get /g "$T/g.out"
assert_same_file "$T/synced" "$T/g.out"
kill -CONT "$(daemon_pid "$SDN")" $WPID
exec 3>&-
wait $WPID || true
say "the silent holder is back: its stale replica goes, the block is copied back"
gone_old() { [ -z "$(find "$CAUDAL_HOME/$SDN/current" -name "blk_${GID}_$GOLD")" ]; }
wait_until 40 "the old replica removed from $SDN" gone_old
three() { [ "$(find "$CAUDAL_HOME"/dn*/current -name "blk_${GID}_$GGEN" | wc -l)" = 3 ]; }
wait_until 40 "three replicas of /g under the new stamp" three
wait_until 30 "fsck HEALTHY" caudal fsck /
caudal get /g "$T/g.out2"
assert_same_file "$T/synced" "$T/g.out2"
echo "PASS"
