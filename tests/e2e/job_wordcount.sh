#!/bin/bash
# Wordcount through the mount on the local cluster (1 MiB blocks, an input
# of several blocks whose lines cross block boundaries): the output equals
# what `tr -s '[:space:]' '\n' | sort | uniq -c` gives, the status says
# SUCCEEDED with every map data-local, the output holds part-* and
# _SUCCESS, and the tasks and counters files agree with the status.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
source "$(dirname "$0")/job_lib.sh"
cluster_up
M=$T/mnt
mount_caudal "$M"
jobs_up

say "input: two files, one of several blocks, lines crossing the boundaries"
gen_text "$T/a.txt" 60000 1
gen_text "$T/b.txt" 3000 2
size=$(stat -c %s "$T/a.txt")
[ "$size" -gt $((3 * BS)) ] || fail "input too small: $size bytes"
for k in 1 2 3; do
	[ "$(head -c $((k * BS)) "$T/a.txt" | tail -c 1 | od -An -c | tr -d ' ')" != '\n' ] ||
		fail "byte $((k * BS - 1)) is a newline: no line crosses that boundary"
done
mkdir -p "$M/data/books"
cp "$T/a.txt" "$T/b.txt" "$M/data/books/"
touch "$M/data/books/_ignored" "$M/data/books/.hidden"
cat "$T/a.txt" "$T/b.txt" >"$T/all.txt"

say "submit wc.job with cp (picked up when closed)"
cat >"$T/wc.job" <<'SPEC'
# word count over a folder
input    = /data/books
output   = /out/wc
map      = wordcount
reduce   = sum
combine  = sum
reduces  = 3
SPEC
cp "$T/wc.job" "$M/jobs/wc.job"
job_expect wc SUCCEEDED 120

say "results"
maps=$(job_field wc maps)
blocks=$(( (size + BS - 1) / BS + 1 ))
assert_eq "$maps" "$blocks" "one map per block"
assert_eq "$(job_field wc data_local_maps)" "$maps" "data-local maps"
assert_eq "$(job_field wc maps_done)" "$maps" "maps done"
assert_eq "$(job_field wc reduces_done)" 3 "reduces done"
assert_eq "$(job_field wc map_progress)" "100%" "map progress"
assert_eq "$(job_field wc error)" "-" "error"
[ "$(job_field wc finished)" != "-" ] || fail "no end time"
assert_eq "$(ls "$M/out/wc" | tr '\n' ' ')" "_SUCCESS part-00000 part-00001 part-00002 " "output files"
wc_expected "$T/all.txt" >"$T/want"
wc_got "$M"/out/wc/part-* >"$T/got"
assert_same_file "$T/want" "$T/got"
# each part is sorted by key and holds only its own keys
for p in "$M"/out/wc/part-*; do
	cut -f1 "$p" | LC_ALL=C sort -c || fail "'$p' is not sorted by key"
done
assert_eq "$(cut -f1 "$M"/out/wc/part-* | sort | uniq -d | wc -l)" 0 "keys in two parts"

say "tasks and counters"
tasks=$(grep -v '^#' "$M/jobs/wc/tasks")
assert_eq "$(echo "$tasks" | grep -c '^m-')" "$maps" "map attempt lines"
assert_eq "$(echo "$tasks" | grep -c '^r-')" 3 "reduce attempt lines"
assert_eq "$(echo "$tasks" | grep -vc ' SUCCEEDED ')" 0 "attempts not succeeded"
assert_eq "$(echo "$tasks" | awk '/^m-/ && $4 != "data-local"' | wc -l)" 0 "non-local map attempts"
counter() { awk -F'\t' -v n="$1" '$2 == n { print $3 }' "$M/jobs/wc/counters"; }
assert_eq "$(counter 'map input records')" "$(wc -l <"$T/all.txt")" "map input records"
assert_eq "$(counter 'map input bytes')" "$(stat -c %s "$T/all.txt")" "map input bytes"
assert_eq "$(counter 'map output records')" "$(tr -s '[:space:]' '\n' <"$T/all.txt" | grep -vc '^$')" "map output records"
assert_eq "$(counter 'reduce output records')" "$(wc -l <"$T/want")" "reduce output records"

say "a second job over a file, map-only identity: the input comes back"
job_submit copy "input = /data/books/b.txt
output = /out/copy
map = identity
reduces = 0"
job_expect copy SUCCEEDED 60
cat "$M"/out/copy/part-* >"$T/copy"
assert_same_file "$T/b.txt" "$T/copy"

say "caudal job: list and status read the same files"
assert_ok "$CAUDAL" job list
assert_contains "$OUT" "wc" "caudal job list"
assert_contains "$(echo "$OUT" | grep -w copy)" "SUCCEEDED" "caudal job list state of copy"
assert_ok "$CAUDAL" job status wc
assert_contains "$OUT" "state: SUCCEEDED" "caudal job status wc"
assert_fails "$CAUDAL" job status no-such-job
echo "PASS"
