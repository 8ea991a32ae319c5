# shellcheck shell=bash
# Helpers of the datanode disk-fault tests (dn_disk_*.sh), sourced after
# tests/lib.sh: small filesystems to fill or break, and a datanode
# restarted by hand on them.

[ "$(id -u)" = 0 ] || fail "$TEST_NAME needs root (it mounts filesystems)"

# A tmpfs of SIZE (e.g. 8m) at DIR, unmounted by the trap.
mount_tmpfs() { # DIR SIZE
	mkdir -p "$1"
	register_mount "$1"
	mount -t tmpfs -o "size=$2" tmpfs "$1" || fail "cannot mount a tmpfs on '$1'"
}

# An ext4 of SIZE (e.g. 64M) on a loop device at DIR; the trap unmounts it
# (lazily while a datanode still holds it), which frees the loop device
# (mount -o loop sets it to clear itself).
mount_ext4() { # DIR SIZE
	mkdir -p "$1"
	truncate -s "$2" "$1.img"
	mkfs.ext4 -q -F "$1.img" || fail "cannot make an ext4 in '$1.img'"
	register_mount "$1"
	mount -o loop "$1.img" "$1" || fail "cannot mount '$1.img'"
}

# Bytes free on the filesystem of DIR.
free_bytes() { df -B1 --output=avail "$1" | tail -n 1 | tr -d ' '; }

# Finalized replica files under data dir DIR.
replicas_in() { find "$1/current" -name 'blk_*' ! -name '*.*' 2>/dev/null | wc -l; }

# Stops datanode NAME of the cluster and starts it again by hand with the
# same flags but data_dir=DIRS and FLAGS...; DN_PID is its pid, DN_LOG its
# log. Returns once it registered with the namenode again.
restart_dn() { # NAME DIRS FLAGS...
	local name=$1 dirs=$2 pid a args=() keep=()
	shift 2
	pid=$(daemon_pid "$name")
	mapfile -d '' args <"/proc/$pid/cmdline"
	stop_daemon "$name"
	for a in "${args[@]:1}"; do
		case $a in --data_dir=*) ;; *) keep+=("$a") ;; esac
	done
	DN_LOG=$CAUDAL_HOME/logs/$name-disks.log
	: >"$DN_LOG"
	"$BIN/caudal-datanode" "${keep[@]}" --data_dir="$dirs" "$@" >>"$DN_LOG" 2>&1 &
	DN_PID=$!
	register_pid "$DN_PID"
	wait_until 30 "$name registered again" grep -q "registered with namenode" "$DN_LOG"
}

# Are there N finalized replicas under data dir DIR?
replicas_are() { [ "$(replicas_in "$1")" = "$2" ]; }

# Does the namenode report N live datanodes?
live_dns_are() { [ "$(field 'live datanodes' caudal report)" = "$1" ]; }
