#!/bin/bash
# A data dir that fills up takes no new replicas, said once in the log,
# while writes go on to the other dir and the other datanodes; once space
# is back it takes replicas again.
#
# dn1 gets two dirs: A, a tmpfs that looks roomier, and B, a small ext4.
# A first takes replicas (the most free bytes); then, while a block is
# being written into it, A shrinks to a little more than it holds: the
# write there fails with ENOSPC, the client's pipeline goes on without dn1,
# and the namenode's copy of that block lands on B. A larger file then goes
# to B alone. After A grows again, new replicas land on it again.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/dn_disk_lib.sh"

cluster_up

A=$T/vA
B_=$T/vB
mount_tmpfs "$A" 256m
mount_ext4 "$B_" 128M
cp "$CAUDAL_HOME/dn1/datanode_id" "$CAUDAL_HOME/dn1/cluster_id" "$A/"
restart_dn dn1 "$A,$B_" --du_reserved=1M --disk_check_ms=500
wait_until 20 "3 live datanodes" live_dns_are 3

say "a new replica goes to the dir with the most free bytes"
mkfile "$T/f1" $((2 * BS))
caudal put "$T/f1" /f1
wait_until 10 "f1's replicas on A" replicas_are "$A" 2
assert_eq "$(replicas_in "$B_")" 0 "replicas on B"

say "A fills up under a write: the write goes on without dn1"
mkfile "$T/f2" $((7 * BS + BS / 2))
mkfifo "$T/gate"
{
	head -c $((3 * BS / 2)) "$T/f2"
	read -r _ <"$T/gate"
	tail -c +$((3 * BS / 2 + 1)) "$T/f2"
} | caudal put -b 8M - /f2 &
PUT=$!
rbw_len() { find "$A/tmp" -name 'blk_*' ! -name '*.sync' -printf '%s\n' 2>/dev/null | sort -n | tail -n 1; }
rbw_started() { [ "$(rbw_len)" -ge "$BS" ] 2>/dev/null; }
wait_until 20 "f2's replica being written on A" rbw_started
used_k=$(df -k --output=used "$A" | tail -n 1 | tr -d ' ')
mount -o remount,size=$((used_k + 2048))k "$A" || fail "cannot shrink the tmpfs"
echo go >"$T/gate"
wait "$PUT" || fail "put of f2 failed after dn1's dir filled up"
wait_until 20 "dn1 says A is full" grep -q "data dir '$A' is full" "$DN_LOG"
grep "data dir '$A' is full" "$DN_LOG"
wait_until 40 "f2's block copied to dn1, on B" replicas_are "$B_" 1
wait_until 20 "fsck healthy" caudal fsck /
assert_eq "$(replicas_in "$A")" 2 "replicas on the full A"

say "a file larger than A's room goes to B"
mkfile "$T/f3" $((12 * BS + 3))
caudal put "$T/f3" /f3
wait_until 20 "f3's replicas on B" replicas_are "$B_" 14
assert_eq "$(replicas_in "$A")" 2 "replicas on the full A"
assert_eq "$(grep -c "data dir '$A' is full" "$DN_LOG")" 1 "lines saying A is full"
pid_is "$DN_PID" caudal-datanode || fail "dn1 stopped"

say "space comes back: A takes replicas again"
mount -o remount,size=256m "$A" || fail "cannot grow the tmpfs"
wait_until 20 "dn1 says A has room" grep -q "data dir '$A' has room again" "$DN_LOG"
mkfile "$T/f4" $((BS / 2))
caudal put "$T/f4" /f4
wait_until 10 "f4's replica on A" replicas_are "$A" 3

say "every file reads back"
wait_until 20 "fsck healthy" caudal fsck /
for f in f1 f2 f3 f4; do
	caudal get "/$f" "$T/$f.back"
	assert_same_file "$T/$f.back" "$T/$f"
done
echo "PASS"
