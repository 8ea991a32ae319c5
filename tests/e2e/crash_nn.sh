#!/bin/bash
# The namenode crash test (issue 8): a seeded random workload runs against a
# real cluster while the namenode is killed with SIGKILL at random points and
# restarted, alternately in sync = always and sync = batch; after every
# restart every acknowledged operation is there, the one in flight is
# applied whole or not at all, the invariant checker passes (offline and
# live) and fsck is HEALTHY. The driver is tests/crash/crash.py.
#
# Short here (CRASH_KILLS=5, part of `make test`); `make crashtest` runs 50.
# A failure prints its seed: replay with CRASH_SEED=N bash tests/e2e/crash_nn.sh.
source "$(dirname "$0")/../lib.sh"

export CAUDAL_LEASE_MS=${CAUDAL_LEASE_MS:-2000}
export CAUDAL_SYNC=${CAUDAL_SYNC:-always}
cluster_up

build_tool "$ROOT/tests/crash/crash_client.c" "$T/crash_client"
export CRASH_CLIENT=$T/crash_client CAUDAL T
export CRASH_KILLS=${CRASH_KILLS:-5} CRASH_TIME=${CRASH_TIME:-50}
python3 "$ROOT/tests/crash/crash.py" || fail "the crash test found violations (seed above)"
echo "PASS"
