#!/bin/bash
# The checkpointer (Secondary NameNode): `caudal-namenode --checkpoint`
# fetches a consistent copy of the live namenode's metadata into a folder of
# its own; after the namenode's metadata is lost, `--restore` brings that
# copy back and the cluster serves the files again (block locations come
# back from the datanodes' reports). Changes after the checkpoint are gone.
source "$(dirname "$0")/../lib.sh"
cluster_up

mkfile "$T/a" $((2 * BS + 17))
caudal mkdir -p /d/e
caudal put "$T/a" /d/e/a
caudal setrep 2 /d/e/a
wait_until 20 "fsck healthy" caudal fsck /

say "checkpoint from the live namenode"
"$BIN/caudal-namenode" --checkpoint --once --namenode="$CAUDAL_NAMENODE" \
	--checkpoint_dir="$T/ck" --log_level=warn || fail "checkpoint failed"
ck=$(ls -d "$T"/ck/ckpt-* | tail -n 1)
[ -f "$ck/CURRENT" ] || fail "no RocksDB CURRENT file in '$ck'"
caudal put "$T/a" /after-checkpoint

say "lose the namenode's metadata, restore the checkpoint"
stop_daemon namenode TERM
mv "$CAUDAL_HOME/nn" "$T/nn-lost"
assert_fails "$BIN/caudal-namenode" --restore="$ck" --dir="$T/nn-lost"
"$BIN/caudal-namenode" --restore="$ck" --dir="$CAUDAL_HOME/nn" || fail "restore failed"
caudal up >/dev/null
wait_until 30 "file readable again" sh -c "'$CAUDAL' cat /d/e/a >/dev/null"
assert_same_file "$T/a" <(caudal cat /d/e/a)
assert_eq "$(field 'replication' caudal stat /d/e/a)" 2 "replication kept by the checkpoint"
assert_fails caudal stat /after-checkpoint
echo "PASS"
