# shellcheck shell=bash
# The multi-host test bed's hosts, switch, certificates and daemons (issue
# 11), shared by tests/e2e/cluster_netns.sh and the bench's `cluster`
# section (tests/bench/netbed_bench.sh). Source tests/lib.sh first.
#
# Every host is its own network namespace with its own address on
# 10.77.0.0/24, joined by tests/e2e/netbed_switch.c (a learning switch of
# TAP devices that holds frames 0.5 ms within a rack and 5 ms across, one
# way; this kernel has no netem qdisc). The namenode host (10.77.0.10) is on
# rack /r1's switch, datanodes dn1 .11, dn2 .12 on /r1, dn3 .13, dn4 .14
# (and dn5 .15) on /r2, the client host (.20) on /r2's switch.
#
# Set before sourcing:
#   BED_PREFIX  the namespaces' name prefix (default cdlbed); names are
#               PREFIX-PID-RAND-HOST
#   BED_OWNER   a word of the owning script's command line (default
#               cluster_netns): the namespaces of an earlier run are swept
#               unless their PID is alive and runs such a script
# Sourcing sweeps leftovers and installs the trap that removes everything
# the bed made (mounts, processes, switch, namespaces), on failure too.

[ "$(id -u)" = 0 ] || fail "the test bed needs root (network namespaces, TAP devices, FUSE)"
for t in ip nsenter; do command -v $t >/dev/null || fail "'$t' is not installed (iproute2, util-linux)"; done
[ -c /dev/net/tun ] || fail "no /dev/net/tun"
[ -c /dev/fuse ] || fail "no /dev/fuse"

BED_PREFIX=${BED_PREFIX:-cdlbed}
BED_OWNER=${BED_OWNER:-cluster_netns}

# ---------------------------------------------------------------- leftovers
# A run killed by SIGKILL left its namespaces (its switch, and so its TAPs,
# died with it): remove those whose owner is gone, and what still runs there.
bed_sweep_stale() {
	local ns owner p
	for ns in $(ip netns list 2>/dev/null | awk -v re="^$BED_PREFIX-[0-9]+-" '$1 ~ re {print $1}'); do
		owner=${ns#"$BED_PREFIX"-}
		owner=${owner%%-*}
		if [ -d "/proc/$owner" ] && tr '\0' ' ' <"/proc/$owner/cmdline" 2>/dev/null | grep -q "$BED_OWNER"; then
			continue
		fi
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
		say "removed the namespace '$ns' of an earlier run that was killed"
	done
}
bed_sweep_stale

# ---------------------------------------------------------------- the bed
ID=$BED_PREFIX-$$-$RANDOM
declare -A ADDR=([nn]=10.77.0.10 [dn1]=10.77.0.11 [dn2]=10.77.0.12 [dn3]=10.77.0.13 [dn4]=10.77.0.14 [dn5]=10.77.0.15 [client]=10.77.0.20)
declare -A RACK=([nn]=r1 [dn1]=r1 [dn2]=r1 [dn3]=r2 [dn4]=r2 [dn5]=r2 [client]=r2)
NN=${ADDR[nn]}:9000
NSS=()
SWITCH_PID=
BED_MOUNTS=()
# extra options of bed_mount's mounts (comma-separated)
BED_MOUNT_OPTS=${BED_MOUNT_OPTS:-}

# Is any process of our pid files still running?
alive_pidfiles() {
	local f
	for f in "$T"/bed/pids/*.pid; do
		[ -f "$f" ] && pid_is "$(sed -n 1p "$f")" "$(sed -n 2p "$f")" && return 0
	done
	return 1
}

bed_cleanup() {
	set +e
	local m ns p
	for m in "${BED_MOUNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; }
	done
	kill_pidfiles "$T/bed" TERM
	local i
	for ((i = 0; i < 50; i++)); do
		alive_pidfiles || break
		sleep 0.1
	done
	kill_pidfiles "$T/bed" KILL
	for ns in "${NSS[@]}"; do
		# anything still in our namespaces is ours
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	[ -n "$SWITCH_PID" ] && kill -TERM "$SWITCH_PID" 2>/dev/null
	for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	# the switch's FIFO and TAPs go with $T and with the switch
	return 0
}
trap '_bed_rc=$?; trap - ERR; bed_cleanup; (exit $_bed_rc); _t_cleanup' EXIT

ns_of() { echo "$ID-$1"; }
# Runs CMD on HOST (in its network namespace only: files and mounts are shared).
on() { # HOST CMD...
	local h=$1
	shift
	nsenter --net="/run/netns/$(ns_of "$h")" -- "$@"
}
# Asks the switch for a partition: cut A B, heal A B, isolate A, rejoin A.
ctl() { echo "$*" >"$T/bed/switch.ctl"; }

CD=$T/certs
cert() { "$CAUDAL" cert --dir "$CD" "$@" >/dev/null || fail "caudal cert $* failed"; }
tls() { echo "--tls_ca=$CD/ca.crt --tls_cert=$CD/$1-$2.crt --tls_key=$CD/$1-$2.key"; }

# Makes the hosts HOSTS (names of ADDR) and the switch between them, and the
# certificates naming each host's address (dn1..dn5 whether or not they
# are hosts); writes the topology file $T/topology. Exports the client
# command line's certificates and namenode (CAUDAL_CA, CAUDAL_CERT,
# CAUDAL_KEY, CAUDAL_NAMENODE).
bed_up() { # HOSTS
	local h ports=()
	say "bed $ID: namespaces, switch (0.5 ms within a rack, 5 ms across)"
	for h in $1; do
		ip netns add "$(ns_of "$h")" || fail "cannot make namespace $(ns_of "$h")"
		NSS+=("$(ns_of "$h")")
		ip -n "$(ns_of "$h")" link set lo up
	done
	SW=$T/bed/netbed_switch
	mkdir -p "$T/bed/pids" "$T/logs"
	cc -O2 -Wall -Wextra -Werror -o "$SW" "$ROOT/tests/e2e/netbed_switch.c" || fail "cannot build the switch"
	mkfifo "$T/bed/switch.ctl"
	for h in $1; do ports+=("$(ns_of "$h"):eth0:${RACK[$h]}"); done
	"$SW" -l 500 -r 5000 -c "$T/bed/switch.ctl" "${ports[@]}" >"$T/bed/switch.out" 2>"$T/logs/switch.log" &
	SWITCH_PID=$!
	printf '%s\n%s\n' "$SWITCH_PID" netbed_switch >"$T/bed/pids/switch.pid"
	wait_until 10 "the switch's TAPs" grep -q ready "$T/bed/switch.out"
	for h in $1; do
		ip -n "$(ns_of "$h")" addr add "${ADDR[$h]}/24" dev eth0
		ip -n "$(ns_of "$h")" link set eth0 mtu 9000 up
	done

	say "certificates naming each host's address"
	cert create-ca
	cert create-node "${ADDR[nn]}" namenode
	for h in dn1 dn2 dn3 dn4 dn5; do cert create-node "${ADDR[$h]}" datanode; done
	cert create-node "${ADDR[client]}" mount
	cert create-client admin
	{
		for h in dn1 dn2; do echo "${ADDR[$h]} /r1"; done
		for h in dn3 dn4 dn5; do echo "${ADDR[$h]} /r2"; done
	} >"$T/topology"
	export CAUDAL_CA=$CD/ca.crt CAUDAL_CERT=$CD/admin.crt CAUDAL_KEY=$CD/admin.key CAUDAL_NAMENODE=$NN
}

# Starts PROG ARGS... on HOST, logging to $T/logs/NAME.log, with a pid file.
run() { # NAME HOST PROG ARGS...
	local name=$1 h=$2 prog=$3
	shift 3
	# nsenter execs the program (no fork for a network namespace): $! is it
	nsenter --net="/run/netns/$(ns_of "$h")" -- "$BIN/$prog" "$@" >>"$T/logs/$name.log" 2>&1 &
	register_pid $!
	printf '%s\n%s\n' $! "$prog" >"$T/bed/pids/$name.pid"
}

# Starts the namenode on its host (port 9000, replication 3, the topology
# file, heartbeats every 300 ms) with ARGS added.
bed_namenode() { # ARGS...
	# shellcheck disable=SC2046
	run namenode nn caudal-namenode --host="${ADDR[nn]}" --port=9000 --http_port=0 --dir="$T/nn" \
		--replication=3 --heartbeat_ms=300 --topology="$T/topology" "$@" $(tls namenode "${ADDR[nn]}")
}

# Starts a datanode on HOST (port 9866, data in $T/HOST).
bed_datanode() { # HOST
	# shellcheck disable=SC2046
	run "$1" "$1" caudal-datanode --namenode="$NN" --host="${ADDR[$1]}" --port=9866 \
		--data_dir="$T/$1" --heartbeat_ms=300 --rpc_timeout_ms=2000 --io_timeout_ms=5000 \
		$(tls datanode "${ADDR[$1]}")
}

# the command line runs on the client host
cli() { on client "$CAUDAL" --timeout 8000 "$@"; }
report_field() { cli report 2>/dev/null | sed -n "s/^$1: //p"; }
live_is() { [ "$(report_field 'live datanodes')" = "$1" ]; }

# Mounts the cluster from the client host at DIR (a fresh mount has an
# empty page cache, so its reads go to the datanodes), with BED_MOUNT_OPTS.
bed_mount() { # DIR
	local d=$1 name
	name=${d##*/}
	mkdir -p "$d"
	BED_MOUNTS+=("$d")
	register_mount "$d"
	on client "$BIN/caudal-mount" "$NN" "$d" -o "client_host=${ADDR[client]},${BED_MOUNT_OPTS:+$BED_MOUNT_OPTS,}log=$T/logs/mount-$name.log,pidfile=$T/bed/pids/mount-$name.pid,tls_ca=$CD/ca.crt,tls_cert=$CD/mount-${ADDR[client]}.crt,tls_key=$CD/mount-${ADDR[client]}.key" ||
		fail "caudal-mount at '$d' failed"
	mountpoint -q "$d" || fail "'$d' is not mounted"
}
bed_umount() { fusermount3 -u "$1" || fail "cannot unmount '$1'"; }
