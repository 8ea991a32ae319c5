#!/bin/bash
# Reproduced a loss found by the crash test (2026-11-30), mended since
# (issue 8: the namenode records a pipeline recovery's new generation stamp
# only once survivors accepted it); tests/e2e/core_alldn_killed.sh is the
# same scenario as part of `make test`. Every datanode is killed in the middle of a
# write that hsyncs every 64 KiB, then restarted. The datanodes keep the
# hsynced bytes of the replica being written (dn log: "recovered replica
# 'blk_2_1' at its synced length 393216") and report it at generation 1,
# but the namenode meanwhile gave the block generation 3 (the writer's
# pipeline recoveries, to datanodes that were all dead) and settled the
# file at the hsynced length; it takes the generation-1 replicas for stale
# and has them deleted. The hsynced bytes are gone, fsck says the block is
# missing for good, and a restarted namenode never leaves safe mode.
#
#   bash tests/crash/repro_all_dn_killed.sh     exited 1 while the loss happened
#
# The same round in the crash test: CRASH_ALLDN_SHARE=1 CRASH_KILLS=1
# bash tests/e2e/crash_nn.sh
source "$(dirname "$0")/../lib.sh"
export CAUDAL_LEASE_MS=2000
cluster_up
build_tool "$ROOT/tests/crash/crash_client.c" "$T/crash_client"
head -c 2500000 /dev/urandom >"$T/data"

say "every datanode killed 0.5 s into a write that hsyncs every 64 KiB"
(
	sleep 0.5
	for d in dn1 dn2 dn3; do kill -KILL "$(daemon_pid $d)"; done
) &
register_pid $!
printf 'putsync\t/x\t%s\t3\t65536\n' "$T/data" | "$T/crash_client" "$CAUDAL_NAMENODE" "${IO_MS:-5000}" \
	>"$T/out" || true
wait
synced=$(grep '^synced' "$T/out" | tail -1 | cut -d' ' -f2)
echo "hsynced: ${synced:-nothing} bytes; the write: $(tail -1 "$T/out")"
[ -n "$synced" ] || fail "nothing was hsynced before the kill: try again"

say "datanodes restarted"
caudal up >/dev/null
caudal blocks /x
wait_until 30 "/x closed by lease recovery" \
	bash -c "! '$CAUDAL' stat /x | grep -q 'under_construction: yes'"
head -c "$synced" "$T/data" >"$T/want"
wait_until 30 "the hsynced bytes of /x readable" caudal get /x "$T/got"
cmp -n "$synced" "$T/want" "$T/got" || fail "/x does not start with the hsynced bytes"
wait_until 30 "fsck / HEALTHY" caudal fsck /
echo "PASS"
