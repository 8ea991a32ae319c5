#!/bin/bash
# put/get round trips are byte-identical at the block-size edges (1 MiB
# blocks): 0, 1, block-1, block, block+1 and 3 blocks + 7 bytes, from a file
# and from stdin, out to a file, to stdout and through cat; plus the basic
# namespace commands the CLI offers.
source "$(dirname "$0")/../lib.sh"
cluster_up

caudal mkdir -p /rt/sub
for size in 0 1 $((BS - 1)) $BS $((BS + 1)) $((3 * BS + 7)); do
	say "size $size"
	mkfile "$T/in.$size" "$size"
	assert_ok caudal put "$T/in.$size" "/rt/f.$size"
	caudal put - "/rt/sub/s.$size" <"$T/in.$size"
	caudal get "/rt/f.$size" "$T/out.$size"
	assert_same_file "$T/in.$size" "$T/out.$size"
	caudal get "/rt/sub/s.$size" - >"$T/stdout.$size"
	assert_same_file "$T/in.$size" "$T/stdout.$size"
	caudal cat "/rt/f.$size" >"$T/cat.$size"
	assert_same_file "$T/in.$size" "$T/cat.$size"
	assert_eq "$(field size caudal stat "/rt/f.$size")" "$size" "size of /rt/f.$size"
	if [ "$size" -gt 0 ] && [ "$size" -le 65536 ]; then
		# small files are inline (issue 9): no block, one "inline LEN" line
		assert_eq "$(field blocks caudal stat "/rt/f.$size")" 0 "blocks of inline /rt/f.$size"
		assert_eq "$(caudal blocks "/rt/f.$size")" "inline $size" "block lines of inline /rt/f.$size"
	else
		assert_eq "$(field blocks caudal stat "/rt/f.$size")" $(((size + BS - 1) / BS)) "blocks of /rt/f.$size"
		assert_eq "$(caudal blocks "/rt/f.$size" | wc -l)" $(((size + BS - 1) / BS)) "block lines of /rt/f.$size"
	fi
	assert_eq "$(field under_construction caudal stat "/rt/f.$size")" no "/rt/f.$size still open"
done

say "listing"
assert_eq "$(caudal ls /rt | tr '\n' ' ')" "f.0 f.1 f.1048575 f.1048576 f.1048577 f.3145735 sub " "ls /rt"
assert_contains "$(caudal ls -l /rt)" "3145735" "ls -l /rt"
assert_eq "$(caudal ls /rt/sub | wc -l)" 6 "entries in /rt/sub"

say "get into a folder, put into a folder"
mkdir "$T/dl"
caudal get /rt/f.1 "$T/dl"
assert_same_file "$T/in.1" "$T/dl/f.1"
caudal put "$T/in.1" /rt/sub
assert_same_file "$T/in.1" <(caudal cat /rt/sub/in.1)

say "overwrite needs -f"
assert_fails caudal put "$T/in.1" /rt/f.0
assert_contains "$OUT" "cannot put '/rt/f.0': File exists"
caudal put -f "$T/in.1" /rt/f.0
assert_same_file "$T/in.1" <(caudal cat /rt/f.0)

say "per-file replication and block size"
caudal put -r 2 -b 256k "$T/in.$((BS + 1))" /rt/small-blocks
assert_eq "$(field block_size caudal stat /rt/small-blocks)" 262144 "block size"
assert_eq "$(field replication caudal stat /rt/small-blocks)" 2 "replication"
assert_eq "$(caudal blocks /rt/small-blocks | wc -l)" 5 "blocks of 256 KiB"
assert_same_file "$T/in.$((BS + 1))" <(caudal cat /rt/small-blocks)

say "append"
caudal put "$T/in.$((BS - 1))" /rt/app
caudal append "$T/in.$((BS + 1))" /rt/app
cat "$T/in.$((BS - 1))" "$T/in.$((BS + 1))" >"$T/app.want"
assert_same_file "$T/app.want" <(caudal cat /rt/app)

say "mv and rm"
caudal mv /rt/f.1 /rt/moved
assert_fails caudal stat /rt/f.1
assert_contains "$OUT" "cannot stat '/rt/f.1': No such file or directory"
assert_same_file "$T/in.1" <(caudal cat /rt/moved)
caudal mv /rt/moved /rt/sub
assert_same_file "$T/in.1" <(caudal cat /rt/sub/moved)
assert_fails caudal rm /rt/sub
assert_contains "$OUT" "Is a directory"
caudal rm /rt/sub/moved
assert_fails caudal cat /rt/sub/moved
caudal rm -r /rt/sub
assert_fails caudal ls /rt/sub
assert_fails caudal get /rt/nothing "$T/nothing"
assert_contains "$OUT" "cannot get '/rt/nothing': No such file or directory"
[ ! -e "$T/nothing" ] || fail "a failed get left '$T/nothing' behind"

say "fsck"
wait_until 20 "fsck / healthy" caudal fsck /
assert_ok caudal fsck /
assert_contains "$OUT" "status: HEALTHY"
echo "PASS"
