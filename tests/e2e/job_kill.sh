#!/bin/bash
# `rm /jobs/NAME.job` mid-job kills the job: the status says KILLED, no
# part-* or _SUCCESS appears in the output (the output folder is gone),
# the tasktrackers stop its attempts, and the next job runs normally.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
source "$(dirname "$0")/job_lib.sh"
cluster_up
M=$T/mnt
mount_caudal "$M"
jobs_up

gen_text "$T/in.txt" 120000 13
mkdir -p "$M/data"
cp "$T/in.txt" "$M/data/in.txt"
# The maps wait (at most 30 s) for a gate file that never comes, so the
# job is still running when its spec is removed, however loaded the machine.
job_submit doomed "input = /data/in.txt
output = /out/doomed
map = exec: i=0; while [ ! -e $T/gate ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i+1)); done; cat
reduces = 0"
job_wait_running doomed 3 60
say "remove the spec while $(grep -c ' RUNNING ' "$M/jobs/doomed/tasks") attempts run"
rm "$M/jobs/doomed.job"
job_expect doomed KILLED 30
assert_contains "$(job_field doomed error)" "killed" "error"
# the attempts were writing map-only parts: none may show up, even late
sleep 4
[ ! -e "$M/out/doomed" ] || fail "the killed job left output: $(ls -R "$M/out/doomed")"
assert_eq "$(job_field doomed state)" KILLED "state after a while"
running=$(grep -c ' RUNNING ' "$M/jobs/doomed/tasks" || true)
assert_eq "$running" 0 "attempts still RUNNING in tasks"
left=$(pgrep -f -- "--task .*/doomed_" | wc -l || true)
assert_eq "$left" 0 "task processes of the killed job"

say "the next job runs"
job_submit after 'input = /data/in.txt
output = /out/after
map = wordcount
reduce = sum
combine = sum'
job_expect after SUCCEEDED 60
wc_expected "$T/in.txt" >"$T/want"
wc_got "$M"/out/after/part-* >"$T/got"
assert_same_file "$T/want" "$T/got"
