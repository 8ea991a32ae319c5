#!/bin/bash
# encrypt_data = yes (TLS on the data port) on a real cluster: the namenode
# and every datanode restarted with it. Puts and gets work (the client
# learns from the namenode that it must use TLS; datanodes forward
# pipelines over TLS), and a plaintext data-transfer header is refused by
# every datanode with EACCES, whatever it asks. Prints the put and get
# times with and without encryption.
source "$(dirname "$0")/../lib.sh"
cluster_up

mkfile "$T/f" $((16 * BS + 333))
t0=$(date +%s.%N)
caudal put "$T/f" /plain
t1=$(date +%s.%N)
caudal get /plain "$T/plain.out"
t2=$(date +%s.%N)
assert_same_file "$T/f" "$T/plain.out"

# Restart daemon NAME by pid with its own command line plus FLAGS.
restart_with() { # NAME FLAGS...
	local name=$1 pidf=$CAUDAL_HOME/pids/$1.pid args dir rank prog pid
	shift
	mapfile -t args < <(tr '\0' '\n' <"/proc/$(daemon_pid "$name")/cmdline")
	prog=$(sed -n 2p "$pidf")
	dir=$(sed -n 3p "$pidf")
	rank=$(sed -n 4p "$pidf")
	args[0]=$BIN/$prog
	stop_daemon "$name" TERM
	setsid "${args[@]}" "$@" >>"$CAUDAL_HOME/logs/$name.log" 2>&1 </dev/null &
	pid=$!
	register_pid $pid
	printf '%s\n%s\n%s\n%s\n' "$pid" "$prog" "$dir" "$rank" >"$pidf"
}

say "namenode and datanodes again, with encrypt_data = yes"
restart_with namenode --encrypt_data=yes
for n in dn1 dn2 dn3; do restart_with $n --encrypt_data=yes; done
wait_until 30 "three live datanodes" \
	bash -c '[ "$("$0" report | sed -n "s/^live datanodes: //p")" = 3 ]' "$CAUDAL"
wait_until 30 "safe mode off" bash -c '"$0" report | grep -q "safe mode: off"' "$CAUDAL"

say "put and get over TLS"
t3=$(date +%s.%N)
caudal put "$T/f" /secret
t4=$(date +%s.%N)
caudal get /secret "$T/secret.out"
t5=$(date +%s.%N)
assert_same_file "$T/f" "$T/secret.out"
caudal get /plain "$T/plain.out2"
assert_same_file "$T/f" "$T/plain.out2"
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" -v f="$t5" -v n=$((16 * BS + 333)) \
	'BEGIN { printf "16 MiB: plaintext put %.0f MB/s get %.0f MB/s; TLS put %.0f MB/s get %.0f MB/s\n",
		n / 1e6 / (b - a), n / 1e6 / (c - b), n / 1e6 / (e - d), n / 1e6 / (f - e) }'

say "a plaintext header gets EACCES from every datanode"
read -r BLK GEN _ <<<"$(caudal blocks /secret | head -n 1)"
for h in 127.0.0.2 127.0.0.3 127.0.0.4; do
	python3 - "$h" "$CAUDAL_DN_PORT" "$BLK" "$GEN" <<'PY'
import socket, struct, sys
host, port, blk, gen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
for op in (1, 2):
    h = b"\x08" + varint(op) + b"\x10" + varint(blk) + b"\x18" + varint(gen)
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"CDT1" + struct.pack(">I", len(h)) + h)
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    n = struct.unpack(">I", got[:4])[0]
    body = got[4:4 + n]
    if body[:2] != b"\x08\x0d":
        sys.exit(f"FAIL: {host}: op {op} in plaintext got {body!r}, expected EACCES")
    if b"encrypted" not in body:
        sys.exit(f"FAIL: {host}: the refusal does not say why: {body!r}")
    if len(got) != 4 + n:
        sys.exit(f"FAIL: {host}: {len(got) - 4 - n} bytes after the refusal")
print(f"ok: {host} refuses plaintext")
PY
done
assert_ok caudal fsck /
assert_contains "$OUT" "HEALTHY" "fsck"
echo "PASS"
