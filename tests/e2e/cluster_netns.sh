#!/bin/bash
# The multi-host test bed (issue 11): every host its own network namespace
# with its own address on 10.77.0.0/24, joined by tests/e2e/netbed_switch.c
# (a learning switch of TAP devices that holds frames 0.5 ms within a rack
# and 5 ms across racks, one way; this kernel has no netem qdisc). A
# namenode host (10.77.0.10, rack /r1's switch), four datanode hosts on two
# racks of a topology file (dn1 .11, dn2 .12 on /r1; dn3 .13, dn4 .14 on
# /r2) and a client host (.20, /r2's switch) that mounts. Mutual TLS with
# certificates from `caudal cert` naming each host's address. Checks:
#   - the replicas of every block span both racks;
#   - rack /r2 cut off (its links down): every file reads back whole
#     through a fresh mount, both datanodes are declared dead, and every
#     block gets a second replica on /r1 (all a two-rack bed allows);
#     when the rack returns, each block settles at 3 replicas on both racks
#     and the datanodes' block counts add up to exactly that (nothing
#     counted twice), fsck HEALTHY;
#   - one datanode cut off by a silent partition (frames lost, links up) is
#     declared dead after dead_ms, its blocks are re-replicated (HEALTHY
#     without it), and when the partition heals its excess replicas are
#     removed: 3 each again, nothing double-counted;
#   - the client cut off from the namenode (datanodes still reachable)
#     gets EIO within io_timeout, and works again once the partition heals.
# CLUSTER_FULL=1 (make test-cluster) writes more and bigger files, runs a
# wordcount that must be 90% data-local, and at the end adds an empty
# datanode dn5 (.15, /r2) that `caudal balancer` fills, keeping both racks.
# Everything this test makes (namespaces, TAPs, mounts, processes) is
# removed in its trap, on failure too; leftovers of a run that was killed
# (namespaces named cdlbed-PID-* whose PID is gone) are removed first.
# The bed itself (hosts, switch, daemons, mounts, cleanup) is
# tests/e2e/netbed_lib.sh, shared with the bench's `cluster` section.
source "$(dirname "$0")/../lib.sh"
FULL=${CLUSTER_FULL:-0}
DEAD_MS=3000
IO_TIMEOUT=6
BED_MOUNT_OPTS="io_timeout=$IO_TIMEOUT,rpc_timeout=2,attr_timeout=0,entry_timeout=0,meta_timeout=0"
# the hosts, the switch, the certificates, the daemons' command lines and
# the trap that removes them all
source "$(dirname "$0")/netbed_lib.sh"

# dn5 (full version): a datanode added at the end, for the balancer
HOSTS="nn dn1 dn2 dn3 dn4 client"
[ "$FULL" = 1 ] && HOSTS+=" dn5"
bed_up "$HOSTS"

say "namenode on ${ADDR[nn]}, datanodes on dn1..dn4"
bed_namenode --block_size=1m --dead_ms=$DEAD_MS --tick_ms=200
start_dn() { # HOST
	if [ "$FULL" = 1 ]; then
		# a capacity of its own, so that use (used/capacity) means something
		# to the balancer
		mkdir -p "$T/$1"
		BED_MOUNTS+=("$T/$1")
		register_mount "$T/$1"
		mount -t tmpfs -o size=384m tmpfs "$T/$1" || fail "cannot mount a tmpfs on '$T/$1'"
	fi
	bed_datanode "$1"
}
for h in dn1 dn2 dn3 dn4; do start_dn "$h"; done
wait_until 60 "4 live datanodes" live_is 4

M=$T/mnt
bed_mount "$M"

if [ "$FULL" = 1 ]; then NFILES=24 MAXMB=6; else NFILES=8 MAXMB=3; fi
say "write $NFILES files of up to $MAXMB MiB through the mount on the client host"
mkdir -p "$T/src" "$M/data"
t0=$(date +%s.%N)
for ((i = 0; i < NFILES; i++)); do
	# past inline_max (64 KiB), so that every file has blocks
	mkfile "$T/src/f$i" $(((RANDOM << 15 | RANDOM) % (MAXMB * 1048576) + 65537))
	cp "$T/src/f$i" "$M/data/f$i"
done
sync
bytes=$(du -cb "$T/src" | tail -n 1 | cut -f1)
say "wrote $bytes bytes in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"

rack_of() { case $1 in 10.77.0.11 | 10.77.0.12) echo r1 ;; 10.77.0.1[345]) echo r2 ;; *) echo "?" ;; esac; }

# Every block of every file: "FILE BLOCKID host,host,..." lines.
all_blocks() {
	local i
	for ((i = 0; i < NFILES; i++)); do
		cli blocks "/data/f$i" | awk -v f="f$i" '{print f, $1, $5}' || return 1
	done
}
NBLOCKS=$(all_blocks | wc -l)
[ "$NBLOCKS" -ge "$NFILES" ] || fail "only $NBLOCKS blocks for $NFILES files"

# Does every block have exactly WANT replicas (0: any number) spanning RACKS
# ("r1 r2", or "r1")?
blocks_are() { # WANT RACKS
	local f id hosts h racks n
	while read -r f id hosts; do
		n=0
		racks=
		for h in ${hosts//,/ }; do
			n=$((n + 1))
			racks+=" $(rack_of "${h%:*}")"
		done
		[ "$1" = 0 ] || [ "$n" = "$1" ] || return 1
		for r in $2; do
			case "$racks " in *" $r "*) ;; *) return 1 ;; esac
		done
	done < <(all_blocks)
	return 0
}

say "placement: every one of $NBLOCKS blocks has 3 replicas on both racks"
wait_until 20 "3 replicas of each block" blocks_are 3 "r1 r2"
if ! blocks_are 3 "r1 r2"; then fail "a block is not on both racks: $(all_blocks)"; fi

if [ "$FULL" = 1 ]; then
	say "jobs: a jobtracker on the namenode host, a tasktracker beside each datanode"
	cert create-node "${ADDR[nn]}" jobtracker
	for h in dn1 dn2 dn3 dn4; do cert create-node "${ADDR[$h]}" tasktracker; done
	# shellcheck disable=SC2046
	run jobtracker nn caudal-jobtracker --namenode="$NN" --host="${ADDR[nn]}" --port=9001 \
		--work_dir="$T/jt" --allow_root_jobs=yes --locality_wait_ms=3000 \
		$(tls jobtracker "${ADDR[nn]}")
	for h in dn1 dn2 dn3 dn4; do
		# shellcheck disable=SC2046
		run "tt-$h" "$h" caudal-tasktracker --jobtracker="${ADDR[nn]}:9001" --namenode="$NN" \
			--host="${ADDR[$h]}" --port=9002 --work_dir="$T/tt-$h" --slots=2 \
			$(tls tasktracker "${ADDR[$h]}")
	done
	wait_until 60 "4 tasktrackers registered" bash -c "[ \$(grep -c 'registered (host' '$T/logs/jobtracker.log') -ge 4 ]"
	awk 'BEGIN { srand(7); for (i = 0; i < 160000; i++) { l = ""; for (k = 0; k < 8; k++) l = l " w" int(rand() * 3000); print l } }' >"$T/words"
	mkdir -p "$M/text"
	cp "$T/words" "$M/text/words"
	wait_until 30 "/jobs" test -d "$M/jobs"
	printf 'input = /text\noutput = /out/wc\nmap = wordcount\nreduce = sum\ncombine = sum\nreduces = 2\n' >"$T/wc.job"
	cp "$T/wc.job" "$M/jobs/wc.job"
	state() { sed -n 's/^state: //p' "$M/jobs/wc/status" 2>/dev/null; }
	wait_until 300 "the job to end" bash -c "grep -qE '^state: (SUCCEEDED|FAILED|KILLED)' '$M/jobs/wc/status'"
	assert_eq "$(state)" SUCCEEDED "job state ($(cat "$M/jobs/wc/status"))"
	maps=$(sed -n 's/^maps: //p' "$M/jobs/wc/status")
	local_maps=$(sed -n 's/^data_local_maps: //p' "$M/jobs/wc/status")
	say "job: $local_maps of $maps maps data-local"
	[ "$maps" -ge 4 ] || fail "only $maps maps"
	[ $((local_maps * 10)) -ge $((maps * 9)) ] || fail "$local_maps of $maps maps data-local, under 90%"
	tr -s ' ' '\n' <"$T/words" | grep -v '^$' | LC_ALL=C sort | uniq -c | awk '{print $2, $1}' | LC_ALL=C sort >"$T/want"
	cat "$M"/out/wc/part-* | tr '\t' ' ' | LC_ALL=C sort >"$T/got"
	cmp -s "$T/want" "$T/got" || fail "word counts differ"
fi

# Reads every file through a fresh mount and compares it.
read_all() { # DIR
	local i
	bed_mount "$1"
	for ((i = 0; i < NFILES; i++)); do
		cmp -s "$T/src/f$i" "$1/data/f$i" || fail "f$i reads differently through '$1'"
	done
	bed_umount "$1"
}

# Settled: every block of /data has 3 replicas spanning both racks, fsck is
# HEALTHY with as many replicas found as wanted (none over-replicated), and
# the datanodes' block counts in the report add up to exactly the replicas
# fsck found (FOUND).
settled() {
	local fsck found wanted sum
	blocks_are 3 "r1 r2" || return 1
	fsck=$(cli fsck /) || return 1
	grep -q '^status: HEALTHY' <<<"$fsck" || return 1
	grep -q '^over-replicated: 0' <<<"$fsck" || return 1
	found=$(sed -n 's/^replicas: \([0-9]*\) found, \([0-9]*\) wanted/\1/p' <<<"$fsck")
	wanted=$(sed -n 's/^replicas: \([0-9]*\) found, \([0-9]*\) wanted/\2/p' <<<"$fsck")
	[ -n "$found" ] && [ "$found" = "$wanted" ] && [ "$found" -ge $((3 * NBLOCKS)) ] || return 1
	sum=$(cli report | awk '$3 == "live" { s += $7 } END { print s + 0 }')
	[ "$sum" = "$found" ] || return 1
	FOUND=$found
}

# ---------------------------------------------------------------- rack cut
say "rack /r2 cut off: dn3 and dn4 links down"
t0=$(date +%s.%N)
for h in dn3 dn4; do ip -n "$(ns_of "$h")" link set eth0 down; done
read_all "$T/read1"
say "every file read back whole with /r2 gone ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after the cut)"
wait_until 30 "dn3 and dn4 declared dead" live_is 2
say "dn3, dn4 dead after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s (dead_ms ${DEAD_MS})"
wait_until 60 "every block on both /r1 datanodes" blocks_are 2 r1
say "every block re-made on /r1 ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after the cut)"
read_all "$T/read2"

say "rack /r2 back"
for h in dn3 dn4; do ip -n "$(ns_of "$h")" link set eth0 up; done
wait_until 60 "4 live datanodes" live_is 4
wait_until 60 "3 replicas per block on both racks, counted once" settled
say "settled: $FOUND replicas, HEALTHY, block counts add up"

# ---------------------------------------------------------------- partition
say "dn4 cut off by a silent partition (links stay up)"
before=$(cli report | awk '$1 ~ /^10.77.0.14:/ { print $7 }')
[ "${before:-0}" -gt 0 ] || fail "dn4 holds no replica to lose: $(cli report)"
t0=$(date +%s.%N)
ctl isolate "$(ns_of dn4)"
wait_until 30 "dn4 declared dead" live_is 3
dead_after=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
say "dn4 declared dead $dead_after s after the partition (dead_ms ${DEAD_MS}); it held $before replicas"
healthy() { cli fsck / | grep -q '^status: HEALTHY'; }
wait_until 60 "its replicas re-made on the other three (fsck HEALTHY)" healthy
wait_until 30 "3 replicas per block on both racks" blocks_are 3 "r1 r2"
read_all "$T/read3"
say "the partition heals"
ctl rejoin "$(ns_of dn4)"
wait_until 60 "4 live datanodes" live_is 4
wait_until 60 "its excess replicas removed: 3 per block, counted once" settled
say "settled again: $FOUND replicas"

# ---------------------------------------------------------------- client
say "the client cut off from the namenode (datanodes still reachable)"
ls "$M/data" >/dev/null || fail "the mount does not work before the partition"
ctl cut "$(ns_of client)" "$(ns_of nn)"
t0=$(date +%s.%N)
rc=0
err=$(stat "$M/nothing-here-$RANDOM" 2>&1) || rc=$?
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
[ $rc -ne 0 ] || fail "stat succeeded without a namenode"
# DESIGN.md: EIO (or ETIMEDOUT) after a bounded, configurable time
case $err in *"Input/output error"* | *"Connection timed out"*) ;;
*) fail "the error without a namenode is not EIO or ETIMEDOUT: $err" ;;
esac
# a bound on a hang (io_timeout plus one RPC deadline, the time to
# notice), not a speed test
awk -v t="$took" -v m=$((IO_TIMEOUT * 3)) 'BEGIN { exit !(t <= m) }' ||
	fail "EIO took $took s, io_timeout is $IO_TIMEOUT s"
say "'${err##*: }' after $took s (io_timeout $IO_TIMEOUT s)"
ctl heal "$(ns_of client)" "$(ns_of nn)"
wait_until 30 "the mount answers again" ls "$M/data/f0"
cmp -s "$T/src/f0" "$M/data/f0" || fail "f0 differs after the partition healed"
echo after >"$M/data/after" || fail "cannot write after the partition healed"
assert_eq "$(cat "$M/data/after")" after "a file written after the partition"

if [ "$FULL" = 1 ]; then
	say "balancer: dn5 joins /r2 empty; caudal balancer -t 5 fills it, keeping both racks"
	start_dn dn5
	wait_until 60 "5 live datanodes" live_is 5
	out=$(cli balancer -t 5 -bandwidth 100) || fail "the balancer failed: $out"
	printf '%s\n' "$out" | tail -n 4
	assert_contains "$out" "balanced:" "balancer output"
	[ "$(cli report | awk '$1 ~ /^10.77.0.15:/ { print $7 }')" -gt 0 ] || fail "dn5 holds nothing"
	wait_until 60 "3 replicas per block on both racks, counted once" settled
	read_all "$T/read4"
	say "balanced: every file reads back, $FOUND replicas, HEALTHY"
fi

bed_umount "$M"
say "PASS"
