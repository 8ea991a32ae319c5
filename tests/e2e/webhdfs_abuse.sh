#!/bin/bash
# WebHDFS attacked, on a cluster with security on (issue 10, DESIGN.md
# "Security"): the HTTP ports speak HTTPS and the caller is its client
# certificate. Refused, each leaving the data as it was: no certificate
# (401 with a RemoteException), a certificate of another CA, a forged
# user.name, another user's file, a ticket forged, expired, for another
# path, replayed for another op, on another datanode or with another
# caller's certificate; huge offsets, lengths and sizes, a bad op, paths
# with '..', NUL or control characters, an overlong path or query; a flood
# of connections stays bounded and honest callers from elsewhere are served;
# a ticket past its expiry is refused.
# The honest path works: a user's certificate reads and writes its own, and
# fsspec WebHDFS over HTTPS with a client certificate reads and writes.
source "$(dirname "$0")/../lib.sh"
cluster_up
C=$CAUDAL_HOME/certs
caudal cert create-client nobody >/dev/null
HP=$CAUDAL_NN_HTTP_PORT
NN=https://127.0.0.1:$HP/webhdfs/v1
PY=/usr/bin/python3
ADMIN=(--cacert "$C/ca.crt" --cert "$C/admin.crt" --key "$C/admin.key")
NOBODY=(--cacert "$C/ca.crt" --cert "$C/users/nobody.crt" --key "$C/users/nobody.key")
ANON=(--cacert "$C/ca.crt")

# curl with the identity array named by WHO (ADMIN, NOBODY, ANON, ...):
# body in OUT, status in CODE, the Location header in LOC.
req() { # WHO METHOD URL [CURL ARGS...]
	local -n who=$1
	local m=$2 u=$3 r
	shift 3
	r=$(curl -sS -X "$m" -D "$T/hdr" -w '\n%{http_code}' "${who[@]}" "$@" "$u") ||
		fail "curl $m $u failed"
	CODE=${r##*$'\n'}
	OUT=${r%$'\n'*}
	LOC=$(sed -n 's/^Location: //p' "$T/hdr" | tr -d '\r')
}
# req, and the status must be WANT, and (when given) the exception EX.
want() { # WANT EX WHO METHOD URL [CURL ARGS...]
	local code=$1 ex=$2
	shift 2
	req "$@"
	[ "$CODE" = "$code" ] || fail "$2 $3: status $CODE, want $code: $OUT"
	[ -z "$ex" ] || assert_contains "$OUT" "\"exception\":\"$ex\"" "exception of $2 $3"
}

say "honest use: admin and a user, over HTTPS with client certificates"
mkfile "$T/secret" $((2 * BS + 99))
want 200 "" ADMIN PUT "$NN/home/nobody?op=MKDIRS&permission=755"
want 200 "" ADMIN PUT "$NN/home/nobody?op=SETOWNER&owner=nobody&group=nogroup"
want 307 "" ADMIN PUT "$NN/secret?op=CREATE&permission=600" -T "$T/secret"
CREATE_LOC=$LOC
want 201 "" ADMIN PUT "$CREATE_LOC" -T "$T/secret"
curl -sS -f -L "${ADMIN[@]}" -o "$T/secret.out" "$NN/secret?op=OPEN" || fail "admin OPEN"
cmp "$T/secret" "$T/secret.out" || fail "admin read back other bytes"
echo mine >"$T/mine"
want 201 "" NOBODY PUT "$NN/home/nobody/mine?op=CREATE" -L -T "$T/mine"
curl -sS -f -L "${NOBODY[@]}" -o "$T/mine.out" "$NN/home/nobody/mine?op=OPEN" || fail "nobody OPEN"
cmp "$T/mine" "$T/mine.out" || fail "nobody read back other bytes"
want 200 "" NOBODY GET "$NN/home/nobody/mine?op=GETFILESTATUS"
assert_contains "$OUT" '"owner":"nobody"' "owner of what nobody made"
want 200 "" NOBODY GET "$NN/?op=GETHOMEDIRECTORY"
assert_contains "$OUT" '"Path":"/user/nobody"' "nobody's home"

say "no certificate, a certificate of another CA, a forged user.name"
want 401 SecurityException ANON GET "$NN/?op=LISTSTATUS"
want 401 SecurityException ANON GET "$NN/secret?op=OPEN&user.name=root"
caudal cert create-ca --dir "$T/evil" >/dev/null
caudal cert create-client root --dir "$T/evil" >/dev/null
EVIL=(--cacert "$C/ca.crt" --cert "$T/evil/users/root.crt" --key "$T/evil/users/root.key")
want 401 SecurityException EVIL GET "$NN/secret?op=OPEN"
want 403 AccessControlException NOBODY GET "$NN/secret?op=OPEN&user.name=root"
want 403 AccessControlException NOBODY DELETE "$NN/secret?op=DELETE&user.name=root"
want 403 AccessControlException NOBODY GET "$NN/?op=LISTSTATUS&doas=root"
# a datanode's certificate is no user
DNCERT=(--cacert "$C/ca.crt" --cert "$C/dn1.crt" --key "$C/dn1.key")
want 403 AccessControlException DNCERT GET "$NN/secret?op=GETFILESTATUS"

say "another user's file, by every op"
want 403 AccessControlException NOBODY GET "$NN/secret?op=OPEN"
want 403 AccessControlException NOBODY GET "$NN/secret?op=GETFILECHECKSUM"
want 403 AccessControlException NOBODY PUT "$NN/secret?op=SETPERMISSION&permission=777"
want 403 AccessControlException NOBODY PUT "$NN/secret?op=SETOWNER&owner=nobody"
want 403 AccessControlException NOBODY POST "$NN/secret?op=TRUNCATE&newlength=0"
want 403 AccessControlException NOBODY DELETE "$NN/secret?op=DELETE"
want 403 AccessControlException NOBODY PUT "$NN/secret?op=RENAME&destination=/home/nobody/stolen"
want 403 AccessControlException NOBODY PUT "$NN/secret?op=SETXATTR&xattr.name=user.x&xattr.value=1"
# CREATE and APPEND: the namenode redirects, the datanode's calls are refused
want 403 AccessControlException NOBODY PUT "$NN/secret?op=CREATE&overwrite=true" -L -T "$T/mine"
want 403 AccessControlException NOBODY POST "$NN/secret?op=APPEND" -L --data-binary "@$T/mine"
want 403 AccessControlException NOBODY PUT "$NN/planted?op=CREATE" -L -T "$T/mine"
want 404 FileNotFoundException ADMIN GET "$NN/planted?op=GETFILESTATUS"
curl -sS -f -L "${ADMIN[@]}" -o "$T/secret.out" "$NN/secret?op=OPEN" || fail "admin OPEN"
cmp "$T/secret" "$T/secret.out" || fail "the secret changed under the attacks"

say "tickets: forged, another path, another op, another datanode, another caller"
want 307 "" ADMIN GET "$NN/secret?op=OPEN"
OPEN_LOC=$LOC
want 200 "" ADMIN GET "$OPEN_LOC" -o /dev/null
TICKET=${OPEN_LOC##*ticket=}
DN=${OPEN_LOC%%/webhdfs/*}
# flip one character of the ticket (a valid base64url letter for another)
c=${TICKET:40:1}
[ "$c" = A ] && d=B || d=A
FORGED=${TICKET:0:40}$d${TICKET:41}
want 403 AccessControlException ADMIN GET "$DN/webhdfs/v1/secret?op=OPEN&ticket=$FORGED"
want 403 AccessControlException ADMIN GET "$DN/webhdfs/v1/secret?op=OPEN&ticket=${TICKET:0:60}"
want 403 AccessControlException ADMIN GET "$DN/webhdfs/v1/secret?op=OPEN&ticket=%%%"
want 403 AccessControlException ADMIN GET "$DN/webhdfs/v1/secret?op=OPEN"
want 403 AccessControlException ADMIN GET "$DN/webhdfs/v1/home/nobody/mine?op=OPEN&ticket=$TICKET"
want 403 AccessControlException ADMIN PUT "$DN/webhdfs/v1/secret?op=CREATE&overwrite=true&ticket=$TICKET" -T "$T/mine"
want 403 AccessControlException ADMIN POST "$DN/webhdfs/v1/secret?op=APPEND&ticket=$TICKET" --data-binary "@$T/mine"
# the CREATE ticket of the honest write: not for reading it
CT=${CREATE_LOC##*ticket=}
CDN=${CREATE_LOC%%/webhdfs/*}
want 403 AccessControlException ADMIN GET "$CDN/webhdfs/v1/secret?op=OPEN&ticket=$CT"
# another datanode than the one it names
for h in 127.0.0.2 127.0.0.3 127.0.0.4; do
	other=https://$h:$CAUDAL_DN_HTTP_PORT
	[ "$other" = "$DN" ] && continue
	want 403 AccessControlException ADMIN GET "$other/webhdfs/v1/secret?op=OPEN&ticket=$TICKET"
done
# at the namenode: only the datanode the ticket names may present it
"$PY" -c 'import base64,sys; t=sys.argv[1]; sys.stdout.buffer.write(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)))' \
	"$TICKET" >"$T/ticket.raw"
THIEF=$T/webhdfs_thief
build_tool "$ROOT/tests/e2e/webhdfs_thief.c" "$THIEF"
as_cert() { CAUDAL_CA=$C/ca.crt CAUDAL_CERT=$1.crt CAUDAL_KEY=$1.key "$THIEF" "$CAUDAL_NAMENODE" "$T/ticket.raw" /secret; }
DNHOST=${DN#https://}
DNHOST=${DNHOST%%:*}
OWN=$(dn_name_of_host "$DNHOST")
assert_eq "$(as_cert "$C/$OWN")" ok "the ticket's own datanode at the namenode"
for n in dn1 dn2 dn3; do
	[ "$n" = "$OWN" ] && continue
	assert_eq "$(as_cert "$C/$n")" EACCES "another datanode's certificate with the ticket"
done
assert_eq "$(as_cert "$C/admin")" EACCES "an admin certificate presenting a ticket"
assert_eq "$(as_cert "$C/users/nobody")" EACCES "a user certificate presenting a ticket"
# its own datanode, but another path than the ticket's
assert_eq "$(CAUDAL_CA=$C/ca.crt CAUDAL_CERT=$C/$OWN.crt CAUDAL_KEY=$C/$OWN.key "$THIEF" "$CAUDAL_NAMENODE" \
	"$T/ticket.raw" /home/nobody/mine)" EACCES "the ticket for another path at the namenode"
# the admin's ticket in nobody's hands, and with no certificate
want 403 AccessControlException NOBODY GET "$OPEN_LOC"
want 403 AccessControlException ANON GET "$OPEN_LOC"
curl -sS -f -L "${ADMIN[@]}" -o "$T/secret.out" "$NN/secret?op=OPEN" || fail "admin OPEN"
cmp "$T/secret" "$T/secret.out" || fail "the secret changed under the ticket attacks"

say "bad input: op, method, sizes, paths"
want 400 IllegalArgumentException ADMIN GET "$NN/secret?op=NOSUCHOP"
want 400 IllegalArgumentException ADMIN GET "$NN/secret"
want 400 IllegalArgumentException ADMIN GET "$NN/secret?op=DELETE"
want 400 IllegalArgumentException ADMIN GET "$NN/secret?op=OPEN&offset=99999999999999999999999"
want 400 IllegalArgumentException ADMIN GET "$NN/secret?op=OPEN&offset=-1"
want 400 IllegalArgumentException ADMIN GET "$NN/secret?op=OPEN&offset=4611686018427387904"
want 400 IllegalArgumentException ADMIN GET "$NN/secret?op=OPEN&length=abc"
# a huge length is only as much as there is
curl -sS -f -L "${ADMIN[@]}" -o "$T/tail" "$NN/secret?op=OPEN&offset=$((2 * BS))&length=9223372036854775807" ||
	fail "OPEN with a huge length"
assert_eq "$(stat -c %s "$T/tail")" 99 "bytes of an OPEN with a huge length"
want 400 IllegalArgumentException ADMIN PUT "$NN/big?op=CREATE&replication=1000"
want 400 IllegalArgumentException ADMIN PUT "$NN/big?op=CREATE&blocksize=99999999999999999999999"
want 400 IllegalArgumentException ADMIN PUT "$NN/big?op=CREATE&permission=99999"
want 400 IllegalArgumentException ADMIN PUT "$NN/d?op=MKDIRS&permission=abc"
want 400 IllegalArgumentException ADMIN GET "$NN/a/../secret?op=GETFILESTATUS" --path-as-is
want 400 IllegalArgumentException ADMIN GET "$NN/a/%2E%2E/secret?op=GETFILESTATUS"
want 400 IllegalArgumentException ADMIN GET "$NN/sec%00ret?op=GETFILESTATUS"
want 400 IllegalArgumentException ADMIN PUT "$NN/x%01y?op=MKDIRS"
want 400 IllegalArgumentException ADMIN PUT "$NN/x%0Ay?op=MKDIRS"
want 400 IllegalArgumentException ADMIN PUT "$NN/secret?op=RENAME&destination=/a/../b"
want 400 IllegalArgumentException ADMIN PUT "$NN/secret?op=RENAME&destination=/a%00b"
want 400 IllegalArgumentException ADMIN PUT "$NN/link?op=CREATESYMLINK&destination=a%00b"
want 400 IllegalArgumentException ADMIN GET "$NN/$(head -c 5000 /dev/zero | tr '\0' a)?op=GETFILESTATUS"
# a query far larger than a connection's memory is refused by the HTTP layer
code=$("$PY" - "$HP" "$C" <<'PY'
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2] + "/ca.crt")
ctx.load_cert_chain(sys.argv[2] + "/admin.crt", sys.argv[2] + "/admin.key")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20),
                    server_hostname="127.0.0.1")
try:
    s.sendall(b"GET /webhdfs/v1/?op=LISTSTATUS&x=" + b"a" * 400000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    print(s.recv(100).split(b" ")[1].decode())
except (OSError, IndexError):
    print("closed")
PY
)
case $code in 2*) fail "a 400 KB query string was served ($code)" ;; esac
say "a 400 KB query string: $code"
want 200 "" ADMIN GET "$NN/?op=LISTSTATUS"
want 200 "" ADMIN GET "$NN/?op=GETCONTENTSUMMARY"

say "a flood of connections stays bounded"
NNPID=$(daemon_pid namenode)
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
t0=$(threads "$NNPID")
"$PY" - "$HP" >"$T/flood.out" 2>&1 <<'PY' &
import socket, sys, time
socks = []
for _ in range(400):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
        socks.append(s)
    except OSError:
        pass
print(len(socks), flush=True)
time.sleep(6)
PY
FLOOD=$!
register_pid "$FLOOD"
wait_until 20 "the flood's connections" test -s "$T/flood.out"
t1=$(threads "$NNPID")
say "namenode threads: $t0 before, $t1 with 400 connections from one address"
[ "$t1" -le $((t0 + 40)) ] || fail "400 connections from one address made $((t1 - t0)) threads"
# a caller from another address is served meanwhile
r=$(curl -sS --interface 127.0.0.9 -w '%{http_code}' -o /dev/null "${ADMIN[@]}" "$NN/?op=LISTSTATUS")
assert_eq "$r" 200 "a request from another address during the flood"
wait "$FLOOD" || true
wait_until 40 "the namenode's threads back down" test "$(threads "$NNPID")" -le $((t0 + 4))
want 200 "" ADMIN GET "$NN/?op=LISTSTATUS"

say "fsspec WebHDFS over HTTPS with a client certificate"
"$PY" - "$HP" "$C" <<'PY' || fail "fsspec over HTTPS failed"
import sys
import fsspec
import pandas as pd
port, c = int(sys.argv[1]), sys.argv[2]
opts = {"host": "127.0.0.1", "port": port, "use_https": True}
fs = fsspec.filesystem("webhdfs", **opts)
# fsspec's WebHDFS has no option for a client certificate: its requests
# session takes one
fs.session.cert = (c + "/admin.crt", c + "/admin.key")
fs.session.verify = c + "/ca.crt"
fs.session.trust_env = False  # REQUESTS_CA_BUNDLE would replace verify
df = pd.DataFrame({"k": list(range(1000)), "v": ["x%d" % i for i in range(1000)]})
with fs.open("/tmp.csv", "wb") as f:
    df.to_csv(f, index=False)
with fs.open("/tmp.csv", "rb") as f:
    back = pd.read_csv(f)
assert back.equals(df)
assert fs.info("/secret")["size"] > 0
PY
say "an expired ticket: the namenode again with 2 s tickets"
NNPID=$(daemon_pid namenode)
mapfile -d '' NNARGS <"/proc/$NNPID/cmdline"
stop_daemon namenode
"$BIN/caudal-namenode" "${NNARGS[@]:1}" --webhdfs_ticket_ms=2000 >>"$CAUDAL_HOME/logs/namenode.log" 2>&1 &
register_pid $!
# the datanodes register again and get the new namenode's keys
open_ok() { curl -sS -f -L "${ADMIN[@]}" -o "$T/secret.out" "$NN/secret?op=OPEN" 2>/dev/null; }
wait_until 30 "OPEN through the restarted namenode" open_ok
cmp "$T/secret" "$T/secret.out" || fail "OPEN after the restart"
want 307 "" ADMIN GET "$NN/secret?op=OPEN"
OLD=$LOC
expired() {
	req ADMIN GET "$OLD"
	[ "$CODE" = 403 ] && [[ $OUT == *"ticket expired"* ]]
}
wait_until 20 "the ticket to expire" expired
assert_contains "$OUT" '"exception":"AccessControlException"' "an expired ticket's refusal"
say "webhdfs_abuse: every attack refused, the data unchanged"
