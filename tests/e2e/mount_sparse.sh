#!/bin/bash
# Sparse growth (issue 9): growing a file by truncate or by a write past
# its end records a hole in the namenode; nothing is written, reads return
# zeros, du counts only stored bytes. `truncate -s 1T` answers at once
# (it once wrote zeros until it had filled 71 GB of the shared disk); a
# size past max_file_size gets EFBIG and leaves the file as it was. Each
# case is compared byte for byte with the same operations on a local file,
# and survives a namenode restart; fsck stays HEALTHY.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cluster_up # max_file_size is 1 PiB by default
M=$T/mnt
mount_caudal "$M"
L=$T/local
mkdir -p "$L"

say "truncate -s 1T of an empty file answers at once and stores nothing"
touch "$M/huge"
timeout 10 truncate -s 1T "$M/huge" || fail "truncate -s 1T did not answer within 10 s"
assert_eq "$(stat -c %s "$M/huge")" $((1 << 40)) "size after truncate -s 1T"
assert_eq "$(du -k "$M/huge" | cut -f1)" 0 "du of a 1 TiB hole (KiB)"
head -c 1048576 "$M/huge" | cmp -s - <(head -c 1048576 /dev/zero) || fail "the hole does not read as zeros"
tail -c 65536 "$M/huge" | cmp -s - <(head -c 65536 /dev/zero) || fail "the end of the hole does not read as zeros"
assert_contains "$(getfattr --absolute-names --only-values -n user.caudal.blocks "$M/huge")" "0 $((1 << 40)) hole" "the block list names the hole"

say "past max_file_size: EFBIG, file unchanged"
assert_fails_with "File too large" truncate -s $(((1 << 50) + 1)) "$M/huge"
assert_eq "$(stat -c %s "$M/huge")" $((1 << 40)) "size after the refused truncate"
# just at the limit is fine (pjdfstest ftruncate/12.t grows to 999999999999999)
truncate -s 999999999999999 "$M/huge"
assert_eq "$(stat -c %s "$M/huge")" 999999999999999 "size just under the limit"

say "data, a hole, more data: as a local file"
mkfile "$T/a" 200000
mkfile "$T/b" 150001
for d in "$M" "$L"; do
	cp "$T/a" "$d/mixed"
	truncate -s 1000000 "$d/mixed"
	cat "$T/b" >>"$d/mixed"
	# a write past the end (dd seek) leaves a hole before it
	dd if="$T/a" of="$d/mixed" bs=4096 count=3 seek=400 conv=notrunc status=none
done
assert_same_file "$L/mixed" "$M/mixed"
assert_eq "$(stat -c %s "$M/mixed")" "$(stat -c %s "$L/mixed")" "size of the mixed file"
stored=$(du -B1 "$M/mixed" | cut -f1)
[ "$stored" -lt 500000 ] || fail "du counts the holes: $stored bytes for $((200000 + 150001 + 12288)) stored"

say "shrink into a hole, grow again, append"
for d in "$M" "$L"; do
	truncate -s 600000 "$d/mixed"
	truncate -s 700000 "$d/mixed"
	printf 'tail' >>"$d/mixed"
done
assert_same_file "$L/mixed" "$M/mixed"

say "an open file grown with ftruncate and written past its end"
for d in "$M" "$L"; do
	/usr/bin/python3 - "$d/open" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.write(fd, b"x" * 70000)
os.ftruncate(fd, 300000)
os.lseek(fd, 300000, os.SEEK_SET)
os.write(fd, b"y" * 1000)
os.lseek(fd, 500000, os.SEEK_SET)
os.write(fd, b"z" * 10)
os.close(fd)
PY
done
assert_same_file "$L/open" "$M/open"

say "nothing was written for the holes"
held=$(du -sb "$CAUDAL_HOME" | cut -f1)
[ "$held" -lt $((64 << 20)) ] || fail "the cluster's folder holds $held bytes after writing holes"
caudal fsck / >"$T/fsck" || fail "fsck: $(cat "$T/fsck")"
assert_contains "$(cat "$T/fsck")" HEALTHY "fsck"

say "after a namenode restart"
umount_caudal "$M"
stop_daemon namenode TERM
caudal up >>"$T/up.log" 2>&1 || fail "restart: $(tail -5 "$T/up.log")"
mount_caudal "$M"
assert_eq "$(stat -c %s "$M/huge")" 999999999999999 "size of the hole after restart"
assert_same_file "$L/mixed" "$M/mixed"
assert_same_file "$L/open" "$M/open"
caudal fsck / >"$T/fsck" || fail "fsck after restart: $(cat "$T/fsck")"
assert_contains "$(cat "$T/fsck")" HEALTHY "fsck after restart"
say "ok"
