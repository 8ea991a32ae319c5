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

# the namenode is restarted many times: run a copy of the programs, so that
# a rebuild of the tree meanwhile cannot swap them in the middle
mkdir "$T/bin"
cp "$BIN"/caudal "$BIN"/caudal-namenode "$BIN"/caudal-datanode "$T/bin/"
CAUDAL=$T/bin/caudal
export CAUDAL_BIN_DIR=$T/bin

export CAUDAL_LEASE_MS=${CAUDAL_LEASE_MS:-2000}
export CAUDAL_SYNC=${CAUDAL_SYNC:-always}
cluster_up

build_tool "$ROOT/tests/crash/crash_client.c" "$T/crash_client"
export CRASH_CLIENT=$T/crash_client CAUDAL T
export CRASH_KILLS=${CRASH_KILLS:-5} CRASH_TIME=${CRASH_TIME:-45}
rc=0
python3 "$ROOT/tests/crash/crash.py" || rc=$?
[ $rc -eq 1 ] && fail "the crash test found violations (seed above)"
[ $rc -eq 0 ] || fail "the crash test driver stopped (exit $rc; seed above)"
echo "PASS"
