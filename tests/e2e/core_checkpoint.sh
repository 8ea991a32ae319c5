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
# shellcheck disable=SC2046
"$BIN/caudal-namenode" --checkpoint --once --namenode="$CAUDAL_NAMENODE" \
	--checkpoint_dir="$T/ck" --log_level=warn $(tls_flags namenode) || fail "checkpoint failed"

say "nobody without a namenode or admin certificate gets the metadata"
caudal cert create-client nobody >/dev/null
assert_fails env CAUDAL_CA="$CAUDAL_HOME/certs/ca.crt" CAUDAL_CERT="$CAUDAL_HOME/certs/users/nobody.crt" \
	CAUDAL_KEY="$CAUDAL_HOME/certs/users/nobody.key" \
	"$BIN/caudal-namenode" --checkpoint --once --namenode="$CAUDAL_NAMENODE" \
	--checkpoint_dir="$T/ck-stolen" --log_level=warn \
	--tls_ca="$CAUDAL_HOME/certs/ca.crt" --tls_cert="$CAUDAL_HOME/certs/users/nobody.crt" \
	--tls_key="$CAUDAL_HOME/certs/users/nobody.key"
[ -z "$(find "$T/ck-stolen" -type f 2>/dev/null)" ] || fail "a user certificate copied the metadata"
assert_fails "$BIN/caudal-namenode" --checkpoint --once --namenode="$CAUDAL_NAMENODE" \
	--checkpoint_dir="$T/ck-plain" --log_level=warn --insecure=yes
[ -z "$(find "$T/ck-plain" -type f 2>/dev/null)" ] || fail "a plaintext caller copied the metadata"
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
