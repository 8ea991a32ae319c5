#!/bin/bash
# The jobtracker killed (SIGKILL) and restarted mid-job: the new one finds
# the job by scanning /jobs (its status is not final), runs it again and
# it finishes with the right output; a job that had finished before the
# restart is left as it was.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
source "$(dirname "$0")/job_lib.sh"
cluster_up
M=$T/mnt
mount_caudal "$M"
jobs_up

gen_text "$T/in.txt" 100000 17
mkdir -p "$M/data"
cp "$T/in.txt" "$M/data/in.txt"

say "a job that finishes before the restart"
job_submit early 'input = /data/in.txt
output = /out/early
map = wordcount
reduce = sum
combine = sum'
job_expect early SUCCEEDED 60
early_id=$(job_field early id)

say "a slow job, restarted mid-run"
# Its maps wait (at most 60 s) for a gate file the test makes after the
# restart, so the job cannot finish before the test sees it running
# (a fixed sleep lost that race on a loaded machine).
job_submit slow "input = /data/in.txt
output = /out/slow
map = exec: i=0; while [ ! -e $T/gate ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i+1)); done; tr -s ' \\t' '\\n\\n' | grep . | sed 's/\$/\\t1/'
reduce = sum
reduces = 2"
job_wait_running slow 3 60
old_id=$(job_field slow id)
jobtracker_restart KILL
say "jobtracker restarted (pid $(job_pid jobtracker))"
touch "$T/gate"
job_expect slow SUCCEEDED 120
[ "$(job_field slow id)" != "$old_id" ] || fail "the job was not run again"
wc_expected "$T/in.txt" >"$T/want"
wc_got "$M"/out/slow/part-* >"$T/got"
assert_same_file "$T/want" "$T/got"
assert_eq "$(ls "$M/out/slow" | tr '\n' ' ')" "_SUCCESS part-00000 part-00001 " "output files"
assert_eq "$(job_field early id)" "$early_id" "the finished job's id (it must not run again)"
assert_eq "$(job_field early state)" SUCCEEDED "the finished job's state"
