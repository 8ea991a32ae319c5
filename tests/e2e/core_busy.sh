#!/bin/bash
# One writer per file: while a put holds a file open (stdin from a fifo that
# stays open), a second writer is refused with a clear error, whether it
# overwrites (-f), creates, or appends; once the first writer closes, the
# file has exactly its bytes and can be replaced.
source "$(dirname "$0")/../lib.sh"
cluster_up

mkfile "$T/data" $((BS + 4321))
mkfile "$T/other" 100
mkfifo "$T/fifo"
caudal put - /busy <"$T/fifo" &
writer=$!
register_pid "$writer"
exec 3>"$T/fifo"

under_construction() { [ "$(field under_construction caudal stat /busy)" = yes ]; }
wait_until 15 "/busy created and open" under_construction

say "second writers are refused"
assert_fails caudal put -f "$T/other" /busy
assert_contains "$OUT" "cannot put '/busy': Device or resource busy"
assert_eq "$(echo "$OUT" | wc -l)" 1 "error lines"
assert_fails caudal append "$T/other" /busy
assert_contains "$OUT" "cannot append to '/busy': Device or resource busy"
assert_fails caudal put "$T/other" /busy
assert_contains "$OUT" "cannot put '/busy': File exists"

say "the first writer finishes"
head -c $((BS / 2)) "$T/data" >&3
sleep 1
under_construction || fail "the file closed while its writer still writes"
assert_fails caudal put -f "$T/other" /busy
assert_contains "$OUT" "Device or resource busy"
tail -c +$((BS / 2 + 1)) "$T/data" >&3
exec 3>&-
wait "$writer" || fail "the first put failed"
assert_eq "$(field under_construction caudal stat /busy)" no "open after close"
assert_same_file "$T/data" <(caudal cat /busy)

say "now it can be appended to and replaced"
caudal append "$T/other" /busy
cat "$T/data" "$T/other" >"$T/want"
assert_same_file "$T/want" <(caudal cat /busy)
caudal put -f "$T/other" /busy
assert_same_file "$T/other" <(caudal cat /busy)
echo "PASS"
