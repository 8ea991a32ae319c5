#!/bin/bash
# Issue 7, item 2 and the datanode half of item 7: the data port attacked
# with raw sockets on a real cluster. Without a block token from the
# namenode, a DT_READ by block id (generation 0 or the real one, a garbage
# or forged token) gets an EACCES reply and no byte of the file; a DT_WRITE
# with the same id and generation or with generation 2^62 changes nothing
# (the file is the same, fsck HEALTHY, also after the next heartbeats); a
# DT_WRITE whose pipeline names an arbitrary host:port is refused without a
# connection to it. A writer with a real token that pushes more than the
# block size is cut off at the block size. 256 idle sockets held against
# each datanode do not stop an honest put and get. Every datanode logs
# its refusals.
source "$(dirname "$0")/../lib.sh"
cluster_up

mkfile "$T/secret" $((BS + 4321))
caudal put "$T/secret" /secret
read -r BLK GEN _ <<<"$(caudal blocks /secret | head -n 1)"
say "the file's first block: id $BLK generation $GEN"
[ -n "$BLK" ] && [ "$GEN" -ge 1 ] || fail "no block listed for /secret"

# a port that records whoever connects: the pipeline target of an attack
python3 - >"$T/listener.port" 2>"$T/listener.log" <<'PY' &
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
s.settimeout(60)
try:
    while True:
        c, a = s.accept()
        print(f"connection from {a}", file=sys.stderr, flush=True)
        c.close()
except socket.timeout:
    pass
PY
register_pid $!
wait_until 5 "the listener" test -s "$T/listener.port"
LPORT=$(cat "$T/listener.port")

for h in 127.0.0.2 127.0.0.3 127.0.0.4; do
	say "attacking $h:$CAUDAL_DN_PORT"
	python3 - "$h" "$CAUDAL_DN_PORT" "$BLK" "$GEN" "$LPORT" <<'PY'
import os, socket, struct, sys, time

host, port, blk, gen, lport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def field_varint(num, v):
    return varint(num << 3) + varint(v)

def field_bytes(num, b):
    return varint((num << 3) | 2) + varint(len(b)) + b

def header(op, block, gen, token=None, targets=(), client=b"attacker"):
    """A DtHeader in the protobuf wire format, by hand."""
    h = field_varint(1, op) + field_varint(2, block) + field_varint(3, gen)
    if token is not None:
        h += field_bytes(6, token)
    for th, tp in targets:
        h += field_bytes(7, field_bytes(1, th.encode()) + field_varint(2, tp) + field_bytes(3, b"dn-x"))
    h += field_bytes(8, client)
    return b"CDT1" + struct.pack(">I", len(h)) + h

def parse_reply(b):
    """err and message of a DtReply."""
    err, msg, i = 0, b"", 0
    while i < len(b):
        key = 0; shift = 0
        while True:
            c = b[i]; i += 1; key |= (c & 0x7F) << shift; shift += 7
            if not c & 0x80: break
        num, wt = key >> 3, key & 7
        if wt == 0:
            v = 0; shift = 0
            while True:
                c = b[i]; i += 1; v |= (c & 0x7F) << shift; shift += 7
                if not c & 0x80: break
            if num == 1: err = v
        elif wt == 2:
            l = 0; shift = 0
            while True:
                c = b[i]; i += 1; l |= (c & 0x7F) << shift; shift += 7
                if not c & 0x80: break
            if num == 3: msg = b[i:i + l]
            i += l
        else:
            raise ValueError("unexpected wire type")
    return err, msg.decode(errors="replace")

def attempt(name, payload, after=b""):
    """Send a header (and maybe packets); the datanode must answer EACCES
    and send nothing more before closing."""
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(10)
    s.sendall(payload)
    got = b""
    while True:
        try:
            d = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not d:
            break
        got += d
        if len(got) >= 4 and after:
            try:
                s.sendall(after)
            except (ConnectionResetError, BrokenPipeError):
                pass
            after = b""
    s.close()
    if len(got) < 4:
        sys.exit(f"FAIL: {name}: no reply")
    n = struct.unpack(">I", got[:4])[0]
    err, msg = parse_reply(got[4:4 + n])
    extra = len(got) - 4 - n
    if err != 13:
        sys.exit(f"FAIL: {name}: reply err {err} ({msg!r}), expected EACCES")
    if extra:
        sys.exit(f"FAIL: {name}: {extra} bytes after the refusal")
    print(f"ok: {name}: refused: {msg}")

# forged tokens: random bytes, and a well-formed BlockTokenId that grants
# everything on this block with a MAC made up
ident = (field_varint(1, 1) + field_varint(2, int(time.time() * 1000) + 3600000) +
         field_varint(3, blk) + field_varint(4, gen) + field_varint(5, 15) +
         field_varint(6, 1 << 40) +
         field_bytes(7, field_bytes(1, host.encode()) + field_varint(2, port)))
forged = ident + os.urandom(32)

READ, WRITE = 1, 2
attempt("read, generation 0", header(READ, blk, 0))
attempt("read, the real generation", header(READ, blk, gen))
attempt("read, the next block", header(READ, blk + 1, 1))
attempt("read, a garbage token", header(READ, blk, gen, token=os.urandom(100)))
attempt("read, a forged token", header(READ, blk, gen, token=forged))
attempt("read, an empty token", header(READ, blk, 0, token=b""))
# 24-byte frame + payload, as the writer would send them
pkt = struct.pack(">IIQQ", 5, 1, 0, 0) + b"EVIL!"
attempt("write, same id and generation", header(WRITE, blk, gen), after=pkt)
attempt("write, generation 2^62", header(WRITE, blk, 1 << 62), after=pkt)
attempt("write, a forged token", header(WRITE, blk, gen + 1, token=forged), after=pkt)
attempt("write, a new block id", header(WRITE, 1 << 50, 1), after=pkt)
attempt("write, pipeline to an arbitrary port",
        header(WRITE, blk, gen + 1, targets=[("127.0.0.1", lport)]))
attempt("write, pipeline to an arbitrary port with a forged token",
        header(WRITE, blk, gen + 1, token=forged, targets=[("127.0.0.1", lport)]))
PY
done

say "the datanodes made no connection for the attacker"
sleep 0.5
if [ -s "$T/listener.log" ]; then
	fail "the listener was connected to: $(cat "$T/listener.log")"
fi
for n in dn1 dn2 dn3; do
	grep -q "refusing read of block $BLK" "$CAUDAL_HOME/logs/$n.log" ||
		fail "$n logged no refused read"
done

say "nothing changed: the file reads back the same, fsck HEALTHY, also after heartbeats"
caudal get /secret "$T/out"
assert_same_file "$T/secret" "$T/out"
sleep $((3 * CAUDAL_HEARTBEAT_MS / 1000 + 1))
for h in 127.0.0.2 127.0.0.3 127.0.0.4; do
	CAUDAL_CLIENT_HOST=$h caudal get /secret "$T/out.$h"
	assert_same_file "$T/secret" "$T/out.$h"
done
assert_ok caudal fsck /
assert_contains "$OUT" "HEALTHY" "fsck"
if find "$CAUDAL_HOME"/dn* -name "blk_$((1 << 50))_*" | grep -q .; then
	fail "a replica of the attacker's block exists"
fi

say "a writer with a real token is cut off at the block size"
WRITER=$T/sec_data_writer
build_tool "$ROOT/tests/e2e/sec_data_writer.c" "$WRITER"
"$WRITER" "$CAUDAL_NAMENODE" /big $((8 * BS)) >"$T/writer.out" 2>"$T/writer.err" ||
	fail "writer failed: $(cat "$T/writer.err")"
cat "$T/writer.out"
acked=$(sed -n 's/^acked //p' "$T/writer.out")
rc=$(sed -n 's/^rc //p' "$T/writer.out")
[ "$rc" -lt 0 ] || fail "the datanodes took $((8 * BS)) bytes into one block"
[ "$acked" -le "$BS" ] || fail "$acked bytes acknowledged, more than the block size $BS"
big=$(find "$CAUDAL_HOME"/dn* -name 'blk_*' ! -name '*.xxh' -size +"${BS}"c)
[ -z "$big" ] || fail "replicas larger than a block: $big"
grep -q "cut off" "$CAUDAL_HOME"/logs/dn*.log || fail "no datanode logged the cut-off"

say "256 idle sockets held against each datanode do not stop an honest put and get"
python3 - "$CAUDAL_DN_PORT" >"$T/idle.out" 2>&1 <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
held = []
for h in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
    for i in range(256):
        try:
            held.append(socket.create_connection((h, port), timeout=5))
        except OSError as e:
            print(f"connect {h} #{i}: {e}", flush=True)
print(f"holding {len(held)} sockets", flush=True)
time.sleep(30)
PY
register_pid $!
wait_until 20 "the idle sockets" grep -q holding "$T/idle.out"
cat "$T/idle.out"
mkfile "$T/honest" $((2 * BS + 99))
start=$SECONDS
timeout 20 "$CAUDAL" put "$T/honest" /honest || fail "honest put failed while sockets were held"
timeout 20 "$CAUDAL" get /honest "$T/honest.out" || fail "honest get failed while sockets were held"
took=$((SECONDS - start))
assert_same_file "$T/honest" "$T/honest.out"
[ $took -le 15 ] || fail "honest put and get took ${took}s"
say "honest put and get took ${took}s"
assert_ok caudal fsck /honest
assert_contains "$OUT" "HEALTHY" "fsck"
echo "PASS"
