#!/bin/bash
# Block tokens expire and their keys roll, and the honest path does not
# notice: the namenode runs with 1.5 s tokens and a new key every second.
# A file held open on the mount across the expiry reads on (the reader is
# refused with the stale token, which the datanode logs, and fetches fresh
# locations), and puts and gets keep working through several key rolls.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cluster_up

say "the namenode again, with 1.5 s tokens and a key roll every second"
pidf=$CAUDAL_HOME/pids/namenode.pid
mapfile -t nnargs < <(tr '\0' '\n' <"/proc/$(daemon_pid namenode)/cmdline")
nnargs[0]=$BIN/caudal-namenode
nndir=$(sed -n 3p "$pidf")
nnrank=$(sed -n 4p "$pidf")
stop_daemon namenode TERM
setsid "${nnargs[@]}" --token_lifetime_ms=1500 --token_key_roll_ms=1000 \
	>>"$CAUDAL_HOME/logs/namenode.log" 2>&1 </dev/null &
nnpid=$!
register_pid $nnpid
printf '%s\n%s\n%s\n%s\n' "$nnpid" caudal-namenode "$nndir" "$nnrank" >"$pidf"
wait_until 30 "three live datanodes" \
	bash -c '[ "$("$0" report | sed -n "s/^live datanodes: //p")" = 3 ]' "$CAUDAL"

mkfile "$T/f" $((4 * BS))
caudal put "$T/f" /f
# a small read-ahead, so that the read after the expiry opens a new connection
mount_caudal "$T/m" readahead=65536

say "a file held open across the token's expiry reads on"
python3 - "$T/m/f" "$T/f" "$BS" <<'PY'
import sys, time
path, ref, bs = sys.argv[1], sys.argv[2], int(sys.argv[3])
want = open(ref, "rb").read()
with open(path, "rb", buffering=0) as f:
    if f.read(100) != want[:100]:
        sys.exit("FAIL: first read differs")
    time.sleep(3.5)  # the token expired, and the key that signed it is gone
    f.seek(3 * bs + 17)
    got = f.read(4096)
    if got != want[3 * bs + 17:3 * bs + 17 + 4096]:
        sys.exit(f"FAIL: read after the expiry differs ({len(got)} bytes)")
print("ok: read after the expiry")
PY
grep -h "refusing read of block" "$CAUDAL_HOME"/logs/dn*.log | grep -qE "expired|unknown" ||
	fail "no datanode refused a stale token: the expiry was not exercised"

say "puts and gets through several key rolls"
end=$((SECONDS + 5))
i=0
while [ $SECONDS -lt $end ]; do
	mkfile "$T/g$i" $((BS / 2 + i))
	caudal put "$T/g$i" "/g$i"
	caudal get "/g$i" "$T/g$i.out"
	assert_same_file "$T/g$i" "$T/g$i.out"
	cmp -s "$T/m/g$i" "$T/g$i" || fail "'/g$i' differs on the mount"
	i=$((i + 1))
	sleep 0.4
done
say "$i files written and read back"
assert_ok caudal fsck /
assert_contains "$OUT" "HEALTHY" "fsck"
echo "PASS"
