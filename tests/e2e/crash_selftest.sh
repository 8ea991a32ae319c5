#!/bin/bash
# The crash test must be able to fail: with CRASH_SABOTAGE=rollback its
# driver puts back, after the second namenode kill, the metadata the first
# kill left, as a namenode that lost acknowledged transactions would come
# back; the driver must report the acknowledged operations missing.
source "$(dirname "$0")/../lib.sh"

mkdir "$T/bin"
cp "$BIN"/caudal "$BIN"/caudal-namenode "$BIN"/caudal-datanode "$T/bin/"
CAUDAL=$T/bin/caudal
export CAUDAL_BIN_DIR=$T/bin
export CAUDAL_LEASE_MS=2000
cluster_up

build_tool "$ROOT/tests/crash/crash_client.c" "$T/crash_client"
export CRASH_CLIENT=$T/crash_client CAUDAL T
export CRASH_KILLS=3 CRASH_TIME=60 CRASH_SABOTAGE=rollback CRASH_WRITER_SHARE=0 CRASH_DN_SHARE=0
rc=0
python3 "$ROOT/tests/crash/crash.py" >"$T/out" 2>&1 || rc=$?
cat "$T/out"
[ $rc -eq 1 ] || fail "the sabotaged crash test exited $rc, not 1 (violations found)"
assert_contains "$(cat "$T/out")" "VIOLATION (seed"
# the rolled-back namespace differs from the model in entries it lacks or
# has too many of
grep -Eq ': (missing|not in the model)' "$T/out" || fail "the violation names no entry"
echo "PASS"
