#!/bin/bash
# Small files inline (issue 9): a writer that dies while moving an inline
# file into its first block (an append past inline_max) loses nothing that
# was acknowledged. Lease recovery keeps the inline bytes unless the block
# was reported holding them all; either way the file reads as the old
# bytes followed by a prefix of the new ones, and takes a new append.
source "$(dirname "$0")/../lib.sh"
export CAUDAL_LEASE_MS=2000 CAUDAL_LEASE_RENEW_MS=500
cluster_up

mkfile "$T/old" 30000
mkfile "$T/new" 70000
caudal put "$T/old" /f
assert_eq "$(caudal blocks /f)" "inline 30000" "block list before the append"
blocks_now() { caudal fsck / | sed -n 's/^blocks: //p'; }
assert_eq "$(blocks_now)" 0 "blocks before the append"

say "an append past the limit, its writer killed before it settles the block"
mkfifo "$T/fifo"
caudal append - /f <"$T/fifo" &
writer=$!
register_pid "$writer"
exec 3>"$T/fifo"
cat "$T/new" >&3
# the writer has taken a first block for the old and new bytes (fsck counts
# it) while the file still reads as its inline bytes
moving() { [ "$(blocks_now)" = 1 ]; }
wait_until 20 "a first block for the moving file" moving
assert_eq "$(caudal blocks /f)" "inline 30000" "block list while moving"
assert_same_file "$T/old" <(caudal cat /f)
kill -KILL "$writer"
wait "$writer" 2>/dev/null || true
exec 3>&-

say "lease recovery: nothing acknowledged is lost"
closed() { [ "$(field under_construction caudal stat /f)" = no ]; }
wait_until 30 "lease recovery closes /f" closed
caudal cat /f >"$T/got" || fail "cannot read /f after recovery"
size=$(stat -c %s "$T/got")
say "recovered with $size bytes ($([ "$size" -eq 30000 ] && echo 'the inline bytes kept' || echo 'the block kept'))"
[ "$size" -ge 30000 ] || fail "/f lost acknowledged bytes: $size left of 30000"
cat "$T/old" "$T/new" | head -c "$size" | cmp -s - "$T/got" || fail "/f is not the old bytes and a prefix of the new"
caudal fsck / >"$T/fsck" || fail "fsck: $(cat "$T/fsck")"

say "the file takes a new append"
printf 'tail' | caudal append - /f
{ cat "$T/got"; printf 'tail'; } | cmp -s - <(caudal cat /f) || fail "append after recovery"
echo "PASS"
