#!/bin/bash
# The web UI in headless Chromium (tests/e2e/webui_check.py does the
# browsing): every page of the namenode's UI (overview, datanodes, the file
# browser, a file's blocks) and of the jobtracker's (jobs, a job) shows what
# `caudal report`, `caudal fsck /`, user.caudal.blocks and the jobs' status
# files say; a file, a job and a job error whose names hold HTML show it as
# text (no script runs, no element is made from it); the browser's console
# stays free of errors; a folder that nobody may list is refused. Then the
# JSON endpoints' bounds: over-long arguments, bad offsets, unknown pages,
# other methods. WEBUI_SHOTS=DIR keeps a screenshot of each page there
# (docs/ui-*.png come from it).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
DRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
PY=/usr/bin/python3 # Debian's, which has python3-selenium
if [ ! -x "$CHROMIUM" ] || [ ! -x "$DRIVER" ] || ! "$PY" -c 'import selenium' 2>/dev/null; then
	fail "chromium, chromium-driver or python3-selenium is not installed (make deps)"
fi

read -r JT_HTTP <<<"$(free_ports 1)"
export JT_ARGS="--http_port=$JT_HTTP --max_attempts=2"
# caudal up links the namenode's UI to a jobtracker UI on this port
export CAUDAL_JT_HTTP_PORT=$JT_HTTP
cluster_up
# with TLS (caudal up's default) the namenode's port is HTTPS with the
# cluster's CA: curl trusts that CA, the browser is told to accept it
NN_URL=https://127.0.0.1:$CAUDAL_NN_HTTP_PORT/
export CURL_CA_BUNDLE=$CAUDAL_HOME/certs/ca.crt
JT_ARGS+=" --namenode_url=$NN_URL"
source "$(dirname "$0")/job_lib.sh"
M=$T/mnt
mount_caudal "$M"
jobs_up
JT_URL=http://127.0.0.1:$JT_HTTP/

say "a namespace to look at"
EVIL='<img src=x onerror=alert(1)>'
mkdir -p "$M/data" "$M/private" "$M/many"
head -c $((2 * BS + 4321)) /dev/urandom >"$M/data/a.txt"
echo small >"$M/data/inline.txt"
echo secret >"$M/private/secret.txt"
chmod 0700 "$M/private"
for i in $(seq 1 230); do : >"$M/many/f$i"; done
# three datanodes cannot hold five replicas: under-replicated for good
head -c 100000 /dev/urandom >"$M/data/five.bin"
caudal setrep 5 /data/five.bin >/dev/null

say "jobs: one that succeeds, one with a bad spec, one that fails"
gen_text "$T/in.txt" 20000 7
cp "$T/in.txt" "$M/data/in.txt"
job_submit wc 'input = /data/in.txt
output = /out/wc
map = wordcount
reduce = sum
reduces = 1'
BAD_KEY='<img src=x onerror=alert(2)>'
job_submit bad "input = /data/in.txt
$BAD_KEY = 1"
JOB_EVIL='<img src=x onerror=alert(3)>'
MARK='<script>window.__pwned=true</script>'
job_submit "$JOB_EVIL" "input = /data/inline.txt
output = /out/evil
map = exec: echo '$MARK' >&2; exit 3
reduces = 0"
job_expect wc SUCCEEDED 120
job_expect bad FAILED 60
job_expect "$JOB_EVIL" FAILED 120
# last, so that they are among the recent events the overview shows
echo evil >"$M/data/$EVIL"
echo later >"$M/private/later.txt"

say "plain text for curl stays where it was"
assert_ok curl -fsS "$NN_URL"
assert_contains "$OUT" "caudal namenode" "GET / without Accept: text/html"
assert_ok curl -fsS "${NN_URL}status.txt"
assert_contains "$OUT" "live datanodes 3 of 3" "/status.txt"
assert_ok curl -fsS -H 'Accept: text/html' "$NN_URL"
assert_contains "$OUT" '<script src="/ui/app.js"></script>' "GET / for a browser"
hdrs=$(curl -fsS -o /dev/null -D - -H 'Accept: text/html' "$NN_URL")
assert_contains "$hdrs" "Content-Security-Policy: default-src 'none'; script-src 'self'" "CSP header"

say "the browser"
shots=${WEBUI_SHOTS:-}
rc=0
"$PY" "$ROOT/tests/e2e/webui_check.py" --nn="$NN_URL" --jt="$JT_URL" --caudal="$CAUDAL" \
	--mount="$M" --evil="$EVIL" --job-ok=wc --job-bad=bad --job-evil="$JOB_EVIL" \
	--stderr-marker="$MARK" --blocks=3 --profile="$T/chromium" --shots="$shots" \
	--chromium="$CHROMIUM" --driver="$DRIVER" || rc=$?
if [ "$rc" = 77 ]; then
	echo "SKIP: Chromium cannot start on this machine (see above)"
	exit 0
fi
[ "$rc" = 0 ] || fail "the browser checks failed"

say "bounds and abuse of the JSON endpoints"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
long=$(head -c 5000 /dev/zero | tr '\0' a)
assert_eq "$(code "${NN_URL}ui/api/ls?path=/$long")" 414 "over-long path"
assert_eq "$(code "${NN_URL}ui/api/ls?path=/data&after=$long")" 414 "over-long after"
assert_eq "$(code "${NN_URL}ui/api/ls?path=relative")" 400 "relative path"
assert_eq "$(code "${NN_URL}ui/api/ls?path=/private")" 403 "a folder nobody may list"
assert_eq "$(code "${NN_URL}ui/api/file?path=/private/secret.txt")" 403 "a file under it"
assert_eq "$(code "${NN_URL}ui/api/ls?path=/nonexistent")" 404 "a missing folder"
assert_eq "$(code "${NN_URL}ui/api/file?path=/data/a.txt&offset=-1")" 400 "negative offset"
assert_eq "$(code "${NN_URL}ui/api/file?path=/data/a.txt&offset=99999999999999999999999")" 400 "huge offset"
assert_eq "$(code "${NN_URL}ui/api/nothing")" 404 "unknown page"
assert_eq "$(code -X POST "${NN_URL}ui/api/overview")" 405 "POST"
assert_eq "$(code "${JT_URL}ui/api/job?name=$long")" 400 "over-long job name"
assert_eq "$(code "${JT_URL}ui/api/job?name=nosuchjob")" 404 "unknown job"
# a page of a huge folder is bounded: 200 entries and a cursor
n=$(curl -fsS "${NN_URL}ui/api/ls?path=/many" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(len(d["entries"]), d["more"])')
assert_eq "$n" "200 True" "first page of /many"
# a file's blocks start at the offset asked for
n=$(curl -fsS "${NN_URL}ui/api/file?path=/data/a.txt&offset=$((2 * BS))" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(len(d["blocks"]), d["blocks"][0]["offset"])')
assert_eq "$n" "1 $((2 * BS))" "blocks from an offset"
# every string the JSON carries is escaped: no raw '<' reaches the page
body=$(curl -fsS "${NN_URL}ui/api/ls?path=/data")
case $body in *"<"*) fail "raw '<' in the listing's JSON: $body" ;; esac
body=$(curl -fsS "${JT_URL}ui/api/jobs")
case $body in *"<"*) fail "raw '<' in the jobs' JSON: $body" ;; esac
# the namenode still serves while a browser-like client hammers it
pids=()
for i in $(seq 1 20); do
	curl -fsS -o /dev/null "${NN_URL}ui/api/overview" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent overview request failed"; done
assert_ok caudal report
echo "PASS"
