#!/bin/bash
# Garbage, a bad magic, zero, oversized and undecodable header lengths, a
# truncated header, a read of a block that does not exist, and a burst of
# such connections, sent to every datanode's data port: each connection is
# dropped (or refused with an error reply) promptly, and the datanodes keep
# serving reads and writes.
source "$(dirname "$0")/../lib.sh"
cluster_up

mkfile "$T/f" $((BS + 77))
caudal put "$T/f" /f
dn_pids() { for n in dn1 dn2 dn3; do daemon_pid $n; done; }
pids_before=$(dn_pids)

for h in 127.0.0.2 127.0.0.3 127.0.0.4; do
	say "attacking $h:$CAUDAL_DN_PORT"
	python3 - "$h" "$CAUDAL_DN_PORT" <<'PY'
import os, socket, struct, sys, threading, time

host, port = sys.argv[1], int(sys.argv[2])

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def dropped(name, payload, close_write=False, limit=10.0):
    """Send payload; the server must close the connection within limit
    seconds (an error reply before the close is fine)."""
    s = socket.create_connection((host, port), timeout=5)
    s.settimeout(limit)
    try:
        s.sendall(payload)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        start = time.time()
        got = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                sys.exit(f"FAIL: {name}: connection still open after {limit}s")
            if not d:
                break
            got += d
            if len(got) > 1 << 20:
                sys.exit(f"FAIL: {name}: server sent more than 1 MiB")
        print(f"ok: {name}: dropped after {time.time() - start:.2f}s ({len(got)} reply bytes)")
        return got
    finally:
        s.close()

dropped("random bytes", os.urandom(4096))
dropped("text", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
dropped("bad magic", b"CDT9" + struct.pack(">I", 10) + b"x" * 10)
dropped("zero header length", b"CDT1" + struct.pack(">I", 0))
dropped("oversized header length", b"CDT1" + struct.pack(">I", 0xFFFFFFFF))
dropped("header length just over the cap", b"CDT1" + struct.pack(">I", 65537) + b"\0" * 1024)
dropped("undecodable header", b"CDT1" + struct.pack(">I", 100) + b"\xff" * 100)
dropped("truncated header", b"CDT1" + struct.pack(">I", 1000) + b"\x08" * 10, close_write=True)
dropped("magic only", b"CDT1", close_write=True)
# DtHeader{op=DT_READ(1), block=2^62, gen=1}: a well-formed read of nothing
hdr = b"\x08\x01" + b"\x10" + varint(1 << 62) + b"\x18\x01"
dropped("read of a missing block", b"CDT1" + struct.pack(">I", len(hdr)) + hdr)
# DtHeader{op=99}: an unknown operation
hdr = b"\x08" + varint(99)
dropped("unknown op", b"CDT1" + struct.pack(">I", len(hdr)) + hdr)
# DT_WRITE with a frame claiming a 1 GiB payload
hdr = b"\x08\x02" + b"\x10" + varint((1 << 62) + 5) + b"\x18\x01"
frame = struct.pack(">IIQQ", 1 << 30, 0, 0, 0)
dropped("write with an oversized frame", b"CDT1" + struct.pack(">I", len(hdr)) + hdr + frame + b"z" * 1000)

errors = []
def burst(i):
    try:
        dropped(f"burst {i}", os.urandom(200 + i))
    except SystemExit as e:
        errors.append(str(e))
    except Exception as e:
        errors.append(f"burst {i}: {e!r}")
ts = [threading.Thread(target=burst, args=(i,)) for i in range(40)]
for t in ts: t.start()
for t in ts: t.join()
if errors:
    sys.exit("FAIL: " + "; ".join(errors[:5]))
PY
done

say "datanodes still up and serving"
assert_eq "$(dn_pids)" "$pids_before" "datanode pids (none restarted)"
for n in dn1 dn2 dn3; do
	pid_is "$(daemon_pid $n)" caudal-datanode || fail "$n died"
done
assert_eq "$(caudal report | sed -n 's/^live datanodes: //p')" 3 "live datanodes"
for h in 127.0.0.2 127.0.0.3 127.0.0.4; do
	CAUDAL_CLIENT_HOST=$h caudal get /f "$T/out"
	assert_same_file "$T/f" "$T/out"
done
mkfile "$T/g" $((BS + 1))
caudal put "$T/g" /g
assert_same_file "$T/g" <(caudal cat /g)
assert_ok caudal fsck /
echo "PASS"
