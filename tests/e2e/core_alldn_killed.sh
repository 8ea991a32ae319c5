#!/bin/bash
# Every datanode of a write pipeline is killed in the middle of a write that
# hsyncs every 64 KiB, then restarted (issue 8, found by the crash test).
# The datanodes keep the hsynced bytes of the replica being written at the
# block's generation stamp; the writer's pipeline recoveries towards the
# dead nodes must not move the namenode's record to a newer stamp (a new
# stamp is only recorded once survivors accepted it), or the returning
# replicas are taken for stale and deleted: the hsynced bytes would be
# lost, the block missing for good. Lease recovery then closes the file
# with at least the hsynced bytes, readable, and fsck is healthy.
# The same round in the crash test: CRASH_ALLDN_SHARE=1 CRASH_KILLS=1
# bash tests/e2e/crash_nn.sh
source "$(dirname "$0")/../lib.sh"
export CAUDAL_LEASE_MS=2000
cluster_up
build_tool "$ROOT/tests/crash/crash_client.c" "$T/crash_client"
head -c 2500000 /dev/urandom >"$T/data"
: >"$T/out"

say "every datanode killed after a few hsyncs of a write that hsyncs every 64 KiB"
(
	for _ in $(seq 200); do
		[ "$(grep -c '^synced' "$T/out")" -ge 3 ] && break
		sleep 0.02
	done
	for d in dn1 dn2 dn3; do kill -KILL "$(daemon_pid $d)"; done
) &
register_pid $!
printf 'putsync\t/x\t%s\t3\t65536\n' "$T/data" | "$T/crash_client" "$CAUDAL_NAMENODE" "${IO_MS:-5000}" \
	>"$T/out" || true
wait
synced=$(grep '^synced' "$T/out" | tail -1 | cut -d' ' -f2)
echo "hsynced: ${synced:-nothing} bytes; the write: $(tail -1 "$T/out")"
[ -n "$synced" ] || fail "nothing was hsynced before the kill"
[ "$synced" -lt 2500000 ] || fail "the write finished before the kill"

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
