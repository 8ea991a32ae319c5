#!/bin/bash
# Jobs benchmark (issue 4, "Measure"; run by `make bench`, not a test):
#  - wordcount over a generated 1 GiB text file stored in Caudal (64 MiB
#    blocks, so 17 maps), against `LC_ALL=C tr -s ' ' '\n' < file | sort |
#    uniq -c` and a single awk hash count on the same file on local disk,
#    each twice, in the same run; prints the ratios and the data-local share;
#  - the latency from closing a spec (cp into /jobs on the mount) to
#    `state: RUNNING` in its status, median of 5.
# Settings from tests/bench.sh: SIZE_MB (input MiB, default 1024), RUNS
# (rounds, default 2), OUT (a file the summary is appended to).
source "$(dirname "$0")/../tests/lib.sh"
source "$(dirname "$0")/../tests/e2e/mount_lib.sh"
source "$(dirname "$0")/../tests/e2e/job_lib.sh"
MB=${SIZE_MB:-${BENCH_MB:-1024}}
ROUNDS=${RUNS:-2}
export CAUDAL_BLOCK_SIZE=${CAUDAL_BLOCK_SIZE:-64M}
export CAUDAL_HEARTBEAT_MS=${CAUDAL_HEARTBEAT_MS:-1000}
export CAUDAL_DEAD_MS=${CAUDAL_DEAD_MS:-10000}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

say "generating ${MB} MiB of text (Zipf-like words from a 50000-word vocabulary)"
python3 - "$T/chunk.txt" <<'PY'
import random, sys
random.seed(42)
stems = ["the", "data", "node", "block", "caudal", "map", "reduce", "word", "line", "file"]
vocab = ["%s%d" % (random.choice(stems), i) for i in range(50000)]
weights = [1.0 / (i + 1) for i in range(len(vocab))]
with open(sys.argv[1], "w") as out:
    n = 0
    while n < 64 << 20:
        ws = random.choices(vocab, weights, k=200000)
        i, lines = 0, []
        while i < len(ws):
            k = random.randint(1, 16)
            lines.append(" ".join(ws[i:i + k]))
            i += k
        s = "\n".join(lines) + "\n"
        out.write(s)
        n += len(s)
PY
: >"$T/big.txt"
while [ "$(stat -c %s "$T/big.txt")" -lt $((MB << 20)) ]; do cat "$T/chunk.txt" >>"$T/big.txt"; done
rm "$T/chunk.txt"
size=$(stat -c %s "$T/big.txt")

cluster_up
M=$T/mnt
mount_caudal "$M"
jobs_up
t=$(now)
caudal mkdir -p /bench
caudal put "$T/big.txt" /bench/big.txt
say "stored $size bytes in Caudal in $(since "$t") s"

say "latency: spec closed -> state: RUNNING"
printf 'small words\n' >"$T/small.txt"
caudal put "$T/small.txt" /bench/small.txt
lat=()
for i in 1 2 3 4 5; do
	printf 'input = /bench/small.txt\noutput = /bench/lat%d\nmap = wordcount\nreduce = sum\n' "$i" >"$T/lat$i.job"
	t=$(now)
	cp "$T/lat$i.job" "$M/jobs/lat$i.job"
	until caudal cat "/jobs/lat$i/status" 2>/dev/null | grep -qE '^state: (RUNNING|SUCCEEDED)'; do :; done
	lat+=("$(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.0f", (b - a) * 1000 }')")
	job_wait "lat$i" 60 >/dev/null
done
lat_sorted=$(printf '%s\n' "${lat[@]}" | sort -n | tr '\n' ' ')
lat_median=$(printf '%s\n' "${lat[@]}" | sort -n | sed -n 3p)
say "close -> RUNNING (ms, sorted): $lat_sorted; median $lat_median ms (the poll adds ~10 ms)"

run_job() { # N
	printf 'input = /bench/big.txt\noutput = /bench/wc%d\nmap = wordcount\nreduce = sum\ncombine = sum\nreduces = 3\n' "$1" >"$T/wc$1.job"
	local t
	t=$(now)
	cp "$T/wc$1.job" "$M/jobs/wc$1.job"
	until caudal cat "/jobs/wc$1/status" 2>/dev/null | grep -qE '^state: (SUCCEEDED|FAILED|KILLED)'; do sleep 0.1; done
	since "$t"
}
pipeline() {
	local t
	t=$(now)
	LC_ALL=C tr -s ' ' '\n' <"$T/big.txt" | sort | uniq -c >"$T/pipe.out"
	since "$t"
}
awk_count() {
	local t
	t=$(now)
	awk '{for(i=1;i<=NF;i++)c[$i]++} END{for(w in c)print c[w],w}' "$T/big.txt" >"$T/awk.out"
	since "$t"
}

res=()
for round in $(seq 1 "$ROUNDS"); do
	say "round $round: wordcount job"
	j=$(run_job "$round")
	assert_eq "$(caudal cat "/jobs/wc$round/status" | sed -n 's/^state: //p')" SUCCEEDED "wordcount job"
	say "round $round: pipeline"
	p=$(pipeline)
	say "round $round: awk"
	a=$(awk_count)
	res+=("$j $p $a")
	say "round $round: job ${j}s, pipeline ${p}s, awk ${a}s"
done

say "checking the job's output against the pipeline's"
caudal cat /bench/wc1/part-00000 /bench/wc1/part-00001 /bench/wc1/part-00002 |
	awk -F'\t' '{print $2, $1}' | LC_ALL=C sort >"$T/job.norm"
awk '$2 != "" {print $1, $2}' "$T/pipe.out" | LC_ALL=C sort >"$T/pipe.norm"
assert_same_file "$T/pipe.norm" "$T/job.norm"

st=$(caudal cat /jobs/wc1/status)
maps=$(echo "$st" | sed -n 's/^maps: //p')
local_maps=$(echo "$st" | sed -n 's/^data_local_maps: //p')
{
echo
echo "jobs benchmark: ${MB} MiB input, $maps maps, 3 reduces, $(nproc) cores"
printf '%-8s %10s %12s %10s %16s %12s\n' round "job (s)" "pipeline (s)" "awk (s)" "pipeline/job" "awk/job"
i=1
for r in "${res[@]}"; do
	read -r j p a <<<"$r"
	printf '%-8s %10s %12s %10s %15.2fx %11.2fx\n' "$i" "$j" "$p" "$a" \
		"$(awk -v p="$p" -v j="$j" 'BEGIN { print p / j }')" "$(awk -v a="$a" -v j="$j" 'BEGIN { print a / j }')"
	i=$((i + 1))
done
echo "data-local maps: $local_maps of $maps ($(awk -v l="$local_maps" -v m="$maps" 'BEGIN { printf "%.0f", 100 * l / m }')%)"
echo "spec close -> state RUNNING: median $lat_median ms (runs: $lat_sorted)"
} | tee -a "${OUT:-/dev/null}"
