#!/bin/bash
# The mount with ordinary file and tree tools (1 MiB blocks): cp -r of a
# tree with files of many sizes then diff -r; cat, head -c, tail -c and dd
# bs=1M in both directions; a mount that reads 256 KiB ahead (background
# read-ahead over many windows, its kernel read-ahead raised); mv across
# directories, rm -r, find, du; tar cf from and tar xf into the mount;
# rsync -a into the mount then diff -r.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cluster_up
M=$T/mnt
mount_caudal "$M"

say "a tree of many sizes"
SRC=$T/src
mkdir -p "$SRC/a/b/c" "$SRC/empty-dir" "$SRC/x"
i=0
for size in 0 1 7 4095 4096 65535 65536 65537 $((BS - 1)) $BS $((BS + 1)) $((2 * BS + 12345)) $((3 * BS + 7)); do
	mkfile "$SRC/f.$size" "$size"
	case $((i % 3)) in
	0) mkfile "$SRC/a/g.$size" "$size" ;;
	1) mkfile "$SRC/a/b/h.$size" "$size" ;;
	2) mkfile "$SRC/a/b/c/k.$size" "$size" ;;
	esac
	i=$((i + 1))
done
ln -s f.1 "$SRC/link-to-f1"
for n in $(seq 1 40); do echo "small file $n" >"$SRC/x/s$n.txt"; done

say "cp -r and diff -r"
cp -r "$SRC" "$M/tree"
diff -r --no-dereference "$SRC" "$M/tree" || fail "the copy in the mount differs from the source"
assert_eq "$(readlink "$M/tree/link-to-f1")" f.1 "copied symlink"
assert_eq "$(stat -c %s "$M/tree/f.$((3 * BS + 7))")" $((3 * BS + 7)) "size in the mount"
assert_eq "$(caudal cat "/tree/a/b/c/k.$((2 * BS + 12345))" | cmp - "$SRC/a/b/c/k.$((2 * BS + 12345))" && echo same)" same "CLI view of a file written through the mount"
cp -r "$M/tree" "$T/back"
diff -r --no-dereference "$SRC" "$T/back" || fail "the tree copied back out differs"

say "cat, head -c, tail -c"
F=f.$((3 * BS + 7))
cat "$M/tree/$F" >"$T/cat.out"
assert_same_file "$SRC/$F" "$T/cat.out"
assert_same_file <(head -c 100000 "$SRC/$F") <(head -c 100000 "$M/tree/$F")
assert_same_file <(tail -c 1234567 "$SRC/$F") <(tail -c 1234567 "$M/tree/$F")
assert_same_file <(tail -c 1 "$SRC/$F") <(tail -c 1 "$M/tree/$F")
# random reads: a block boundary, the middle of a block, the last bytes
for off in $((BS - 3)) 1234567 $((3 * BS + 1)); do
	assert_same_file <(dd if="$SRC/$F" bs=1 skip=$off count=10 status=none) \
		<(dd if="$M/tree/$F" bs=1 skip=$off count=10 status=none)
done

say "dd bs=1M both ways"
mkfile "$T/dd.in" $((5 * BS + 333))
dd if="$T/dd.in" of="$M/dd.bin" bs=1M status=none
assert_same_file "$T/dd.in" "$M/dd.bin"
dd if="$M/dd.bin" of="$T/dd.out" bs=1M status=none
assert_same_file "$T/dd.in" "$T/dd.out"
dd if="$T/dd.in" of="$M/dd-fsync.bin" bs=1M conv=fsync status=none
assert_same_file "$T/dd.in" "$M/dd-fsync.bin"

say "background read-ahead: a mount reading 256 KiB ahead, so the file spans many windows"
R=$T/ra
mount_caudal "$R" readahead=256k
# the mount raised its kernel read-ahead from the kernel's 128 KiB to its own
assert_eq "$(cat "/sys/class/bdi/$(mountpoint -d "$R")/read_ahead_kb")" 256 "kernel read-ahead of the mount"
assert_same_file "$T/dd.in" <(cat "$R/dd.bin")
cat "$R/dd.bin" >"$T/ra1" &
p1=$!
dd if="$R/dd.bin" of="$T/ra2" bs=64k status=none &
p2=$!
wait $p1 $p2
assert_same_file "$T/dd.in" "$T/ra1"
assert_same_file "$T/dd.in" "$T/ra2"
# readers that stop mid-file (their handle closes while a window is fetched)
for n in 300000 1048577 2621440; do
	assert_same_file <(head -c $n "$T/dd.in") <(head -c $n "$R/dd.bin")
done
assert_same_file <(dd if="$T/dd.in" bs=1M skip=3 status=none) <(dd if="$R/dd.bin" bs=1M skip=3 status=none)
umount_caudal "$R"

say "mv across directories, over an existing file"
mkdir "$M/moved"
mv "$M/tree/a/b" "$M/moved/b"
[ ! -e "$M/tree/a/b" ] || fail "the source of mv still exists"
diff -r --no-dereference "$SRC/a/b" "$M/moved/b" || fail "moved directory differs"
mv "$M/tree/f.1" "$M/moved/f.1"
assert_same_file "$SRC/f.1" "$M/moved/f.1"
echo replaced >"$M/moved/victim"
mv "$M/moved/f.1" "$M/moved/victim"
assert_same_file "$SRC/f.1" "$M/moved/victim"
[ ! -e "$M/moved/f.1" ] || fail "rename over a file left the source"

say "find and du"
assert_eq "$(cd "$M/tree" && find . -type f | sort | tr '\n' ' ')" \
	"$(cd "$SRC" && find . -type f ! -name f.1 ! -path './a/b/*' | sort | tr '\n' ' ')" "find -type f"
assert_eq "$(find "$M/moved/b" -name 'k.*' | wc -l)" "$(find "$SRC/a/b" -name 'k.*' | wc -l)" "find -name"
du_m=$(du -s --apparent-size -B1 "$M/moved/b" | cut -f1)
du_s=$(du -s --apparent-size -B1 "$SRC/a/b" | cut -f1)
# directories count differently; the files' bytes must be there
[ "$du_m" -ge "$(find "$SRC/a/b" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')" ] ||
	fail "du of the mount ($du_m) is below the bytes of its files (local du $du_s)"
[ "$(du -s -k "$M/tree" | cut -f1)" -gt 0 ] || fail "du -k of the tree is 0"

say "rm -r"
rm -r "$M/moved"
[ ! -e "$M/moved" ] || fail "rm -r left the directory"
assert_eq "$(ls "$M" | tr '\n' ' ')" "dd-fsync.bin dd.bin tree " "ls after rm -r"

say "tar cf from and tar xf into the mount"
tar cf "$T/from-mount.tar" -C "$M" tree
mkdir "$T/untar"
tar xf "$T/from-mount.tar" -C "$T/untar"
diff -r --no-dereference "$M/tree" "$T/untar/tree" || fail "tar from the mount differs"
tar cf "$T/src.tar" -C "$T" src
mkdir "$M/untar"
tar xf "$T/src.tar" -C "$M/untar"
diff -r --no-dereference "$SRC" "$M/untar/src" || fail "tar xf into the mount differs"
assert_eq "$(stat -c %Y "$M/untar/src/f.$BS")" "$(stat -c %Y "$SRC/f.$BS")" "mtime restored by tar"

say "rsync -a into the mount"
rsync -a "$SRC/" "$M/rsynced/"
diff -r --no-dereference "$SRC" "$M/rsynced" || fail "rsync -a copy differs"
assert_eq "$(stat -c '%a %Y' "$M/rsynced/a/g.0")" "$(stat -c '%a %Y' "$SRC/a/g.0")" "mode and mtime kept by rsync"
# a second run changes one file (rsync writes a temp file and renames it)
mkfile "$SRC/a/g.0" 5000
rsync -a "$SRC/" "$M/rsynced/"
diff -r --no-dereference "$SRC" "$M/rsynced" || fail "rsync -a update differs"
ls -la "$M/rsynced/a" | grep -q '\.g\.0\.' && fail "rsync left its temporary file"

umount_caudal "$M"
say "ok"
