#!/bin/bash
# Retries and failures through the mount: a mapper that fails its first
# attempt and succeeds on the retry (the job succeeds, `tasks` shows the
# failed attempt, and the retry ran on another tasktracker); a mapper that
# always fails (FAILED after 4 attempts, with the error and the tail of its
# stderr in `status`, and no output left behind); a reducer whose input is
# not numbers (sum fails, naming the value).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
source "$(dirname "$0")/job_lib.sh"
cluster_up
M=$T/mnt
mount_caudal "$M"
jobs_up

gen_text "$T/in.txt" 30000 3
mkdir -p "$M/data"
cp "$T/in.txt" "$M/data/in.txt"

say "a mapper that fails its first attempt"
job_submit flaky 'input = /data/in.txt
output = /out/flaky
map = exec: if [ "$CAUDAL_ATTEMPT" = 0 ] && [ "$CAUDAL_TASK" = m-00001 ]; then echo "first attempt of $CAUDAL_TASK gives up" >&2; exit 3; fi; tr -s " \t" "\n\n" | grep . | sed "s/$/\t1/"
reduce = sum
reduces = 2'
job_expect flaky SUCCEEDED 120
tasks=$(cat "$M/jobs/flaky/tasks")
failed=$(echo "$tasks" | awk '$1 == "m-00001" && $5 == "FAILED"')
[ -n "$failed" ] || fail "tasks shows no failed attempt of m-00001: $tasks"
ok=$(echo "$tasks" | awk '$1 == "m-00001" && $2 == "1" && $5 == "SUCCEEDED"')
[ -n "$ok" ] || fail "tasks shows no successful retry of m-00001: $tasks"
[ "$(echo "$failed" | awk '{print $3}')" != "$(echo "$ok" | awk '{print $3}')" ] ||
	fail "the retry ran on the tracker where the task failed: $tasks"
assert_eq "$(job_field flaky failed_attempts)" 1 "failed attempts"
wc_expected "$T/in.txt" >"$T/want"
wc_got "$M"/out/flaky/part-* >"$T/got"
assert_same_file "$T/want" "$T/got"

say "a mapper that always fails"
job_submit broken 'input = /data/in.txt
output = /out/broken
map = exec: echo "Traceback: something broke in $CAUDAL_TASK" >&2; echo "ValueError: bad record" >&2; exit 1
reduces = 1'
job_expect broken FAILED 120
err=$(job_field broken error)
assert_contains "$err" "failed 4 attempts" "error"
assert_contains "$err" "exit status 1" "error"
st=$(job_status broken)
assert_contains "$st" "stderr: ValueError: bad record" "status"
assert_contains "$st" "stderr: Traceback: something broke in m-" "status"
assert_eq "$(awk '$5 == "FAILED" { n[$1]++ } END { for (t in n) if (n[t] > m) m = n[t]; print m }' "$M/jobs/broken/tasks")" 4 "most failed attempts of one task in tasks"
[ ! -e "$M/out/broken" ] || fail "a failed job left its output: $(ls -R "$M/out/broken")"

say "sum over values that are not numbers"
job_submit notnum 'input = /data/in.txt
output = /out/notnum
map = identity
reduce = sum
reduces = 1'
job_expect notnum FAILED 120
err=$(job_field notnum error)
assert_contains "$err" "is not an integer" "error"
assert_contains "$err" "reduce task r-00000 failed 4 attempts" "error"
