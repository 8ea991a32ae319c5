#!/bin/bash
# The mount's own cache of names and attributes (issue 9): after the
# kernel's caches are dropped, stats of files the mount wrote or listed are
# answered without the namenode; yet every change another client makes
# (here a second mount: chmod, truncate, append, touch, xattrs, rename over
# a file, rm -r of a tree) shows through the first mount within seconds,
# far inside the cache's 30 s timeout, because the mount follows the
# namespace event log.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cluster_up
A=$T/a
B=$T/b
mount_caudal "$A" meta_timeout=30
mount_caudal "$B"
wait_until 10 "mount a follows the event log" grep -q "directory cache on" "$T/logs/mount-a.log"

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# Waits up to 5 s for CMD's output, run in mount a after dropping the
# kernel's caches, to be WANT.
seen_in_a() { # WHAT WANT CMD...
	local what=$1 want=$2 got end=$((SECONDS + 5))
	shift 2
	while :; do
		drop_caches
		got=$("$@" 2>&1) || true
		[ "$got" = "$want" ] && return 0
		[ $SECONDS -lt $end ] || fail "$what: mount a still shows '$got' after 5 s, want '$want'"
		sleep 0.2
	done
}

say "files written through mount a stat from its cache once the kernel forgot them"
mkdir "$A/d"
for i in $(seq 1 100); do printf 'file %d\n' "$i" >"$A/d/f$i"; done
drop_caches
for i in $(seq 1 100); do
	assert_eq "$(stat -c %s "$A/d/f$i")" "$(printf 'file %d\n' "$i" | wc -c)" "size of f$i"
done
ls -l "$A/d" >/dev/null

say "another client's changes show in mount a"
chmod 600 "$B/d/f1"
seen_in_a "chmod elsewhere" 600 stat -c %a "$A/d/f1"
truncate -s 3 "$B/d/f2"
seen_in_a "truncate elsewhere" 3 stat -c %s "$A/d/f2"
echo more >>"$B/d/f3"
seen_in_a "append elsewhere" "file 3
more" cat "$A/d/f3"
touch -d @1000000000 "$B/d/f4"
seen_in_a "touch elsewhere" 1000000000 stat -c %Y "$A/d/f4"
setfattr -n user.colour -v blue "$B/d/f5"
seen_in_a "setfattr elsewhere" blue getfattr --absolute-names --only-values -n user.colour "$A/d/f5"
echo replacement >"$B/d/new"
mv "$B/d/new" "$B/d/f6"
seen_in_a "rename over a file elsewhere" replacement cat "$A/d/f6"
seen_in_a "the replaced file's size" 12 stat -c %s "$A/d/f6"
mv "$B/d/f7" "$B/d/g7"
seen_in_a "a renamed file's old name" "no" sh -c "[ -e '$A/d/f7' ] && echo yes || echo no"
seen_in_a "a renamed file's new name" "file 7" cat "$A/d/g7"
rm "$B/d/f8"
seen_in_a "a file removed elsewhere" "no" sh -c "[ -e '$A/d/f8' ] && echo yes || echo no"

say "a tree removed whole by another client is gone from mount a"
mkdir -p "$A/t/u"
for i in 1 2 3; do echo "$i" >"$A/t/u/x$i"; done
drop_caches
stat "$A/t/u/x1" "$A/t/u/x2" "$A/t/u/x3" >/dev/null
caudal rm -r /t
seen_in_a "a file in a tree removed by 'caudal rm -r'" "no" \
	sh -c "[ -e '$A/t/u/x1' ] && echo yes || echo no"

say "mount a's own changes show at once"
chmod 640 "$A/d/f9"
drop_caches
assert_eq "$(stat -c %a "$A/d/f9")" 640 "mode after chmod through mount a"
echo again >"$A/d/f10"
drop_caches
assert_eq "$(stat -c %s "$A/d/f10")" 6 "size after rewriting through mount a"
rm "$A/d/f11"
drop_caches
[ ! -e "$A/d/f11" ] || fail "a file removed through mount a is still there"

umount_caudal "$A"
umount_caudal "$B"
line=$(grep "attribute cache" "$T/logs/mount-a.log" | tail -1)
hits=$(sed -n 's/.*stats by the attribute cache: \([0-9]*\) of.*/\1/p' <<<"$line")
say "mount a: ${line#*: }"
[ "${hits:-0}" -ge 100 ] || fail "the attribute cache answered ${hits:-no} lookups and stats for 100+ cold stats"
say "ok"
