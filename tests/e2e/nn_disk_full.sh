#!/bin/bash
# Namenode metadata disk full (issue 8): with the metadata folder on a small
# tmpfs filled to the last byte, namespace changes fail with ENOSPC through
# the CLI while reads go on and the namenode stays up; once the filler is
# removed changes work again without a restart; after a restart every
# acknowledged change is there, no refused one is, and fsck is HEALTHY.
# Then the same without the reserve (reserved_mb=0), where RocksDB itself
# meets ENOSPC in its WAL: the namenode must neither die nor hang, and
# reopens the store once space is back.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"

# the namenode's metadata folder is $CAUDAL_HOME/nn (caudal up): mount the
# tmpfs there before the cluster starts. The trap unmounts it (lazily, so a
# namenode still holding files in it does not keep it mounted).
NNDIR=$T/cluster/nn
mkdir -p "$NNDIR"
mount -t tmpfs -o size=40m tmpfs "$NNDIR" || fail "cannot mount a tmpfs on $NNDIR"
register_mount "$NNDIR"
export CAUDAL_NN_RESERVED_MB=${CAUDAL_NN_RESERVED_MB:-8}
cluster_up
NNPID=$(daemon_pid namenode)
mount_caudal "$T/m"

say "before: acknowledged changes"
caudal mkdir -p /keep/a
mkfile "$T/f1" 300000
caudal put "$T/f1" /keep/f1
caudal setrep 2 /keep/f1

say "fill the metadata disk to the last byte"
dd if=/dev/zero of="$NNDIR/filler" bs=1M 2>/dev/null || true
[ "$(df --output=avail -B1 "$NNDIR" | tail -1)" -lt $((1024 * 1024)) ] ||
	fail "the tmpfs is not full: $(df -h "$NNDIR" | tail -1)"

say "mutations fail with ENOSPC"
mkfile "$T/f2" 5000
for cmd in "mkdir /refused-dir" "put $T/f2 /refused-file" "append $T/f2 /keep/f1" \
	"mv /keep/f1 /keep/moved" "rm /keep/f1" "setrep 3 /keep/f1"; do
	# shellcheck disable=SC2086
	assert_fails caudal $cmd
	assert_contains "$OUT" "No space left on device" "caudal $cmd"
done
# and through the mount
assert_fails_with "No space left on device" mkdir "$T/m/refused-mnt"
assert_fails_with "No space left on device" cp "$T/f2" "$T/m/refused-cp"
assert_same_file "$T/f1" "$T/m/keep/f1"
grep -q "below the reserve" "$CAUDAL_HOME/logs/namenode.log" ||
	fail "the namenode did not log why it refuses changes"

say "reads go on, the namenode stays up"
assert_ok caudal ls /keep
assert_contains "$OUT" "f1"
caudal get /keep/f1 "$T/f1.out"
assert_same_file "$T/f1" "$T/f1.out"
assert_ok caudal stat /keep/f1
assert_ok caudal fsck /
pid_is "$NNPID" caudal-namenode || fail "the namenode died on a full disk"
assert_fails caudal stat /refused-dir
assert_fails caudal stat /refused-file

say "space returns: mutations work again without a restart"
rm -f "$NNDIR/filler"
caudal mkdir /after
mkfile "$T/f3" 200000
caudal put "$T/f3" /after/f3
caudal mv /keep/a /after/a
grep -q "free again" "$CAUDAL_HOME/logs/namenode.log" ||
	fail "the namenode did not log that it accepts changes again"
[ "$(daemon_pid namenode)" = "$NNPID" ] || fail "the namenode was restarted"

mkdir "$T/m/after/by-mount"
umount_caudal "$T/m"

say "restart: every acknowledged change is there, no refused one"
stop_daemon namenode TERM
caudal up >/dev/null
wait_until 30 "namenode back" caudal ls /
for p in /keep /keep/f1 /after /after/a /after/f3 /after/by-mount; do
	assert_ok caudal stat "$p"
done
for p in /refused-dir /refused-file /refused-mnt /refused-cp /keep/moved /keep/a; do
	assert_fails caudal stat "$p"
done
assert_eq "$(field replication caudal stat /keep/f1)" 2 "replication of /keep/f1"
wait_until 30 "/keep/f1 readable" caudal get /keep/f1 "$T/f1.back"
assert_same_file "$T/f1" "$T/f1.back"
wait_until 30 "/after/f3 readable" caudal get /after/f3 "$T/f3.back"
assert_same_file "$T/f3" "$T/f3.back"
wait_until 30 "fsck HEALTHY" caudal fsck /
assert_ok caudal fsck /
assert_contains "$OUT" "HEALTHY"

say "no reserve: RocksDB's own write fails with ENOSPC"
stop_daemon namenode TERM
CAUDAL_NN_RESERVED_MB=0 caudal up >/dev/null
NNPID=$(daemon_pid namenode)
wait_until 30 "namenode back" caudal mkdir /raw
dd if=/dev/zero of="$NNDIR/filler" bs=1M 2>/dev/null || true
dd if=/dev/zero of="$NNDIR/filler2" bs=4k 2>/dev/null || true
# the WAL's last page takes a few more records before the disk says no
n=0
while caudal mkdir "/raw/d$n" 2>"$T/err"; do
	n=$((n + 1))
	[ $n -lt 2000 ] || fail "2000 directories made on a full disk"
done
assert_contains "$(cat "$T/err")" "No space left on device" "the first refused mkdir"
assert_fails caudal mkdir /raw/again
assert_contains "$OUT" "No space left on device"
pid_is "$NNPID" caudal-namenode || fail "the namenode died when RocksDB met ENOSPC"
assert_eq "$(caudal ls /raw | wc -l)" "$n" "directories listed on the full disk"
rm -f "$NNDIR/filler" "$NNDIR/filler2"
caudal mkdir /raw/back
grep -q "metadata store reopened" "$CAUDAL_HOME/logs/namenode.log" ||
	fail "the namenode did not reopen its store"
pid_is "$NNPID" caudal-namenode || fail "the namenode was restarted"
stop_daemon namenode KILL
caudal up >/dev/null
wait_until 30 "namenode back" caudal ls /raw
assert_eq "$(caudal ls /raw | wc -l)" "$((n + 1))" "directories after a crash"
for i in 0 $((n - 1)); do assert_ok caudal stat "/raw/d$i"; done
assert_ok caudal stat /raw/back
assert_fails caudal stat /raw/again
assert_fails caudal stat "/raw/d$n"
echo "PASS"
