#!/bin/bash
# Streaming jobs through the mount: an awk mapper and reducer (exec:),
# a python3 mapper shipped with `files =` (the distributed cache) with an
# exec: combiner and user counters from stderr, and map-only jobs (built-in
# grep, and an exec: command); outputs checked against the same commands
# run locally.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
source "$(dirname "$0")/job_lib.sh"
cluster_up
M=$T/mnt
mount_caudal "$M"
jobs_up

gen_text "$T/in.txt" 40000 7
mkdir -p "$M/data" "$M/apps"
cp "$T/in.txt" "$M/data/in.txt"

say "awk mapper and reducer: characters per first word"
job_submit awk 'input = /data/in.txt
output = /out/awk
map = exec: awk '\''NF { n[$1] += length($0) } END { for (w in n) printf "%s\t%d\n", w, n[w] }'\''
reduce = exec: awk -F"\t" '\''$1 != k { if (k != "") print k "\t" s; k = $1; s = 0 } { s += $2 } END { if (k != "") print k "\t" s }'\''
reduces = 2'
job_expect awk SUCCEEDED 120
awk 'NF { n[$1] += length($0) } END { for (w in n) printf "%s %d\n", w, n[w] }' "$T/in.txt" | LC_ALL=C sort >"$T/want.awk"
cat "$M"/out/awk/part-* | tr '\t' ' ' | LC_ALL=C sort >"$T/got.awk"
assert_same_file "$T/want.awk" "$T/got.awk"
for p in "$M"/out/awk/part-*; do cut -f1 "$p" | LC_ALL=C sort -c || fail "reducer input was not sorted in '$p'"; done

say "python3 mapper from the distributed cache, exec: combiner, user counters"
cat >"$T/mapper.py" <<'PY'
import sys
for line in sys.stdin:
    for w in line.split():
        if w.startswith("w1"):
            print(f"{w}\t1")
            sys.stderr.write("reporter:counter:Words,w1-words,1\n")
sys.stderr.write("mapper done\n")
PY
cp "$T/mapper.py" "$M/apps/mapper.py"
job_submit py 'input = /data/in.txt
output = /out/py
map = exec: python3 mapper.py
combine = exec: awk -F"\t" '\''{ s[$1] += $2 } END { for (k in s) print k "\t" s[k] }'\''
reduce = sum
reduces = 3
files = /apps/mapper.py'
job_expect py SUCCEEDED 120
python3 "$T/mapper.py" <"$T/in.txt" 2>/dev/null | cut -f1 | LC_ALL=C sort | uniq -c | awk '{print $1, $2}' | LC_ALL=C sort >"$T/want.py"
wc_got "$M"/out/py/part-* >"$T/got.py"
assert_same_file "$T/want.py" "$T/got.py"
n=$(awk -F'\t' '$1 == "Words" && $2 == "w1-words" { print $3 }' "$M/jobs/py/counters")
assert_eq "$n" "$(python3 "$T/mapper.py" <"$T/in.txt" 2>/dev/null | wc -l)" "user counter Words/w1-words"

say "map-only built-in grep: the matching lines, in input order"
job_submit grep 'input = /data/in.txt
output = /out/grep
map = grep
pattern = w1[0-9]*7( |$)
reduces = 0'
job_expect grep SUCCEEDED 60
grep -E 'w1[0-9]*7( |$)' "$T/in.txt" >"$T/want.grep"
cat "$M"/out/grep/part-* >"$T/got.grep"
[ -s "$T/want.grep" ] || fail "the pattern matches nothing"
assert_same_file "$T/want.grep" "$T/got.grep"

say "map-only exec: the command's output verbatim, one part per split"
job_submit upper 'input = /data/in.txt
output = /out/upper
map = exec: tr a-z A-Z
reduces = 0'
job_expect upper SUCCEEDED 60
tr a-z A-Z <"$T/in.txt" >"$T/want.upper"
cat "$M"/out/upper/part-* >"$T/got.upper"
assert_same_file "$T/want.upper" "$T/got.upper"
assert_eq "$(ls "$M/out/upper" | grep -c '^part-')" "$(job_field upper maps)" "part files of a map-only job"
