#!/bin/bash
# Test runner: every unit test binary in $B/tests/ and every tests/e2e/*.sh
# (except helpers named *_lib.sh),
# one at a time, each under `timeout`. Prints one line per test with its
# time, and as the last line exactly "N passed, N failed"; exits non-zero
# when anything failed.
#
#   bash tests/run.sh            everything
#   bash tests/run.sh unit       unit tests only
#   bash tests/run.sh e2e        end-to-end tests only
#   bash tests/run.sh NAME...    tests whose name contains one of the words
#
# Environment: B (build folder, default build), UNIT_TIMEOUT / E2E_TIMEOUT
# (seconds per test, default 120 / 300), KEEP_LOGS=1 prints every log.
set -u
cd "$(dirname "$0")/.." || exit 1
B=${B:-build}
export B
UNIT_TIMEOUT=${UNIT_TIMEOUT:-120}
E2E_TIMEOUT=${E2E_TIMEOUT:-300}
LOGDIR=$B/test-logs
mkdir -p "$LOGDIR"

mode=all
filters=()
for a in "$@"; do
	case $a in
	unit | e2e) mode=$a ;;
	*) filters+=("$a") ;;
	esac
done

selected() { # name
	[ ${#filters[@]} -eq 0 ] && return 0
	local f
	for f in "${filters[@]}"; do
		case $1 in *"$f"*) return 0 ;; esac
	done
	return 1
}

tests=() # "kind:name:command"
if [ "$mode" != e2e ]; then
	for t in "$B"/tests/test_*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		n=$(basename "$t")
		selected "$n" && tests+=("unit:$n:$t")
	done
fi
if [ "$mode" != unit ]; then
	for t in tests/e2e/*.sh; do
		[ -f "$t" ] || continue
		n=$(basename "$t" .sh)
		# helpers sourced by tests (lib.sh, mount_lib.sh) are not tests
		case $n in lib | *_lib | lib_*) continue ;; esac
		selected "$n" && tests+=("e2e:$n:bash $t")
	done
fi

# Stops daemons a test left running under DIR (by the pids in their pid
# files, checked against /proc) and unmounts what is mounted there.
sweep() { # DIR
	local f pid prog exe m left=0
	while IFS= read -r m; do
		fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		left=1
	done < <(awk -v d="$1" 'index($2, d) == 1 { print $2 }' /proc/mounts)
	while IFS= read -r f; do
		pid=$(sed -n 1p "$f" 2>/dev/null)
		prog=$(sed -n 2p "$f" 2>/dev/null)
		[ -n "$pid" ] && [ -n "$prog" ] || continue
		exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
		exe=${exe% (deleted)}
		if [ "${exe##*/}" = "$prog" ]; then
			kill -KILL "$pid" 2>/dev/null && left=1
		fi
	done < <(find "$1" -path '*/pids/*.pid' 2>/dev/null)
	[ $left -eq 1 ] && echo "      (swept processes or mounts left by the test)"
	rm -rf "$1"
}

pass=0
fail=0
failed=()
for entry in "${tests[@]}"; do
	kind=${entry%%:*}
	rest=${entry#*:}
	name=${rest%%:*}
	cmd=${rest#*:}
	limit=$UNIT_TIMEOUT
	[ "$kind" = e2e ] && limit=$E2E_TIMEOUT
	log=$LOGDIR/$name.log
	# each test gets a scratch root so that whatever it leaves behind
	# (daemons whose pid files are there, mounts) is cleaned up here
	export TEST_TMPROOT
	TEST_TMPROOT=$(mktemp -d "${TMPDIR:-/tmp}/caudal-run.XXXXXX")
	start=$(date +%s.%N)
	timeout -k 10 "$limit" $cmd </dev/null >"$log" 2>&1
	rc=$?
	sweep "$TEST_TMPROOT"
	secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
	if [ $rc -eq 0 ]; then
		pass=$((pass + 1))
		printf 'PASS  %-28s %6ss\n' "$name" "$secs"
		[ "${KEEP_LOGS:-0}" = 1 ] && sed 's/^/    /' "$log"
	else
		fail=$((fail + 1))
		failed+=("$name")
		why="exit $rc"
		[ $rc -eq 124 ] || [ $rc -eq 137 ] && why="timed out after ${limit}s"
		printf 'FAIL  %-28s %6ss  (%s; log %s)\n' "$name" "$secs" "$why" "$log"
		# the test's own lines before the daemons' log tails, then those
		awk '/^---- last lines of /{exit} {print}' "$log" | tail -n 20 | sed 's/^/    | /'
		grep -q '^---- last lines of ' "$log" && echo "    | (daemon log tails in $log)"
	fi
done
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ] && [ $((pass + fail)) -gt 0 ]
