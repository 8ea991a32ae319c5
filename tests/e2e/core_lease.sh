#!/bin/bash
# Leases: a writer that stays open longer than the lease period keeps its
# file (the client renews its lease), and a writer that dies loses it: the
# namenode recovers and closes the file, and another writer can take over.
source "$(dirname "$0")/../lib.sh"
export CAUDAL_LEASE_MS=2000 CAUDAL_LEASE_RENEW_MS=500
cluster_up

mkfile "$T/data" $((BS + 999))

say "a slow writer keeps its lease past the lease period"
mkfifo "$T/fifo"
caudal put - /slow <"$T/fifo" &
writer=$!
register_pid "$writer"
exec 3>"$T/fifo"
head -c 1000 "$T/data" >&3
sleep 5
[ "$(field under_construction caudal stat /slow)" = yes ] || fail "the slow writer lost its file"
assert_fails caudal put -f "$T/data" /slow
assert_contains "$OUT" "Device or resource busy"
tail -c +1001 "$T/data" >&3
exec 3>&-
wait "$writer" || fail "the slow writer failed"
assert_same_file "$T/data" <(caudal cat /slow)

say "a dead writer's lease expires and the file is recovered"
mkfifo "$T/fifo2"
caudal put - /dead <"$T/fifo2" &
writer=$!
register_pid "$writer"
exec 4>"$T/fifo2"
under_construction() { [ "$(field under_construction caudal stat /dead)" = yes ]; }
wait_until 10 "/dead open" under_construction
kill -KILL "$writer"
wait "$writer" 2>/dev/null || true
exec 4>&-
closed() { [ "$(field under_construction caudal stat /dead)" = no ]; }
wait_until 30 "lease recovery closes /dead" closed
caudal put -f "$T/data" /dead
assert_same_file "$T/data" <(caudal cat /dead)
echo "PASS"
