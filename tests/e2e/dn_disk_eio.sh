#!/bin/bash
# A data dir whose disk dies (an ext4 shut down with EXT4_IOC_SHUTDOWN:
# every I/O returns EIO), here under a write, is taken out: the write goes
# on without that datanode; with failed_volumes_tolerated=1 the datanode
# goes on with its other dir, its lost replicas are reported and made again
# (here on the other dir), fsck is HEALTHY again and every file reads back
# identical; with the default 0 the datanode stops (non-zero, saying why)
# and the data stays readable from the other datanodes.
# Misconfigured data dirs are refused at start.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/dn_disk_lib.sh"

SHUT=$T/dn_disk_shutdown
build_tool "$ROOT/tests/e2e/dn_disk_shutdown.c" "$SHUT"

say "misconfigured data dirs are refused before anything starts"
# (a datanode that started anyway would find no namenode and be killed)
lone_dn() { timeout 10 "$BIN/caudal-datanode" --namenode=127.0.0.1:1 --port=0 --http_port=0 --insecure=true "$@"; }
mkdir -p "$T/bad/a" "$T/bad/b"
echo dn-a >"$T/bad/a/datanode_id"
echo other-datanode >"$T/bad/b/datanode_id"
assert_fails lone_dn --data_dir="$T/bad/a,$T/bad/b"
assert_contains "$OUT" "belongs to datanode id 'other-datanode'" "mixed ids"
rm "$T/bad/b/datanode_id"
echo other-cluster >"$T/bad/b/cluster_id"
echo cid-a >"$T/bad/a/cluster_id"
assert_fails lone_dn --data_dir="$T/bad/a,$T/bad/b"
assert_contains "$OUT" "belongs to cluster id 'other-cluster'" "mixed cluster ids"
assert_fails lone_dn --data_dir="$T/bad/a,,$T/bad/b"
assert_contains "$OUT" "an entry is empty" "empty entry"
assert_fails lone_dn --data_dir="$T/bad/a,$T/bad/a/."
assert_contains "$OUT" "listed twice" "a dir twice"
assert_fails lone_dn --data_dir="$T/bad/a,$T/bad/c" --failed_volumes_tolerated=2
assert_contains "$OUT" "less than the number of data dirs" "tolerated >= dirs"

cluster_up

say "dn1 on two dirs: an ext4 that will die and a tmpfs with less room"
VA=$T/vA
VB=$T/vB
mount_ext4 "$VA" 96M
mount_tmpfs "$VB" 48m
# the datanode keeps its identity: its id moves with the first dir
cp "$CAUDAL_HOME/dn1/datanode_id" "$CAUDAL_HOME/dn1/cluster_id" "$VA/"
restart_dn dn1 "$VA,$VB" --failed_volumes_tolerated=1 --disk_check_ms=500
DN1=$DN_PID
assert_same_file "$VB/datanode_id" "$VA/datanode_id"
wait_until 20 "3 live datanodes" live_dns_are 3

say "files land on the dir with the most room"
sizes=(1572864 3145735 716800 2097152)
for i in "${!sizes[@]}"; do
	mkfile "$T/f$i" "${sizes[$i]}"
	caudal put "$T/f$i" "/f$i"
done
nblocks=$(for i in "${!sizes[@]}"; do caudal blocks "/f$i"; done | wc -l)
wait_until 20 "every replica of dn1 on $VA" replicas_are "$VA" "$nblocks"
assert_eq "$(replicas_in "$VB")" 0 "replicas on the emptier-looking tmpfs"
assert_ok caudal fsck /

say "the ext4 dies under a write: the write goes on without dn1"
# f4 is written in two halves; the disk dies between them
i=4
sizes+=($((3 * BS + 5)))
mkfile "$T/f$i" "${sizes[$i]}"
mkfifo "$T/gate"
{
	head -c "$BS" "$T/f$i"
	read -r _ <"$T/gate"
	tail -c +$((BS + 1)) "$T/f$i"
} | caudal put -b 4M - "/f$i" &
PUT=$!
rbw_len() { find "$VA/tmp" -name 'blk_*' ! -name '*.sync' -printf '%s\n' 2>/dev/null | sort -n | tail -n 1; }
rbw_started() { [ "$(rbw_len)" -ge $((BS / 2)) ] 2>/dev/null; }
wait_until 20 "f4's replica being written on $VA" rbw_started
"$SHUT" "$VA"
echo go >"$T/gate"
wait "$PUT" || fail "put of f4 failed after dn1's dir died"
nblocks=$((nblocks + 1))
# reads fail over from the dead replicas
for i in "${!sizes[@]}"; do
	caudal get "/f$i" "$T/back$i"
	assert_same_file "$T/back$i" "$T/f$i"
done
wait_until 20 "dn1 took $VA out" grep -q "data dir '$VA' failed" "$DN_LOG"
grep "data dir '$VA' failed" "$DN_LOG"
assert_eq "$(grep -c "data dir '$VA' failed" "$DN_LOG")" 1 "lines saying $VA failed"
pid_is "$DN1" caudal-datanode || fail "dn1 stopped with one failed dir of one tolerated"

say "the lost replicas are made again on dn1's other dir"
wait_until 40 "re-replication onto $VB" replicas_are "$VB" "$nblocks"
wait_until 20 "fsck healthy" caudal fsck /
for i in "${!sizes[@]}"; do
	caudal get "/f$i" "$T/back$i"
	assert_same_file "$T/back$i" "$T/f$i"
done
# the namenode counts only what dn1 still holds
assert_eq "$(caudal report | grep "^127\.0\.0\.2:" | awk '{print $7}')" "$nblocks" \
	"blocks on dn1 in the report"
pid_is "$DN1" caudal-datanode || fail "dn1 stopped"

say "with failed_volumes_tolerated=0 a datanode whose dir dies stops"
VC=$T/vC
mount_ext4 "$VC" 32M
restart_dn dn2 "$CAUDAL_HOME/dn2,$VC" --disk_check_ms=500
DN2=$DN_PID
"$SHUT" "$VC"
rc=0
timeout 30 tail --pid="$DN2" -f /dev/null || fail "dn2 still runs with a dead dir"
wait "$DN2" || rc=$?
[ "$rc" -ne 0 ] || fail "dn2 exited 0 after its dir failed"
grep -q "data dir '$VC' failed" "$DN_LOG" || fail "dn2 did not say which dir failed"
grep -q "more than failed_volumes_tolerated (0)" "$DN_LOG" || fail "dn2 did not say why it stopped"
grep -E "failed|stopped" "$DN_LOG" | tail -n 3
for i in "${!sizes[@]}"; do
	caudal get "/f$i" "$T/back$i"
	assert_same_file "$T/back$i" "$T/f$i"
done

say "a dir that fails its probe at start counts against the tolerated"
stop_daemon dn3
assert_fails lone_dn --data_dir="$CAUDAL_HOME/dn3,$VC"
assert_contains "$OUT" "data dir '$VC': Input/output error" "dead dir at start"
assert_contains "$OUT" "1 of 2 data dirs failed, more than failed_volumes_tolerated (0)" \
	"dead dir at start"
lone_dn --data_dir="$CAUDAL_HOME/dn3,$VC" --failed_volumes_tolerated=1 >"$T/lone.log" 2>&1 &
LONE=$!
register_pid "$LONE"
wait_until 10 "a datanode with one dead dir of one tolerated" \
	grep -q "2 data dirs (1 failed, 1 tolerated)" "$T/lone.log"
kill "$LONE"
echo "PASS"
