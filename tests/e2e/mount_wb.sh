#!/bin/bash
# Write-back creates (issue 9, mount/mnt_wb.h): a mount that holds a
# directory answers creates in it at once and sends them to the namenode in
# batches. Checked here: the files are made that way (the mount's counters),
# another client sees every one of them at once (it waits for the hold to be
# given back), small and large files keep their bytes, a file changed right
# after its create (chmod, xattr, rename, rm, append, truncate) ends as it
# should, O_EXCL between two mounts racing for the same names has exactly
# one winner per name, fsync makes a file survive the mount's SIGKILL, an
# unmount sends everything, a namenode restart keeps the reserved ids, a
# flood of creates past the pending limit waits instead of growing, and
# nothing was lost.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cluster_up
A=$T/a
B=$T/b
read -r MPORT <<<"$(free_ports 1)"
# Mounts a and waits until it follows the event log (its log keeps the
# lines of earlier mounts: wait for one more).
mount_a() {
	local before
	before=$(grep -c "directory cache on" "$T/logs/mount-a.log" 2>/dev/null || true)
	mount_caudal "$A" "metrics_port=$MPORT"
	wait_until 10 "mount a follows the event log" \
		test "$(grep -c "directory cache on" "$T/logs/mount-a.log")" -gt "${before:-0}"
}
mount_a
mount_caudal "$B" noasync_create

metric() { # NAME{LABELS}: the value in mount a's /metrics (0 when absent)
	curl -s "http://127.0.0.1:$MPORT/metrics" | awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'
}

say "files made in a directory mount a made are answered there and seen by mount b at once"
mkdir "$A/d"
for i in $(seq 1 300); do printf 'file %d\n' "$i" >"$A/d/f$i"; done
touch "$A/d/empty"
assert_eq "$(ls "$B/d" | wc -l)" 301 "files mount b lists right after"
assert_eq "$(cat "$B/d/f123")" "file 123" "a small file's bytes through mount b"
assert_eq "$(stat -c %s "$B/d/empty")" 0 "the empty file's size"
local_made=$(metric 'caudal_mount_wb_files_total{state="local"}')
[ "${local_made%.*}" -ge 301 ] || fail "mount a made $local_made files without asking, want >= 301"
assert_eq "$(caudal ls /d | wc -l)" 301 "files the namenode lists"

say "a file larger than inline_max becomes a block file on the way"
head -c 300000 /dev/urandom >"$T/big"
cp "$T/big" "$A/d/big"
assert_same_file "$T/big" "$B/d/big"
blocks=$(getfattr --absolute-names --only-values -n user.caudal.blocks "$B/d/big")
assert_contains "$blocks" " 300000 " "the large file's block"
assert_contains "$(getfattr --absolute-names --only-values -n user.caudal.blocks "$B/d/f1")" inline \
	"a small file's blocks"

say "a file changed right after its create ends as it should"
mkdir "$A/e"
echo one >"$A/e/m1" && chmod 600 "$A/e/m1"
echo two >"$A/e/m2" && setfattr -n user.k -v v "$A/e/m2"
echo three >"$A/e/m3" && mv "$A/e/m3" "$A/e/m3b"
echo four >"$A/e/m4" && rm "$A/e/m4"
echo five >"$A/e/m5" && echo more >>"$A/e/m5"
echo six >"$A/e/m6" && truncate -s 2 "$A/e/m6"
exec 7>"$A/e/m7"
echo seven >&7
assert_eq "$(stat -c %s "$A/e/m7")" 6 "size of a new file still open"
exec 7>&-
assert_eq "$(stat -c %a "$B/e/m1")" 600 "chmod right after the create"
assert_eq "$(getfattr --absolute-names --only-values -n user.k "$B/e/m2")" v "setfattr right after"
assert_eq "$(cat "$B/e/m3b")" three "rename right after"
[ ! -e "$B/e/m3" ] && [ ! -e "$B/e/m4" ] || fail "a renamed or removed name still shows in mount b"
assert_eq "$(cat "$B/e/m5")" "five
more" "append right after"
assert_eq "$(cat "$B/e/m6")" si "truncate right after"
assert_eq "$(cat "$B/e/m7")" seven "a file written through an open descriptor"

say "tar into the mount round-trips (times, modes)"
mkdir -p "$T/src/x/y"
for i in $(seq 1 50); do echo "t$i" >"$T/src/x/y/t$i"; done
chmod 640 "$T/src/x/y/t7"
touch -d @1200000000 "$T/src/x/y/t9"
tar -C "$T/src" -cf "$T/src.tar" x
mkdir "$A/tar"
tar -C "$A/tar" -xf "$T/src.tar"
tar -C "$B/tar" -df "$T/src.tar" || fail "tar -d through mount b finds differences"

say "O_EXCL from two mounts racing for the same names: one winner per name"
mkdir "$A/race"
race() { # MOUNTDIR TAG
	/usr/bin/python3 - "$1/race" "$2" <<'PY'
import os, sys
d, tag = sys.argv[1], sys.argv[2]
won = 0
for i in range(200):
    try:
        fd = os.open(f"{d}/n{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        continue
    os.write(fd, tag.encode()); os.close(fd); won += 1
print(won)
PY
}
race "$A" A >"$T/won.a" &
ra=$!
register_pid "$ra"
race "$B" B >"$T/won.b"
wait "$ra" || fail "the racer on mount a failed"
wa=$(cat "$T/won.a") wb=$(cat "$T/won.b")
assert_eq $((wa + wb)) 200 "names won by a ($wa) and b ($wb)"
assert_eq "$(ls "$B/race" | wc -l)" 200 "names made"
assert_eq "$(cat "$B"/race/* | grep -o A | wc -l)" "$wa" "files holding a's tag"

say "fsync: the file survives the mount's SIGKILL right after"
mkdir "$A/sync"
/usr/bin/python3 - "$A/sync/kept" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"durable\n"); os.fsync(fd); os.close(fd)
PY
/usr/bin/python3 - "$A/sync" <<'PY'
import os, sys
for i in range(20):
    with open(f"{sys.argv[1]}/s{i}", "w") as f:
        f.write("x")
fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.close(fd)
PY
kill -9 "$(sed -n 1p "$T/mounts/pids/a.pid")"
fusermount3 -uz "$A" 2>/dev/null || true
assert_eq "$(cat "$B/sync/kept")" durable "a file fsynced before the kill"
assert_eq "$(ls "$B/sync" | wc -l)" 21 "files of a directory fsynced before the kill"

say "an unmount sends every file made"
mount_a
mkdir "$A/u"
for i in $(seq 1 100); do echo "$i" >"$A/u/g$i"; done
umount_caudal "$A"
assert_eq "$(ls "$B/u" | wc -l)" 100 "files made just before the unmount"

say "a namenode restart keeps the mount's reserved ids"
mount_a
mkdir "$A/r"
for i in $(seq 1 20); do echo "$i" >"$A/r/before$i"; done
stop_daemon namenode TERM
caudal up >/dev/null
wait_until 30 "mount a lists through the restarted namenode" ls "$A/r/before1"
mkdir "$A/r2"
for i in $(seq 1 20); do echo "$i" >"$A/r2/after$i"; done
assert_eq "$(ls "$B/r" "$B/r2" | grep -c -E '^(before|after)')" 40 "files made around the restart"

say "a flood past the pending limit waits for the namenode instead of growing"
mkdir "$A/flood"
/usr/bin/python3 - "$A/flood" <<'PY'
import os, sys
for i in range(6000):
    os.close(os.open(f"{sys.argv[1]}/z{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
PY
assert_eq "$(ls "$B/flood" | wc -l)" 6000 "files of the flood"

say "nothing was lost"
assert_eq "$(metric 'caudal_mount_wb_files_total{state="lost"}')" 0 "files lost by mount a"
if grep -q "is lost" "$T"/logs/mount-*.log; then
	fail "a mount lost files: $(grep -h 'is lost' "$T"/logs/mount-*.log | head -3)"
fi
caudal fsck / >"$T/fsck" || fail "fsck: $(cat "$T/fsck")"
say "ok"
