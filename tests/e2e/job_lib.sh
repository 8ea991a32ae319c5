# Helpers for the jobs layer's end-to-end tests; source after tests/lib.sh
# and tests/e2e/mount_lib.sh. (Not a test itself: run directly it exits.)
[ -n "${BASH_SOURCE[1]:-}" ] || { echo "job_lib.sh is sourced by the job_* tests" >&2; exit 0; }

JT_BIN=$BIN/caudal-jobtracker
TT_BIN=$BIN/caudal-tasktracker
[ -x "$JT_BIN" ] && [ -x "$TT_BIN" ] || fail "'$JT_BIN' or '$TT_BIN' is not built"
# Quick failure detection for the fault tests; `caudal up` may start the
# daemons itself (then its settings apply).
JT_TRACKER_TIMEOUT_MS=${JT_TRACKER_TIMEOUT_MS:-3000}

# Pid file of a jobs daemon: `caudal up`'s when it started one, else ours.
job_pidfile() { # NAME (jobtracker, tt1, tt2, tt3)
	if [ -f "$CAUDAL_HOME/pids/$1.pid" ]; then
		echo "$CAUDAL_HOME/pids/$1.pid"
	else
		echo "$T/jobs/pids/$1.pid"
	fi
}

job_pid() { sed -n 1p "$(job_pidfile "$1")"; }

# Starts PROG ARGS... in the background, logging to $T/jobs/logs/NAME.log,
# with a pid file in lib.sh's format (pid, program) so cleanup finds it.
_job_spawn() { # NAME PROG ARGS...
	local name=$1 prog=$2
	shift 2
	mkdir -p "$T/jobs/pids" "$T/jobs/logs"
	"$prog" "$@" >>"$T/jobs/logs/$name.log" 2>&1 &
	local pid=$!
	register_pid "$pid"
	printf '%s\n%s\n' "$pid" "${prog##*/}" >"$T/jobs/pids/$name.pid"
}

# Starts the jobtracker and a tasktracker beside each datanode, unless
# `caudal up` did. Exports JT_ADDR.
jobs_up() {
	if [ -f "$CAUDAL_HOME/pids/jobtracker.pid" ] && pid_is "$(job_pid jobtracker)" caudal-jobtracker; then
		JT_ADDR=$(tr '\0' '\n' <"/proc/$(job_pid jobtracker)/cmdline" | sed -n 's/^--port=/127.0.0.1:/p')
		export JT_ADDR
		say "jobs daemons started by caudal up (jobtracker $JT_ADDR)"
	else
		local port
		port=$(free_ports 1)
		export JT_ADDR=127.0.0.1:$port
		# root writes these tests' specs (JT_ARGS may override, e.g.
		# --allow_root_jobs=no); jobs of other users run as them
		# shellcheck disable=SC2086
		_job_spawn jobtracker "$JT_BIN" --namenode="$CAUDAL_NAMENODE" --port="$port" \
			--work_dir="$T/jobs/jt" --tracker_timeout_ms="$JT_TRACKER_TIMEOUT_MS" \
			--locality_wait_ms=2000 --log_level=info --allow_root_jobs=yes \
			$(tls_flags jobtracker) ${JT_ARGS:-}
		local i=1 h
		for h in ${CAUDAL_DN_HOSTS:-127.0.0.2 127.0.0.3 127.0.0.4}; do
			h=${h%,}
			_job_spawn "tt$i" "$TT_BIN" --jobtracker="$JT_ADDR" --namenode="$CAUDAL_NAMENODE" \
				--host="$h" --work_dir="$T/jobs/tt$i" --slots=2 --log_level=info \
				$(tls_flags "tt$i")
			i=$((i + 1))
		done
		say "jobtracker $JT_ADDR and $((i - 1)) tasktrackers started"
	fi
	wait_until 20 "3 tasktrackers registered" jobs_trackers_registered 3
}

jobs_log() { # NAME
	if [ -f "$CAUDAL_HOME/logs/$1.log" ]; then cat "$CAUDAL_HOME/logs/$1.log"; else cat "$T/jobs/logs/$1.log"; fi
}

jobs_trackers_registered() { # N
	[ "$(jobs_log jobtracker 2>/dev/null | grep -c "registered (host")" -ge "$1" ]
}

# Restarts the jobtracker with the same command line (kill -9 when SIG=KILL);
# its pid file (ours or `caudal up`'s) then names the new process.
jobtracker_restart() { # [SIGNAL]
	local pid args=() prog pidfile
	pidfile=$(job_pidfile jobtracker)
	pid=$(job_pid jobtracker)
	mapfile -d '' args <"/proc/$pid/cmdline"
	prog=$(readlink "/proc/$pid/exe")
	kill "-${1:-TERM}" "$pid"
	local i
	for ((i = 0; i < 100; i++)); do
		pid_is "$pid" caudal-jobtracker || break
		sleep 0.1
	done
	pid_is "$pid" caudal-jobtracker && fail "jobtracker (pid $pid) did not stop"
	_job_spawn jobtracker "$prog" "${args[@]:1}"
	if [ "$pidfile" != "$T/jobs/pids/jobtracker.pid" ]; then
		sed -i "1s/.*/$(sed -n 1p "$T/jobs/pids/jobtracker.pid")/" "$pidfile"
		rm "$T/jobs/pids/jobtracker.pid"
	fi
}

# Status file of job NAME as the mount shows it ("" while it does not exist).
job_status() { cat "$M/jobs/$1/status" 2>/dev/null || true; }
job_field() { job_status "$1" | sed -n "s/^$2: //p" | head -n 1; }

# Waits until job NAME's state is final; prints it.
job_wait() { # NAME [SECONDS]
	local end=$((SECONDS + ${2:-120})) st
	while :; do
		st=$(job_field "$1" state)
		case $st in SUCCEEDED | FAILED | KILLED)
			echo "$st"
			return 0
			;;
		esac
		[ $SECONDS -lt $end ] || fail "job '$1' not finished after ${2:-120}s (state '$st'); status: $(job_status "$1")"
		sleep 0.2
	done
}

# Waits until job NAME is in state RUNNING with at least N attempts begun.
job_wait_running() { # NAME N [SECONDS]
	local end=$((SECONDS + ${3:-60})) n
	while :; do
		n=$(grep -cv '^#' "$M/jobs/$1/tasks" 2>/dev/null || true)
		[ "$(job_field "$1" state)" = RUNNING ] && [ "${n:-0}" -ge "$2" ] && return 0
		[ $SECONDS -lt $end ] || fail "job '$1' not running with $2 attempts after ${3:-60}s; status: $(job_status "$1")"
		sleep 0.1
	done
}

# Submits a job through the mount: the spec is written to a temporary
# name and renamed into /jobs (the jobtracker acts on close or rename).
job_submit() { # NAME SPEC-TEXT
	printf '%s\n' "$2" >"$M/jobs/.$1.tmp"
	mv "$M/jobs/.$1.tmp" "$M/jobs/$1.job"
}

# Expects job NAME to end in state WANT; prints its status on a mismatch.
job_expect() { # NAME WANT [SECONDS]
	local st
	st=$(job_wait "$1" "${3:-120}")
	[ "$st" = "$2" ] || fail "job '$1' ended $st, expected $2; status: $(job_status "$1"); tasks: $(cat "$M/jobs/$1/tasks" 2>/dev/null)"
}

# Text of N lines with words from a small vocabulary, lines of varying
# length (some long), so that lines cross block boundaries.
gen_text() { # PATH LINES SEED
	awk -v n="$2" -v seed="$3" 'BEGIN {
		srand(seed)
		for (i = 0; i < n; i++) {
			w = int(rand() * 14); if (rand() < 0.01) w = 400
			line = ""
			for (k = 0; k < w; k++) line = line (k ? " " : "") "w" int(rand() * rand() * 5000)
			if (rand() < 0.05) line = line "\tTabbed  spaced"
			print line
		}
	}' >"$1"
}

# Normalised word counts: "COUNT WORD" lines, sorted.
wc_expected() { tr -s '[:space:]' '\n' <"$1" | grep -v '^$' | LC_ALL=C sort | uniq -c | awk '{print $1, $2}' | LC_ALL=C sort; }
wc_got() { cat "$@" | awk -F'\t' '{print $2, $1}' | LC_ALL=C sort; }
