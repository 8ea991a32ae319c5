#!/bin/bash
# A tasktracker killed with SIGKILL mid-job (after it finished a map, while
# it runs others): the jobtracker notices it is lost, redoes its running
# attempts and the maps whose output it held, and the job still SUCCEEDS
# with the right output.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
source "$(dirname "$0")/job_lib.sh"
cluster_up
M=$T/mnt
mount_caudal "$M"
jobs_up

gen_text "$T/in.txt" 150000 11
mkdir -p "$M/data"
cp "$T/in.txt" "$M/data/in.txt"
# The first map to start runs at once; the others wait (at most 60 s) for
# a gate file the test makes after the kill, so the job is still running
# when its tracker dies, however loaded the machine.
job_submit slow "input = /data/in.txt
output = /out/slow
map = exec: if ! mkdir $T/first 2>/dev/null; then i=0; while [ ! -e $T/gate ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i+1)); done; fi; tr -s ' \\t' '\\n\\n' | grep . | sed 's/\$/\\t1/'
reduce = sum
combine = sum
reduces = 2"

say "wait for a finished map, then kill the tracker that ran it"
end=$((SECONDS + 60))
host=
while [ -z "$host" ]; do
	host=$(awk '/^m-/ && $5 == "SUCCEEDED" { print $3; exit }' "$M/jobs/slow/tasks" 2>/dev/null || true)
	[ $SECONDS -lt $end ] || fail "no map finished; status: $(job_status slow)"
	sleep 0.1
done
n=$(( $(echo "${CAUDAL_DN_HOSTS:-127.0.0.2 127.0.0.3 127.0.0.4}" | tr ', ' '\n\n' | grep -n "^$host$" | cut -d: -f1) ))
[ "$n" -ge 1 ] || fail "no tasktracker for host '$host'"
pid=$(job_pid "tt$n")
say "SIGKILL tt$n (pid $pid, host $host); status: $(job_field slow maps_done)/$(job_field slow maps) maps done"
kill -KILL "$pid"
touch "$T/gate"
job_expect slow SUCCEEDED 120

say "the work of the lost tracker was redone elsewhere"
tasks=$(cat "$M/jobs/slow/tasks")
echo "$tasks" | awk -v h="$host" '$3 == h && $5 == "SUCCEEDED" && /^m-/ { found = 1 } END { exit !found }' ||
	fail "no map had succeeded on $host: $tasks"
# a map that had succeeded there was run again on another tracker
redone=$(echo "$tasks" | awk -v h="$host" '/^m-/ && $5 == "SUCCEEDED" { if ($3 == h) on[$1] = 1; else off[$1] = 1 }
	END { for (t in on) if (t in off) n++; print n + 0 }')
[ "$redone" -ge 1 ] || fail "no map of the lost tracker was run again elsewhere: $tasks"
wc_expected "$T/in.txt" >"$T/want"
wc_got "$M"/out/slow/part-* >"$T/got"
assert_same_file "$T/want" "$T/got"
assert_eq "$(job_field slow maps_done)" "$(job_field slow maps)" "maps done"
jobs_log jobtracker | grep -q "tasktracker '$host:[0-9]*' lost" || fail "the jobtracker did not log the lost tracker"
