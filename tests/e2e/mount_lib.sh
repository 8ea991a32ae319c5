# Helpers for the mount's end-to-end tests; source after tests/lib.sh.
# (Not a test itself: tests/run.sh only runs files matching its own list,
# and this file exits at once when run directly.)
[ -n "${BASH_SOURCE[1]:-}" ] || { echo "mount_lib.sh is sourced by the mount_* tests" >&2; exit 0; }

MOUNT_BIN=$BIN/caudal-mount

# Mounts the cluster at DIR with caudal-mount in the background. Its log is
# $T/logs/mount-NAME.log (printed by lib.sh when the test fails), its pid
# file $T/mounts/pids/NAME.pid (lib.sh's cleanup kills it by pid), and the
# trap unmounts DIR. Extra -o options may follow.
mount_caudal() { # DIR [OPTS]
	local dir=$1 name
	name=$(basename "$dir")
	mkdir -p "$dir" "$T/logs" "$T/mounts/pids"
	register_mount "$dir"
	local opts="log=$T/logs/mount-$name.log,pidfile=$T/mounts/pids/$name.pid"
	opts+=",io_timeout=${MOUNT_IO_TIMEOUT:-10},attr_timeout=1,entry_timeout=1"
	[ -n "${2:-}" ] && opts+=",$2"
	"$MOUNT_BIN" "$CAUDAL_NAMENODE" "$dir" -o "$opts" || fail "caudal-mount at '$dir' failed"
	mountpoint -q "$dir" || fail "'$dir' is not a mount point after caudal-mount"
	[ "$(findmnt -n -o FSTYPE -T "$dir")" = fuse.caudal ] || fail "'$dir' is not fuse.caudal"
}

# Unmounts DIR and waits for its process to go.
umount_caudal() { # DIR
	local dir=$1 name pid i
	name=$(basename "$dir")
	pid=$(sed -n 1p "$T/mounts/pids/$name.pid" 2>/dev/null || true)
	fusermount3 -u "$dir" || fail "cannot unmount '$dir'"
	for ((i = 0; i < 100; i++)); do
		[ -n "$pid" ] && pid_is "$pid" caudal-mount || return 0
		sleep 0.1
	done
	fail "caudal-mount (pid $pid) still runs after unmounting '$dir'"
}

# Runs CMD, which must fail with a message containing TEXT (an strerror).
assert_fails_with() { # TEXT CMD...
	local text=$1
	shift
	assert_fails "$@"
	assert_contains "$OUT" "$text" "error of '$*'"
}

# Seconds (decimal) since the epoch.
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }
