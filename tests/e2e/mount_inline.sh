#!/bin/bash
# Small files inline (issue 9): a file of at most inline_max bytes (64 KiB
# by default) lives in its inode record; no block, no datanode. Files at
# the boundary, written through the mount and with `caudal put`, read back
# identical through both; user.caudal.blocks says "inline" up to the limit
# and lists blocks above it; the datanodes and fsck hold no block for them;
# an append across the limit moves the file into a block; a truncate past
# the limit works; inline files survive a namenode restart and a
# checkpoint restore; a wordcount over a folder of inline files counts
# right, one map per file.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
source "$(dirname "$0")/job_lib.sh"
cluster_up
M=$T/mnt
mount_caudal "$M"
LIM=65536
blocks_of() { getfattr --absolute-names --only-values -n user.caudal.blocks "$1"; }
fsck_field() { caudal fsck "${2:-/}" | sed -n "s/^$1: //p"; }

say "files at the boundary, through the mount and with caudal put"
caudal mkdir -p /b
sizes="0 1 4096 65535 65536 65537 1048576"
for n in $sizes; do
	mkfile "$T/f$n" "$n"
	cp "$T/f$n" "$M/b/m$n"
	caudal put "$T/f$n" "/b/p$n"
done
for n in $sizes; do
	for f in m p; do
		cmp "$T/f$n" "$M/b/$f$n" || fail "$f$n read through the mount differs"
		caudal get "/b/$f$n" "$T/got" || fail "caudal get /b/$f$n"
		cmp "$T/f$n" "$T/got" || fail "$f$n read with caudal get differs"
		assert_eq "$(stat -c %s "$M/b/$f$n")" "$n" "size of $f$n"
		b=$(blocks_of "$M/b/$f$n")
		if [ "$n" -eq 0 ]; then
			assert_eq "$b" "" "block list of an empty file"
		elif [ "$n" -le $LIM ]; then
			assert_eq "$b" "inline $n" "block list of $f$n"
			# du and st_blocks count the inline bytes
			assert_eq "$(du -B1 --apparent-size "$M/b/$f$n" | cut -f1)" "$n" "du --apparent-size of $f$n"
			assert_eq "$(stat -c %b "$M/b/$f$n")" $(((n + 511) / 512)) "st_blocks of $f$n"
		else
			case $b in [1-9]*" $((n < BS ? n : BS)) "*) ;; *) fail "$f$n is not in blocks: '$b'" ;; esac
		fi
	done
done
# 65537 and 1 MiB are one block each (BS = 1 MiB), twice: 4 blocks
assert_eq "$(fsck_field blocks /b)" 4 "blocks under /b"
assert_eq "$(fsck_field 'inline files' /b)" 8 "inline files under /b"
assert_eq "$(fsck_field 'inline bytes' /b)" $((2 * (1 + 4096 + 65535 + 65536))) "inline bytes under /b"

say "many inline files cost the datanodes nothing"
before=$(fsck_field blocks)
rep_before=$(fsck_field replicas | cut -d' ' -f1)
mkdir "$M/many"
for i in $(seq 1 40); do head -c $((i * 100)) "$T/f65536" >"$M/many/s$i"; done
assert_eq "$(fsck_field blocks)" "$before" "blocks after 40 small files"
assert_eq "$(fsck_field replicas | cut -d' ' -f1)" "$rep_before" "replicas after 40 small files"
for i in 1 17 40; do
	cmp <(head -c $((i * 100)) "$T/f65536") "$M/many/s$i" || fail "many/s$i differs"
done

say "append within and across the limit"
L=$T/local
mkdir -p "$L"
for d in "$M" "$L"; do
	cp "$T/f4096" "$d/app"
	cat "$T/f4096" >>"$d/app"           # 8 KiB: still inline
	head -c 57344 "$T/f65536" >>"$d/app" # 64 KiB exactly
done
cmp "$L/app" "$M/app" || fail "append up to the limit differs"
assert_eq "$(blocks_of "$M/app")" "inline $LIM" "block list at the limit"
for d in "$M" "$L"; do printf 'x' >>"$d/app"; done
cmp "$L/app" "$M/app" || fail "append across the limit differs"
case $(blocks_of "$M/app") in [1-9]*" $((LIM + 1)) "*) ;; *) fail "not moved into a block: $(blocks_of "$M/app")" ;; esac
for d in "$M" "$L"; do cat "$T/f65537" >>"$d/app"; done
cmp "$L/app" "$M/app" || fail "append after the move differs"
caudal put "$T/f65535" /b/capp
caudal append "$T/f4096" /b/capp || fail "caudal append"
cat "$T/f65535" "$T/f4096" | cmp - "$M/b/capp" || fail "caudal append across the limit differs"

say "truncate of an inline file: cut, grow within and past the limit"
for d in "$M" "$L"; do
	cp "$T/f4096" "$d/tr"
	truncate -s 100 "$d/tr"
	truncate -s 60000 "$d/tr"
done
cmp "$L/tr" "$M/tr" || fail "truncate within the limit differs"
assert_eq "$(blocks_of "$M/tr")" "inline 60000" "block list after growing within the limit"
for d in "$M" "$L"; do truncate -s 3000000 "$d/tr"; done
cmp "$L/tr" "$M/tr" || fail "truncate past the limit differs"
# through an open handle: write, grow past the limit, write at the end
for d in "$M" "$L"; do
	/usr/bin/python3 - "$d/open" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.write(fd, b"x" * 1000)
os.ftruncate(fd, 200000)
os.lseek(fd, 200000, os.SEEK_SET)
os.write(fd, b"y" * 10)
os.close(fd)
PY
done
cmp "$L/open" "$M/open" || fail "ftruncate past the limit of an open inline file differs"

say "fsync of an inline file makes it readable elsewhere before close"
/usr/bin/python3 - "$M/synced" "$CAUDAL" <<'PY'
import os, subprocess, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.write(fd, b"durable " * 100)
os.fsync(fd)
got = subprocess.run([sys.argv[2], "cat", "/synced"], capture_output=True).stdout
os.close(fd)
sys.exit(0 if got == b"durable " * 100 else 1)
PY
[ $? -eq 0 ] || fail "fsynced inline bytes not visible to another client"

say "setrep on an inline file is accepted"
caudal setrep 2 /b/p4096 || fail "setrep of an inline file"
assert_eq "$(field replication caudal stat /b/p4096)" 2 "replication of an inline file"
caudal fsck / >"$T/fsck" || fail "fsck: $(cat "$T/fsck")"

say "a wordcount over a folder of inline files"
mkdir -p "$M/words"
for i in 1 2 3 4 5; do gen_text "$M/words/t$i" 300 "$i"; done
for i in 1 2 3 4 5; do
	assert_eq "$(blocks_of "$M/words/t$i" | cut -d' ' -f1)" inline "t$i is inline"
done
cat "$M"/words/t* >"$T/all.txt"
jobs_up
job_submit wc "input = /words
output = /out/wc
map = wordcount
reduce = sum
reduces = 2"
job_expect wc SUCCEEDED 120
assert_eq "$(job_field wc maps)" 5 "one map per inline file"
wc_expected "$T/all.txt" >"$T/want"
wc_got "$M"/out/wc/part-* >"$T/got"
assert_same_file "$T/want" "$T/got"

say "a namenode restart keeps inline files"
check_all() {
	for n in 1 4096 65536; do
		cmp "$T/f$n" "$M/b/m$n" || fail "m$n differs $1"
		cmp "$T/f$n" <(caudal cat "/b/p$n") || fail "p$n differs $1"
	done
	cmp "$L/app" "$M/app" || fail "app differs $1"
	cmp "$L/tr" "$M/tr" || fail "tr differs $1"
	# caudal report's count (the namenode's counter) agrees with fsck's walk
	assert_eq "$(caudal report | sed -n 's/^inline files: //p')" "$(fsck_field 'inline files')" "inline files in report and fsck $1"
	assert_eq "$(caudal report | sed -n 's/^inline bytes: //p')" "$(fsck_field 'inline bytes')" "inline bytes in report and fsck $1"
}
check_all "before a restart"
# shellcheck disable=SC2046
"$BIN/caudal-namenode" --checkpoint --once --namenode="$CAUDAL_NAMENODE" \
	--checkpoint_dir="$T/ck" --log_level=warn $(tls_flags namenode) || fail "checkpoint failed"
ck=$(ls -d "$T"/ck/ckpt-* | tail -n 1)
umount_caudal "$M"
stop_daemon namenode TERM
caudal up >>"$T/up.log" 2>&1 || fail "restart: $(tail -5 "$T/up.log")"
mount_caudal "$M"
check_all "after a restart"

say "a checkpoint restore keeps inline files"
umount_caudal "$M"
stop_daemon namenode TERM
mv "$CAUDAL_HOME/nn" "$T/nn-lost"
"$BIN/caudal-namenode" --restore="$ck" --dir="$CAUDAL_HOME/nn" || fail "restore failed"
caudal up >>"$T/up.log" 2>&1 || fail "restart after restore: $(tail -5 "$T/up.log")"
wait_until 30 "files readable again" sh -c "'$CAUDAL' cat /b/p65537 >/dev/null"
mount_caudal "$M"
check_all "after a checkpoint restore"
assert_eq "$(fsck_field 'inline files' /b)" 8 "inline files after restore"
say "ok"
