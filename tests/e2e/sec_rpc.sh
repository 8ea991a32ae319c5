#!/bin/bash
# Identities on the control plane (issue 7, findings 1, 3 and 7): every RPC
# port speaks mutual TLS with the cluster CA, and the certificate decides
# who the caller is. Attacked as before: a plaintext client, a client of
# another CA, a user certificate claiming uid 0, a user asking for
# cluster-wide operations (decommission, events, fsck, checkpoints), a
# datanode certificate registering for another host, a user certificate
# registering a datanode, a user who reports every replica of a file bad, a
# writer's client name used by someone else, 300 long polls at once. Each
# gets nothing and changes nothing; the honest paths (root through the admin
# certificate, a user in a folder of their own, the datanodes, a true report
# of a corrupt replica) keep working.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cluster_up
C=$CAUDAL_HOME/certs
# let the unprivileged user reach its certificate: $T and the folders the
# runner made above it (not /tmp itself)
d=$T
while [ "$d" != / ] && [ "$d" != /tmp ] && [ "$(stat -c %u "$d")" = 0 ]; do
	chmod a+x "$d"
	d=$(dirname "$d")
done
chmod a+x "$CAUDAL_HOME"

say "keys are the owner's alone"
for k in "$C"/*.key; do
	assert_eq "$(stat -c %a "$k")" 600 "mode of $k"
done

say "a private file of root, a folder of nobody"
M=$T/mnt
mount_caudal "$M"
mkfile "$T/secret" 300000
mkdir -m 0700 "$M/priv"
cp "$T/secret" "$M/priv/secret"
chmod 600 "$M/priv/secret"
mkdir "$M/nobody"
chown 65534:65534 "$M/nobody"
umount_caudal "$M"

caudal cert create-client nobody >/dev/null
[ "$(stat -c %U "$C/users/nobody.key")" = nobody ] || fail "the user's key is not theirs"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env CAUDAL_HOME="$CAUDAL_HOME" HOME=/nonexistent "$@"; }
nobody_env=(env CAUDAL_CA="$C/ca.crt" CAUDAL_CERT="$C/users/nobody.crt" CAUDAL_KEY="$C/users/nobody.key")

say "nobody cannot read the admin's or a daemon's key"
assert_fails as_nobody cat "$C/admin.key"
assert_fails as_nobody cat "$C/namenode.key"

say "a plaintext client gets nothing"
assert_fails env CAUDAL_INSECURE=1 "$CAUDAL" --timeout 3000 cat /priv/secret
assert_fails env CAUDAL_INSECURE=1 "$CAUDAL" --timeout 3000 rm /priv/secret

say "a client certificate of another CA gets nothing"
"$CAUDAL" cert create-ca --dir "$T/evil" >/dev/null
"$CAUDAL" cert create-client admin --dir "$T/evil" >/dev/null
assert_fails env CAUDAL_CA="$C/ca.crt" CAUDAL_CERT="$T/evil/admin.crt" CAUDAL_KEY="$T/evil/admin.key" \
	"$CAUDAL" --timeout 3000 cat /priv/secret
assert_fails env CAUDAL_CA="$C/ca.crt" CAUDAL_CERT="$T/evil/admin.crt" CAUDAL_KEY="$T/evil/admin.key" \
	"$CAUDAL" --timeout 3000 rm /priv/secret

say "a user certificate acts as its user, whatever uid the caller claims"
# run as root, so the request claims uid 0, but with nobody's certificate
assert_fails "${nobody_env[@]}" "$CAUDAL" cat /priv/secret
assert_contains "$OUT" "ermission denied" "reading root's private file with nobody's certificate"
assert_fails "${nobody_env[@]}" "$CAUDAL" rm /priv/secret
assert_fails "${nobody_env[@]}" "$CAUDAL" mkdir /evil
assert_fails "${nobody_env[@]}" "$CAUDAL" ls /priv
assert_fails as_nobody "$CAUDAL" cat /priv/secret

say "cluster-wide operations are for admins"
dn=$(caudal report | awk '/^127\.0\.0\.2:/ { print $1; exit }')
[ -n "$dn" ] || dn=127.0.0.2:$CAUDAL_DN_PORT
assert_fails "${nobody_env[@]}" "$CAUDAL" decommission "$dn"
assert_fails "${nobody_env[@]}" "$CAUDAL" --timeout 3000 events 1
assert_contains "$OUT" "ermission denied" "events as a user"
assert_fails "${nobody_env[@]}" "$CAUDAL" fsck /
caudal report | grep -q decom && fail "a user's decommission took effect"

say "a user certificate gets no checkpoint"
assert_fails "$BIN/caudal-namenode" --checkpoint --once --namenode="$CAUDAL_NAMENODE" \
	--checkpoint_dir="$T/stolen" --log_level=warn \
	--tls_ca="$C/ca.crt" --tls_cert="$C/users/nobody.crt" --tls_key="$C/users/nobody.key"
[ -z "$(find "$T/stolen" -type f 2>/dev/null)" ] || fail "a user certificate copied the metadata"

say "a datanode certificate cannot register for another host, a user's not at all"
live0=$(field 'live datanodes' caudal report)
# shellcheck disable=SC2046
"$BIN/caudal-datanode" --namenode="$CAUDAL_NAMENODE" --host=127.0.0.9 --port="$CAUDAL_DN_PORT" --http_port=0 \
	--data_dir="$T/fake1" --heartbeat_ms=300 --log_level=info $(tls_flags dn1) \
	>"$T/fake1.log" 2>&1 &
fake1=$!
register_pid "$fake1"
"$BIN/caudal-datanode" --namenode="$CAUDAL_NAMENODE" --host=127.0.0.10 --port="$CAUDAL_DN_PORT" --http_port=0 \
	--data_dir="$T/fake2" --heartbeat_ms=300 --log_level=info \
	--tls_ca="$C/ca.crt" --tls_cert="$C/users/nobody.crt" --tls_key="$C/users/nobody.key" \
	>"$T/fake2.log" 2>&1 &
fake2=$!
register_pid "$fake2"
sleep 2
caudal report | grep -qE '127\.0\.0\.(9|10):' && fail "a forged datanode registered: $(caudal report)"
assert_eq "$(field 'live datanodes' caudal report)" "$live0" "live datanodes"
kill "$fake1" "$fake2" 2>/dev/null || true

say "a writer's lease is tied to its certificate: its client name is not enough"
THIEF=$T/sec_lease_thief
build_tool "$ROOT/tests/e2e/sec_lease_thief.c" "$THIEF"
"$THIEF" "$CAUDAL_NAMENODE" "$C" /nobody/leased >"$T/thief.out" 2>&1 || fail "lease thief: $(cat "$T/thief.out")"
cat "$T/thief.out"

say "a user who reports every replica of a file bad loses nobody the file"
REPORTER=$T/sec_report_bad
build_tool "$ROOT/tests/e2e/sec_report_bad.c" "$REPORTER"
caudal put "$T/secret" /pub-doc
out=$("${nobody_env[@]}" "$REPORTER" "$CAUDAL_NAMENODE" /pub-doc) || fail "reporter: $out"
assert_contains "$out" "reported "
[ "${out#reported }" -ge 3 ] || fail "the reporter found too few replicas: $out"
sleep 2 # heartbeats carry the verifications; the datanodes find nothing
caudal get /pub-doc "$T/pub.back"
assert_same_file "$T/pub.back" "$T/secret"
caudal fsck / >/dev/null || fail "fsck unhealthy after false reports: $(caudal fsck -v /)"
assert_eq "$(caudal blocks /pub-doc | awk '{ n += split($5, h, ",") } END { print n }')" \
	"$(caudal blocks /pub-doc | awk 'END { print NR * 3 }')" "replicas of /pub-doc after false reports"

say "a true report is heard: the datanode re-reads the replica and drops it"
read -r bid _ _ _ blocs <<<"$(caudal blocks /pub-doc | sed -n 1p)"
bhost=$(echo "$blocs" | cut -d, -f1 | cut -d: -f1)
rfile=$(find "$(dn_dir_of_host "$bhost")/current" -name "blk_${bid}_*" ! -name '*.*')
[ -f "$rfile" ] || fail "replica file of block $bid not found on $bhost"
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(100); b=f.read(1); f.seek(100); f.write(bytes([b[0]^0xFF]))' "$rfile"
"$REPORTER" "$CAUDAL_NAMENODE" /pub-doc >/dev/null || fail "the admin's report failed"
dnlog=$CAUDAL_HOME/logs/$(dn_name_of_host "$bhost").log
wait_until 20 "the datanode verified block $bid" grep -q "verified block $bid as the namenode asked: corrupt" "$dnlog"
wait_until 30 "block $bid back to three good replicas" caudal fsck /
caudal get /pub-doc "$T/pub.back2"
assert_same_file "$T/pub.back2" "$T/secret"

say "300 long polls at once: at most 16 wait, the rest are refused, a GetAttr stays quick"
LP=$T/sec_longpoll
build_tool "$ROOT/tests/e2e/sec_longpoll.c" "$LP"
out=$("$LP" "$CAUDAL_NAMENODE" 300 /priv/secret) || fail "long-poll flood: $out"
echo "$out"
ms=$(echo "$out" | sed -n 's/^getattr \([0-9]*\) ms$/\1/p')
refused=$(echo "$out" | sed -n 's/^refused \([0-9]*\) of 300$/\1/p')
[ -n "$ms" ] && [ "$ms" -lt 1000 ] || fail "a GetAttr beside 300 long polls took ${ms:-?} ms"
[ -n "$refused" ] && [ "$refused" -ge 284 ] || fail "only ${refused:-?} of 300 long polls refused"

say "nothing was lost, and the honest paths work"
caudal get /priv/secret "$T/back"
assert_same_file "$T/back" "$T/secret"
as_nobody "$CAUDAL" put "$T/secret" /nobody/mine
"${nobody_env[@]}" "$CAUDAL" get /nobody/mine "$T/mine.back"
assert_same_file "$T/mine.back" "$T/secret"
assert_contains "$(caudal stat /nobody/mine)" "65534" "owner of nobody's file"
caudal fsck / >/dev/null || fail "fsck is not healthy"
say "ok"
