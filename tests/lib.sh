# shellcheck shell=bash disable=SC2034
# Shared helpers for end-to-end tests; `source tests/lib.sh` first thing.
#
# Sourcing makes a temporary folder $T and installs a trap that, on any
# exit, stops every process the test started BY PID (registered ones, and
# the daemons of any cluster under $T, found through their pid files),
# unmounts whatever the test mounted, prints the daemons' log tails when the
# test failed, and removes $T. Nothing here looks processes up by name.
#
# A test fails through `fail MSG` or an assertion; a command that fails
# outside an `if` also fails the test (set -e), naming the line.

set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
BIN=$B/bin
CAUDAL=$BIN/caudal
TEST_NAME=$(basename "${0%.sh}")
[ -x "$CAUDAL" ] || { echo "FAIL: '$CAUDAL' is not built" >&2; exit 1; }

T=$(mktemp -d "${TEST_TMPROOT:-${TMPDIR:-/tmp}}/caudal-$TEST_NAME.XXXXXX")
_T_PIDS=()
_T_MOUNTS=()
_T_FAILED=0

trap '_t_rc=$?; _T_FAILED=1; echo "FAIL: ${BASH_SOURCE[0]##*/}:$LINENO: command failed (exit $_t_rc): $BASH_COMMAND" >&2' ERR
trap '_t_cleanup' EXIT
trap 'exit 143' TERM INT HUP

say() { printf '== %s\n' "$*"; }

fail() {
	_T_FAILED=1
	echo "FAIL: $*" >&2
	exit 1
}

# ---------------------------------------------------------------- cleanup

register_pid() { _T_PIDS+=("$1"); }
register_mount() { _T_MOUNTS+=("$1"); }

# Is PID alive and running the program whose file name is PROG?
pid_is() { # PID PROG
	local exe
	exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
	exe=${exe% (deleted)}
	[ "${exe##*/}" = "$2" ]
}

# Kills every daemon recorded in a pid file under DIR, by pid (the pid file
# records the program, checked through /proc before the signal).
kill_pidfiles() { # DIR SIGNAL
	local f pid prog
	while IFS= read -r f; do
		pid=$(sed -n 1p "$f" 2>/dev/null) || continue
		prog=$(sed -n 2p "$f" 2>/dev/null) || continue
		[ -n "$pid" ] && [ -n "$prog" ] || continue
		pid_is "$pid" "$prog" && kill "-$2" "$pid" 2>/dev/null || true
	done < <(find "$1" -path '*/pids/*.pid' 2>/dev/null)
}

_t_cleanup() {
	local rc=$?
	trap - ERR
	set +e
	[ $rc -ne 0 ] && _T_FAILED=1
	local p m
	for m in "${_T_MOUNTS[@]}"; do
		fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	for p in "${_T_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	if [ -n "${CAUDAL_HOME:-}" ] && [ -d "$CAUDAL_HOME" ]; then
		CAUDAL_DOWN_TIMEOUT_MS=5000 timeout 30 "$CAUDAL" down >/dev/null 2>&1
	fi
	kill_pidfiles "$T" KILL
	for p in "${_T_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	# under `make asan` a daemon's sanitizer report (often printed as it
	# exits, after the checks passed) fails the test
	local san
	san=$(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
		$(find "$T" -path '*/logs/*.log' 2>/dev/null) /dev/null 2>/dev/null)
	if [ -n "$san" ]; then
		echo "FAIL: sanitizer report in: ${san//$T\//}" >&2
		_T_FAILED=1
		[ $rc -eq 0 ] && rc=1
	fi
	if [ $_T_FAILED -ne 0 ]; then
		local l
		for l in $(find "$T" -path '*/logs/*.log' 2>/dev/null | sort); do
			echo "---- last lines of ${l#$T/}" >&2
			tail -n 15 "$l" >&2
		done
	fi
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		echo "kept $T" >&2
	else
		rm -rf "$T"
	fi
	exit $rc
}

# ---------------------------------------------------------------- cluster

# Prints N distinct TCP ports free on every local address.
free_ports() { # N
	python3 - "$1" <<'PY'
import random, socket, sys
want, got, held = int(sys.argv[1]), [], []
while len(got) < want:
    p = random.randint(20000, 32000)
    if p in got:
        continue
    socks = []
    try:
        for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(fam)
            socks.append(s)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, p))
    except OSError:
        for s in socks:
            s.close()
        continue
    held.extend(socks)
    got.append(p)
print(" ".join(map(str, got)))
PY
}

caudal() { "$CAUDAL" "$@"; }

# Starts a local cluster under $T/cluster on fresh ports with 1 MiB blocks
# and short heartbeat and dead intervals (override with the CAUDAL_*
# variables before calling). Exports CAUDAL_HOME and CAUDAL_NAMENODE.
cluster_up() {
	local ports
	read -r -a ports <<<"$(free_ports 4)"
	export CAUDAL_HOME=$T/cluster
	export CAUDAL_NN_PORT=${CAUDAL_NN_PORT:-${ports[0]}}
	export CAUDAL_NN_HTTP_PORT=${CAUDAL_NN_HTTP_PORT:-${ports[1]}}
	export CAUDAL_DN_PORT=${CAUDAL_DN_PORT:-${ports[2]}}
	export CAUDAL_DN_HTTP_PORT=${CAUDAL_DN_HTTP_PORT:-${ports[3]}}
	export CAUDAL_BLOCK_SIZE=${CAUDAL_BLOCK_SIZE:-1M}
	export CAUDAL_HEARTBEAT_MS=${CAUDAL_HEARTBEAT_MS:-300}
	export CAUDAL_DEAD_MS=${CAUDAL_DEAD_MS:-3000}
	export CAUDAL_NAMENODE=127.0.0.1:$CAUDAL_NN_PORT
	export CAUDAL_UP_TIMEOUT_MS=${CAUDAL_UP_TIMEOUT_MS:-30000}
	# tests mount where they choose (mount_lib.sh), never ./mnt
	export CAUDAL_MOUNT=${CAUDAL_MOUNT:-none}
	# and start the job daemons themselves when they need them (job_lib.sh)
	export CAUDAL_JOBS=${CAUDAL_JOBS:-no}
	BS=1048576
	say "cluster up: namenode $CAUDAL_NAMENODE, data port $CAUDAL_DN_PORT, home $CAUDAL_HOME"
	"$CAUDAL" up "$@" || fail "caudal up failed"
}

# The flags that give a daemon started by hand the certificate `caudal up`
# made for NAME (namenode, dn1, jobtracker, tt1, mount, ...).
tls_flags() { # NAME
	local c=$CAUDAL_HOME/certs
	echo "--tls_ca=$c/ca.crt --tls_cert=$c/$1.crt --tls_key=$c/$1.key"
}

# Builds a small C client of the tests (SRC) against the tree's libcaudal
# into OUT, with the sanitizers the library was built with (make asan).
# The tools are attackers and throw-away clients, not the product: their own
# leaks at exit are not checked (the daemons' are).
build_tool() { # SRC OUT
	local san= extra=
	if nm "$B/libcaudal.a" 2>/dev/null | grep __asan_init >/dev/null; then
		san="-fsanitize=address,undefined"
		extra=$T/.tool_asan_options.c
		printf '%s\n' 'const char *__asan_default_options(void);' \
			'const char *__asan_default_options(void) { return "detect_leaks=0"; }' >"$extra"
	fi
	# shellcheck disable=SC2046,SC2086
	cc -std=gnu11 -O1 -g $san -D_GNU_SOURCE -pthread -I"$B/gen" -I"$ROOT/fs" \
		$(pkg-config --cflags grpc libprotobuf-c) -o "$2" "$1" $extra "$B/libcaudal.a" \
		$(pkg-config --libs grpc libprotobuf-c libxxhash inih openssl) -lm ||
		fail "cannot build '$1'"
}

# Pid of a daemon of the cluster (namenode, dn1, dn2, ...), from its pid file.
daemon_pid() { sed -n 1p "$CAUDAL_HOME/pids/$1.pid"; }

# Stops one daemon by pid with SIGNAL (default TERM) and waits until it is gone.
stop_daemon() { # NAME [SIGNAL]
	local pid prog i
	pid=$(daemon_pid "$1")
	prog=$(sed -n 2p "$CAUDAL_HOME/pids/$1.pid")
	kill "-${2:-TERM}" "$pid"
	for ((i = 0; i < 200; i++)); do
		pid_is "$pid" "$prog" || return 0
		sleep 0.05
	done
	fail "$1 (pid $pid) did not stop on SIG${2:-TERM}"
}

# Data folder of the datanode serving HOST (e.g. 127.0.0.3).
dn_dir_of_host() {
	local f
	for f in "$CAUDAL_HOME"/pids/dn*.pid; do
		local n=${f##*/}
		n=${n%.pid}
		if tr '\0' '\n' <"/proc/$(sed -n 1p "$f")/cmdline" 2>/dev/null | grep -qx -- "--host=$1"; then
			echo "$CAUDAL_HOME/$n"
			return 0
		fi
	done
	# not running: the default layout gives dnK the K-th address
	local i=1 h
	for h in ${CAUDAL_DN_HOSTS:-127.0.0.2 127.0.0.3 127.0.0.4}; do
		h=${h%,}
		[ "$h" = "$1" ] && { echo "$CAUDAL_HOME/dn$i"; return 0; }
		i=$((i + 1))
	done
	return 1
}

# Name (dnK) of the datanode serving HOST.
dn_name_of_host() { local d; d=$(dn_dir_of_host "$1") && echo "${d##*/}"; }

# ---------------------------------------------------------------- files

# A file of SIZE random bytes.
mkfile() { # PATH SIZE
	head -c "$2" /dev/urandom >"$1"
	[ "$(stat -c %s "$1")" -eq "$2" ] || fail "cannot make a $2-byte file '$1'"
}

# ---------------------------------------------------------------- assertions

assert_eq() { # ACTUAL EXPECTED WHAT
	[ "$1" = "$2" ] || fail "${3:-values differ}: got '$1', expected '$2'"
}

assert_contains() { # HAYSTACK NEEDLE WHAT
	case $1 in *"$2"*) ;; *) fail "${3:-output} does not contain '$2'; it was: $1" ;; esac
}

# Runs a command that must succeed; its output is in $OUT.
assert_ok() {
	local rc=0
	OUT=$("$@" 2>&1) || rc=$?
	[ $rc -eq 0 ] || fail "'$*' failed (exit $rc): $OUT"
}

# Runs a command that must fail; stderr+stdout are in $OUT.
assert_fails() {
	local rc=0
	OUT=$("$@" 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "'$*' succeeded, it should have failed; output: $OUT"
}

assert_same_file() { # A B
	cmp -s "$1" "$2" || fail "'$1' and '$2' differ ($(stat -c %s "$1" 2>/dev/null || echo ?) vs $(stat -c %s "$2" 2>/dev/null || echo ?) bytes; $(cmp "$1" "$2" 2>&1 | head -1))"
}

# Retries a command until it succeeds, for at most SECONDS.
wait_until() { # SECONDS WHAT CMD...
	local secs=$1 what=$2 end
	shift 2
	end=$((SECONDS + secs))
	while ! "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || fail "timed out after ${secs}s waiting for: $what"
		sleep 0.2
	done
}

# Value of a "key: value" line of a command's output.
field() { # KEY CMD...
	local key=$1
	shift
	"$@" 2>/dev/null | sed -n "s/^$key: //p" | head -n 1
}
