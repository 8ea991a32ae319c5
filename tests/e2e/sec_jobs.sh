#!/bin/bash
# Issue 7, items 4 and 8, attacked as the issue found them, on a real
# cluster whose jobtracker runs with allow_root_jobs = no:
#  - a spec owned by `nobody` with `map = exec: id -u; cat /etc/shadow`
#    runs as nobody (its output says 65534, holds no line of the shadow
#    file, belongs to nobody) in a clean environment;
#  - nobody's job whose input is root's 0600 file FAILS with "Permission
#    denied" and no output holds the data;
#  - a root-owned spec is refused; so is a spec others may write;
#  - a raw shuffle fetch of a running job's map output without a token, or
#    with a forged one, gets EACCES and no byte (the same fetch signed with
#    the job's key gets the data, so the refusal is the token's doing);
#  - a second registration under the id of the live tracker running a
#    reduce is refused, and so is a heartbeat under that id from a
#    tasktracker certificate of another host: no work, the reduce runs on;
#  - a spec named with a newline is refused, gets no status, and
#    `caudal job list` shows no forged line;
#  - the honest path: nobody's wordcount SUCCEEDS with the right counts.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
source "$(dirname "$0")/job_lib.sh"
NOBODY=$(id -u nobody)
NOGROUP=$(id -g nobody)
[ "$(id -u)" = 0 ] || fail "sec_jobs needs root (it makes files owned by nobody)"
cluster_up
M=$T/mnt
mount_caudal "$M"
JT_ARGS="--allow_root_jobs=no" jobs_up

mkdir -p "$M/data" "$M/out" "$M/stage"
chmod 1777 "$M/out"
# Submits SPEC-TEXT as job NAME owned by UID (written as root in a folder
# of its own, chowned, then renamed into /jobs: the jobtracker reads it
# only then, with its final owner).
submit_as() { # UID NAME SPEC-TEXT [MODE]
	printf '%s\n' "$3" >"$M/stage/$2.job"
	chmod "${4:-0644}" "$M/stage/$2.job"
	chown "$1:$(id -g "$1" 2>/dev/null || echo "$1")" "$M/stage/$2.job"
	mv "$M/stage/$2.job" "$M/jobs/$2.job"
}

say "jobs run as their owner: nobody's id, no shadow file, a clean environment"
printf 'one line\n' >"$M/data/one.txt"
submit_as "$NOBODY" whoami 'input = /data/one.txt
output = /out/whoami
map = exec: id -u; id -g; cat /etc/shadow 2>&1; env | sed "s/^/env /"; true
reduces = 0'
job_expect whoami SUCCEEDED 60
# the job made /out/whoami through the namenode, in /out, which this mount
# made: its directory cache misses a name another client made there for up
# to the entry timeout (mount/mnt_dcache.h), and the job, whose files are
# now inline, can finish within it
wait_until 5 "the job's output visible through the mount" test -e "$M/out/whoami/_SUCCESS"
out=$(cat "$M"/out/whoami/part-*)
assert_eq "$(echo "$out" | sed -n 1p)" "$NOBODY" "uid of the map"
assert_eq "$(echo "$out" | sed -n 2p)" "$NOGROUP" "gid of the map"
assert_contains "$out" "Permission denied" "cat /etc/shadow as nobody"
root_hash=$(awk -F: '$1 == "root" { print $2 }' /etc/shadow)
if echo "$out" | grep -q '^root:' || { [ -n "$root_hash" ] && echo "$out" | grep -qF -- "$root_hash"; }; then
	fail "the map's output holds the shadow file"
fi
assert_contains "$out" "env PATH=/usr/local/bin:/usr/bin:/bin" "the task's PATH"
assert_contains "$out" "env USER=nobody" "the task's USER"
echo "$out" | grep -q '^env CAUDAL_NAMENODE=' && fail "the tracker's environment reached the task"
echo "$out" | grep -q '^env CAUDAL_JOB_NAME=whoami' || fail "the job's variables are missing"
for f in "$M"/out/whoami "$M"/out/whoami/part-00000 "$M"/out/whoami/_SUCCESS; do
	assert_eq "$(stat -c %u "$f")" "$NOBODY" "owner of '${f#"$M"}'"
done

say "nobody's job over root's 0600 file fails with permission denied"
head -c 100000 /dev/urandom | base64 >"$T/secret"
cp "$T/secret" "$M/data/secret"
chmod 0600 "$M/data/secret"
submit_as "$NOBODY" steal 'input = /data/secret
output = /out/steal
map = identity
reduces = 0'
job_expect steal FAILED 60
assert_contains "$(job_field steal error)" "Permission denied" "error of steal"
[ ! -e "$M/out/steal" ] || fail "the refused job left an output folder"
needle=$(sed -n 5p "$T/secret")
if grep -rqF -- "$needle" "$M/out" "$M/jobs/steal" 2>/dev/null; then
	fail "the secret reached a file"
fi

say "root's spec is refused (allow_root_jobs = no), so is a spec others may write"
job_submit rootjob 'input = /data/one.txt
output = /out/rootjob
map = exec: id -u
reduces = 0'
job_expect rootjob FAILED 60
assert_contains "$(job_field rootjob error)" "allow_root_jobs" "error of rootjob"
[ ! -e "$M/out/rootjob" ] || fail "root's refused job made its output"
submit_as "$NOBODY" open 'input = /data/one.txt
output = /out/open
map = identity
reduces = 0' 0666
job_expect open FAILED 60
assert_contains "$(job_field open error)" "writable by others" "error of open"

say "forged shuffle fetches get nothing"
gen_text "$T/words.txt" 20000 7
cp "$T/words.txt" "$M/data/words.txt"
submit_as "$NOBODY" slow 'input = /data/words.txt
output = /out/slow
map = wordcount
reduce = exec: sleep 60; cat
reduces = 1'
end=$((SECONDS + 60))
while [ "$(job_field slow maps_done)" != "$(job_field slow maps)" ] || [ -z "$(job_field slow maps)" ] ||
	! grep -q '^r-00000 .* RUNNING' "$M/jobs/slow/tasks" 2>/dev/null; do
	[ $SECONDS -lt $end ] || fail "job slow did not reach its reduce; status: $(job_status slow)"
	sleep 0.2
done
jobid=$(job_field slow id)
host=$(awk '$1 == "m-00000" && $5 == "SUCCEEDED" { print $3; exit }' "$M/jobs/slow/tasks")
attempt=$(awk '$1 == "m-00000" && $5 == "SUCCEEDED" { print $2; exit }' "$M/jobs/slow/tasks")
port=$(jobs_log jobtracker | sed -n "s/.*tasktracker '$host:\([0-9]*\)' registered.*/\1/p" | tail -n 1)
[ -n "$host" ] && [ -n "$port" ] || fail "no tracker of map 0 (host '$host', port '$port')"
keyfile=$(find "$T/jobs" -path "*/jobs/$jobid/shuffle.key" | head -n 1)
[ -n "$keyfile" ] || fail "no shuffle key of '$jobid' on the trackers"
# the tracker's folders: the job's is the tracker's (0711), its key only
# the tracker's (0600), the map attempt's folder nobody's alone (0700)
assert_eq "$(stat -c '%U %a' "$keyfile")" "root 600" "the job's shuffle key"
assert_eq "$(stat -c '%U %a' "$(dirname "$keyfile")")" "root 711" "the job's local folder"
mdir=$(dirname "$keyfile")/${jobid}_m_00000_$attempt
[ -d "$mdir" ] || mdir=$(find "$T/jobs" -type d -name "${jobid}_m_00000_$attempt" | head -n 1)
assert_eq "$(stat -c '%u %a' "$mdir")" "$NOBODY 700" "the map attempt's folder"
assert_eq "$(stat -c %u "$mdir/file.out")" "$NOBODY" "the map output's owner"
fetch() { # TOKEN-KIND: none, forged, signed; prints "err=N bytes=M"
	python3 - "$host" "$port" "$jobid" "${jobid}_m_00000_$attempt" "$1" "$keyfile" <<'PY'
import hashlib, hmac, os, socket, struct, sys
host, port, job, att, kind, keyfile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
part = 0
def ld(tag, b):
    n, out = len(b), bytes([tag])
    while True:
        if n < 0x80:
            return out + bytes([n]) + b
        out += bytes([n & 0x7f | 0x80]); n >>= 7
msg = job.encode() + b"\0" + att.encode() + b"\0" + struct.pack(">I", part)
tok = {"none": b"", "forged": os.urandom(32),
       "signed": hmac.new(open(keyfile, "rb").read(), msg, hashlib.sha256).digest()}[kind]
req = ld(0x0a, job.encode()) + ld(0x12, att.encode()) + (ld(0x22, tok) if tok else b"")
s = socket.create_connection((host, port), timeout=10)
s.sendall(b"CSH1" + struct.pack(">I", len(req)) + req)
data = b""
while True:
    c = s.recv(65536)
    if not c:
        break
    data += c
n = struct.unpack(">I", data[:4])[0]
rep, rest = data[4:4 + n], data[4 + n:]
err, i = 0, 0
while i < len(rep):
    tag = rep[i]; i += 1
    v, sh = 0, 0
    while True:
        b = rep[i]; i += 1
        v |= (b & 0x7f) << sh; sh += 7
        if b < 0x80:
            break
    if tag == 0x08:
        err = v
print("err=%d bytes=%d" % (err, len(rest)))
PY
}
assert_eq "$(fetch none)" "err=13 bytes=0" "fetch without a token"
assert_eq "$(fetch forged)" "err=13 bytes=0" "fetch with a forged token"
got=$(fetch signed)
case $got in "err=0 bytes="[1-9]*) ;; *) fail "the signed fetch got '$got'" ;; esac

say "a registration under a live tracker's id takes nothing over"
# a small client of JobProtocol that claims to be the tracker running the
# reduce: it registers under its id; with a certificate (a tasktracker's
# for another host, as a compromised node would hold), it also registers
# as itself to learn the epoch and then heartbeats as the real tracker
cat >"$T/fake_tt.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include "cdl_rpc.h"
#include "cdl_sec.h"
#include "jobs.pb-c.h"
static uint64_t reg(cdl_rpc_client *c, const char *host, const char *port, const char *what)
{
	char id[300];
	snprintf(id, sizeof(id), "%s:%s", host, port);
	Caudal__RegisterTrackerRequest req = CAUDAL__REGISTER_TRACKER_REQUEST__INIT;
	Caudal__TrackerInfo ti = CAUDAL__TRACKER_INFO__INIT;
	ti.id = id;
	ti.host = (char *)host;
	ti.port = (uint32_t)atoi(port);
	ti.slots = 4;
	req.tracker = &ti;
	ProtobufCMessage *rep = NULL;
	int rc = cdl_rpc_call_name(c, "RegisterTracker", &req.base, &rep, 5000);
	unsigned err = rc ? 0 : ((Caudal__RegisterTrackerReply *)rep)->err;
	printf("%s %s (rc %d, err %u)\n", what, rc == 0 && err == 0 ? "accepted" : "refused", rc,
	       err);
	return rc == 0 && err == 0 ? ((Caudal__RegisterTrackerReply *)rep)->epoch : 0;
}
int main(int argc, char **argv)
{
	if (argc != 4 && argc != 8)
		return 2;
	if (argc == 8 && cdl_sec_use(argv[4], argv[5], argv[6]))
		return 3;
	cdl_rpc_global_init();
	cdl_rpc_client *c = cdl_rpc_client_new(argv[1], &caudal__job_protocol__descriptor);
	uint64_t epoch = reg(c, argv[2], argv[3], "register");
	if (argc == 8)
		epoch = reg(c, argv[7], "1", "own-register");
	char id[300];
	snprintf(id, sizeof(id), "%s:%s", argv[2], argv[3]);
	Caudal__TrackerHeartbeatRequest hb = CAUDAL__TRACKER_HEARTBEAT_REQUEST__INIT;
	hb.tracker_id = id;
	hb.epoch = epoch;
	hb.free_slots = 4;
	ProtobufCMessage *rep = NULL;
	int rc = cdl_rpc_call_name(c, "Heartbeat", &hb.base, &rep, 5000);
	unsigned err = rc ? 0 : ((Caudal__TrackerHeartbeatReply *)rep)->err;
	size_t got = rc ? 0 : ((Caudal__TrackerHeartbeatReply *)rep)->n_assign;
	printf("heartbeat %s (rc %d, err %u), assigned %zu\n",
	       rc == 0 && err == 0 ? "accepted" : "refused", rc, err, got);
	cdl_rpc_client_free(c);
	return 0;
}
C
build_tool "$T/fake_tt.c" "$T/fake_tt"
rhost=$(awk '$1 == "r-00000" && $5 == "RUNNING" { print $3; exit }' "$M/jobs/slow/tasks")
rport=$(jobs_log jobtracker | sed -n "s/.*tasktracker '$rhost:\([0-9]*\)' registered.*/\1/p" | tail -n 1)
[ -n "$rhost" ] && [ -n "$rport" ] || fail "no tracker of the reduce (host '$rhost', port '$rport')"
OUT=$("$T/fake_tt" "$JT_ADDR" "$rhost" "$rport" 2>&1)
say "without a certificate: $(echo "$OUT" | tr '\n' ';')"
assert_contains "$OUT" "register refused" "the second registration"
assert_contains "$OUT" "assigned 0" "work given to the impostor"
if [ -f "$CAUDAL_HOME/certs/ca.crt" ]; then
	assert_ok "$CAUDAL" cert create-node 127.0.0.9 tasktracker
	c=$CAUDAL_HOME/certs
	OUT=$("$T/fake_tt" "$JT_ADDR" "$rhost" "$rport" "$c/ca.crt" "$c/tasktracker-127.0.0.9.crt" \
		"$c/tasktracker-127.0.0.9.key" 127.0.0.9 2>&1)
	say "with a tasktracker certificate for 127.0.0.9: $(echo "$OUT" | tr '\n' ';')"
	assert_contains "$OUT" "register refused" "registration under another host's id"
	assert_contains "$OUT" "own-register accepted" "registration as itself (the control)"
	assert_contains "$OUT" "heartbeat refused" "heartbeat under another host's id"
	assert_contains "$OUT" "assigned 0" "work given to the impostor"
else
	say "(a plaintext cluster: every claim is believed, no certificate test)"
fi
sleep 1
grep -q '^r-00000 0 .* RUNNING' "$M/jobs/slow/tasks" ||
	fail "the real tracker's reduce did not survive: $(cat "$M/jobs/slow/tasks")"
if jobs_log jobtracker | grep -q "tasktracker '$rhost:$rport' lost"; then
	fail "the real tracker was declared lost"
fi

rm "$M/jobs/slow.job"
job_expect slow KILLED 60

say "a spec named with a newline is refused and forges no line"
evil=$'evil\nforged            SUCCEEDED maps 1 of 1 [##########]'
printf 'input = /data/one.txt\noutput = /out/evil\nmap = identity\nreduces = 0\n' >"$M/stage/x.job"
chown "$NOBODY:$NOGROUP" "$M/stage/x.job"
mv "$M/stage/x.job" "$M/jobs/$evil.job"
wait_until 20 "the jobtracker refuses the name" \
	eval "jobs_log jobtracker | grep -q 'refused: a job name may not hold control characters'"
sleep 1
[ ! -e "$M/jobs/$evil" ] || fail "a status folder was made for the bad name"
[ ! -e "$M/out/evil" ] || fail "the bad name's job ran"
assert_ok "$CAUDAL" job list
echo "$OUT" | grep -q '^forged' && fail "caudal job list shows a forged line: $OUT"
assert_contains "$OUT" 'evil\nforged' "the escaped name in caudal job list"

say "the honest path: nobody's wordcount succeeds"
mkdir -p "$M/data/books"
gen_text "$T/a.txt" 30000 3
cp "$T/a.txt" "$M/data/books/"
submit_as "$NOBODY" wc 'input = /data/books
output = /out/wc
map = wordcount
reduce = sum
combine = sum
reduces = 2'
job_expect wc SUCCEEDED 120
wc_expected "$T/a.txt" >"$T/want"
wc_got "$M"/out/wc/part-* >"$T/got"
assert_same_file "$T/want" "$T/got"
assert_eq "$(stat -c %u "$M/out/wc/part-00001")" "$NOBODY" "owner of the wordcount's output"
echo "PASS"
