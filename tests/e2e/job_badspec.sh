#!/bin/bash
# Bad specs through the mount: each fails at once (FAILED, with an error
# naming the line or the problem) and the jobtracker stays up and runs the
# next good job: an unknown key, a missing input, an existing output,
# reduces = -1, an empty file, binary garbage, a 10 MB spec, a missing map,
# an exec: command that does not exist, a repeated key, a line without '='.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
source "$(dirname "$0")/job_lib.sh"
cluster_up
M=$T/mnt
mount_caudal "$M"
jobs_up
jt_pid=$(job_pid jobtracker)

gen_text "$T/in.txt" 2000 5
mkdir -p "$M/data" "$M/out/exists"
cp "$T/in.txt" "$M/data/in.txt"

# expect_bad NAME TEXT... : the job failed and its error contains each TEXT
expect_bad() {
	local name=$1 st err
	shift
	st=$(job_wait "$name" 60)
	assert_eq "$st" FAILED "state of $name"
	err=$(job_field "$name" error)
	for t in "$@"; do assert_contains "$err" "$t" "error of $name"; done
	say "  $name: $err"
}

say "submitting bad specs"
job_submit unknown 'input = /data/in.txt
output = /out/unknown
inptu = /data/in.txt
map = wordcount'
job_submit noinput 'input = /data/missing.txt
output = /out/noinput
map = wordcount'
job_submit exists 'input = /data/in.txt
output = /out/exists
map = wordcount'
job_submit negative 'input = /data/in.txt
output = /out/negative
map = wordcount
reduces = -1'
: >"$M/jobs/empty.job"
head -c 4096 /dev/urandom >"$M/jobs/garbage.job"
{
	printf 'input = /data/in.txt\noutput = /out/huge\nmap = wordcount\n'
	head -c $((10 * 1024 * 1024)) /dev/zero | tr '\0' '#'
} >"$T/huge.job"
cp "$T/huge.job" "$M/jobs/huge.job"
job_submit nomap 'input = /data/in.txt
output = /out/nomap
reduce = sum'
job_submit nocmd 'input = /data/in.txt
output = /out/nocmd
map = exec: no-such-command-caudal-test --flag'
job_submit repeated 'input = /data/in.txt
output = /out/repeated
map = wordcount
map = grep'
job_submit noeq 'input = /data/in.txt
output = /out/noeq
map wordcount'

expect_bad unknown "line 3" "unknown key 'inptu'"
expect_bad noinput "input '/data/missing.txt' does not exist"
expect_bad exists "output '/out/exists' already exists"
expect_bad negative "line 4" "reduces: '-1'"
expect_bad empty "spec is empty"
expect_bad garbage "line "
expect_bad huge "spec is $(stat -c %s "$M/jobs/huge.job") bytes" "limit is 65536"
expect_bad nomap "missing key 'map'"
expect_bad nocmd "command not found"
assert_contains "$(job_status nocmd)" "no-such-command-caudal-test: not found" "status of nocmd"
expect_bad repeated "line 4" "repeated"
expect_bad noeq "line 3" "no '='"
[ -z "$(ls "$M/out" | grep -v '^exists$')" ] || fail "bad jobs left output: $(ls "$M/out")"
assert_eq "$(ls "$M/out/exists" | wc -l)" 0 "the existing output was touched"

say "the jobtracker is still up and runs a good job"
pid_is "$jt_pid" caudal-jobtracker || fail "the jobtracker died"
job_submit good 'input = /data/in.txt
output = /out/good
map = wordcount
reduce = sum
combine = sum'
job_expect good SUCCEEDED 60
wc_expected "$T/in.txt" >"$T/want"
wc_got "$M"/out/good/part-* >"$T/got"
assert_same_file "$T/want" "$T/got"

say "a failed job's spec fixed in place runs again"
job_submit negative 'input = /data/in.txt
output = /out/negative
map = wordcount
reduces = 1'
wait_until 30 "job 'negative' to run again" bash -c "grep -q 'state: SUCCEEDED' '$M/jobs/negative/status'"
