#!/bin/bash
# WebHDFS v1 with real clients (issue 10): `curl -L` drives every op on an
# insecure cluster (user.name, HDFS's simple authentication), and each
# result is compared with what the mount shows (bytes with cmp, metadata
# with stat, getfattr, readlink, ls); Python's fsspec WebHDFS with pandas
# writes and reads a CSV through webhdfs://, compared with the mount too.
# OPEN, CREATE and APPEND go through the 307 redirect to a datanode.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
M=$T/mnt
cluster_up --insecure=yes
# attributes cached for 1 s: a change made over WebHDFS shows soon
mount_caudal "$M"
PY=/usr/bin/python3
HP=$CAUDAL_NN_HTTP_PORT
NN=http://127.0.0.1:$HP/webhdfs/v1
WUSER=root

# curl -L METHOD on PATH with op=OP and the parameters EXTRA ("&k=v...")
# as $WUSER; the body in OUT, the final status in CODE. Extra curl
# arguments follow.
wh() { # METHOD PATH OP [EXTRA [CURL ARGS...]]
	local m=$1 p=$2 q=$3 x=${4:-} r
	shift $(($# < 4 ? $# : 4))
	r=$(curl -sS -L -X "$m" -w '\n%{http_code}' "$@" "$NN$p?op=$q$x&user.name=$WUSER") ||
		fail "curl $m $p?op=$q$x failed"
	CODE=${r##*$'\n'}
	OUT=${r%$'\n'*}
}
# wh, and the status must be WANT.
whc() { # WANT METHOD PATH QUERY [CURL ARGS...]
	local want=$1
	shift
	wh "$@"
	[ "$CODE" = "$want" ] || fail "$1 $2?op=$3: status $CODE, want $want: $OUT"
}
# The mount shows FILE's stat -c FORMAT as WANT (for wait_until: the
# mount caches attributes for up to a second).
stat_is() { [ "$(stat -c "$1" "$2")" = "$3" ]; } # FORMAT FILE WANT
# A value of the JSON in OUT: EXPR indexes it, e.g. '["FileStatus"]["length"]'.
jget() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); v=eval("d"+sys.argv[1]); print(json.dumps(v) if isinstance(v,(dict,list,bool)) else v)' "$1" <<<"$OUT"; }

say "MKDIRS, GETFILESTATUS, GETHOMEDIRECTORY"
whc 200 PUT /w/d MKDIRS "&permission=750"
assert_eq "$(jget '["boolean"]')" true "MKDIRS"
assert_eq "$(stat -c '%F %a %U' "$M/w/d")" "directory 750 root" "the mount's view of MKDIRS"
whc 200 GET /w/d GETFILESTATUS
assert_eq "$(jget '["FileStatus"]["type"]')" DIRECTORY "type"
assert_eq "$(jget '["FileStatus"]["permission"]')" 750 "permission"
assert_eq "$(jget '["FileStatus"]["fileId"]')" "$(stat -c %i "$M/w/d")" "fileId is the inode"
whc 200 GET / GETHOMEDIRECTORY
assert_eq "$(jget '["Path"]')" /user/root "home directory"

say "CREATE through the redirect (replication, blocksize, permission), OPEN back"
mkfile "$T/big" $((3 * BS + 4321))
wh PUT /w/d/big CREATE "&replication=2&blocksize=$BS&permission=640" -T "$T/big"
[ "$CODE" = 201 ] || fail "CREATE: $CODE $OUT"
cmp "$T/big" "$M/w/d/big" || fail "the mount's bytes differ from what CREATE sent"
assert_eq "$(stat -c '%a %s' "$M/w/d/big")" "640 $((3 * BS + 4321))" "mode and size of the new file"
assert_eq "$(getfattr --absolute-names --only-values -n user.caudal.replication "$M/w/d/big")" 2 \
	"replication of the new file"
assert_eq "$(getfattr --absolute-names --only-values -n user.caudal.blocksize "$M/w/d/big")" \
	"$BS" "block size of the new file"
curl -sS -L -f -o "$T/big.out" "$NN/w/d/big?op=OPEN&user.name=root" || fail "OPEN failed"
cmp "$T/big" "$T/big.out" || fail "OPEN returned other bytes"
# a range across a block boundary, and one running past the end
curl -sS -L -f -o "$T/range" "$NN/w/d/big?op=OPEN&user.name=root&offset=$((BS - 100))&length=300"
dd if="$M/w/d/big" of="$T/range.want" bs=1 skip=$((BS - 100)) count=300 status=none
cmp "$T/range" "$T/range.want" || fail "OPEN offset/length differs from the mount's bytes"
curl -sS -L -f -o "$T/tail" "$NN/w/d/big?op=OPEN&user.name=root&offset=$((3 * BS))&length=99999999"
tail -c 4321 "$M/w/d/big" >"$T/tail.want"
cmp "$T/tail" "$T/tail.want" || fail "OPEN past the end"
whc 403 PUT /w/d/big CREATE "" -T "$T/big"
assert_eq "$(jget '["RemoteException"]["exception"]')" FileAlreadyExistsException "CREATE over a file"
echo "replaced" >"$T/small"
whc 201 PUT /w/d/big CREATE "&overwrite=true" -T "$T/small"
cmp "$T/small" "$M/w/d/big" || fail "CREATE overwrite=true"
whc 201 PUT /w/d/empty CREATE "" -T /dev/null
assert_eq "$(stat -c %s "$M/w/d/empty")" 0 "an empty CREATE"

say "APPEND"
mkfile "$T/more" $((BS + 77))
whc 200 POST /w/d/big APPEND "" --data-binary "@$T/more" -H 'Content-Type: application/octet-stream'
cat "$T/small" "$T/more" >"$T/appended"
cmp "$T/appended" "$M/w/d/big" || fail "APPEND: the mount's bytes differ"

say "names JSON must escape"
NAME='q"uo\te sp ä%+&?=#'
touch "$M/w/d/$NAME"
# listed (escaped), though WebHDFS refuses control characters in paths
touch "$M/w/d/"$'tab\tnewline\nbell\a'
printf 'x' >"$M/w/d/"$'\xff\xfe-not-utf8'

whc 200 GET /w/d LISTSTATUS
printf '%s' "$OUT" >"$T/list.json"
"$PY" - "$M/w/d" "$T/list.json" <<'PY' || fail "LISTSTATUS differs from the mount's listing"
import json, os, sys
got = {s["pathSuffix"]: s for s in json.load(open(sys.argv[2]))["FileStatuses"]["FileStatus"]}
# a name that is not UTF-8 shows with U+FFFD for each bad byte
want = sorted(n.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
              for n in os.listdir(sys.argv[1]))
assert sorted(got) == want, (sorted(got), want)
for raw in os.listdir(sys.argv[1]):
    n = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    st = os.lstat(os.path.join(sys.argv[1], raw))
    assert got[n]["length"] == st.st_size, n
    assert got[n]["fileId"] == st.st_ino, n
    assert int(got[n]["permission"], 8) == st.st_mode & 0o7777, n
PY
ENC=$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$NAME")
whc 200 GET "/w/d/$ENC" GETFILESTATUS
assert_eq "$(jget '["FileStatus"]["length"]')" 0 "a strange name's status"

say "LISTSTATUS_BATCH pages through a big directory"
mkdir "$M/w/many"
(cd "$M/w/many" && seq -f 'f%05g' 1 1005 | xargs touch)
whc 200 GET /w/many LISTSTATUS_BATCH
n1=$(jget '["DirectoryListing"]["partialListing"]["FileStatuses"]["FileStatus"]' | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')
assert_eq "$n1" 1000 "first page"
[ "$(jget '["DirectoryListing"]["remainingEntries"]')" -gt 0 ] || fail "no remainingEntries"
whc 200 GET /w/many LISTSTATUS_BATCH "&startAfter=f01000"
assert_eq "$(jget '["DirectoryListing"]["partialListing"]["FileStatuses"]["FileStatus"]' |
	"$PY" -c 'import json,sys; print(" ".join(s["pathSuffix"] for s in json.load(sys.stdin)))')" \
	"f01001 f01002 f01003 f01004 f01005" "second page"
assert_eq "$(jget '["DirectoryListing"]["remainingEntries"]')" 0 "last page"

say "GETCONTENTSUMMARY, GETFILECHECKSUM"
whc 200 GET /w GETCONTENTSUMMARY
assert_eq "$(jget '["ContentSummary"]["directoryCount"]')" "$(find "$M/w" -type d -printf . | wc -c)" "directories"
assert_eq "$(jget '["ContentSummary"]["fileCount"]')" "$(find "$M/w" ! -type d -printf . | wc -c)" "files"
assert_eq "$(jget '["ContentSummary"]["length"]')" "$(find "$M/w" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')" "length"
whc 200 GET /w/d/big GETFILECHECKSUM
assert_eq "$(jget '["FileChecksum"]["bytes"]')" "$(sha256sum <"$M/w/d/big" | cut -d' ' -f1)" "checksum"

say "SETREPLICATION, SETPERMISSION, SETOWNER, SETTIMES"
whc 200 PUT /w/d/big SETREPLICATION "&replication=3"
assert_eq "$(getfattr --absolute-names --only-values -n user.caudal.replication "$M/w/d/big")" 3 "replication"
whc 200 PUT /w/d/big SETPERMISSION "&permission=604"
whc 200 PUT /w/d/big SETOWNER "&owner=nobody&group=nogroup"
whc 200 PUT /w/d/big SETTIMES "&modificationtime=1500000000000&accesstime=1400000000000"
wait_until 10 "the mount's attributes" \
	stat_is '%a %U %G %Y %X' "$M/w/d/big" "604 nobody nogroup 1500000000 1400000000"

say "xattrs"
whc 200 PUT /w/d/big SETXATTR "&xattr.name=user.color&xattr.value=blue&flag=CREATE"
assert_eq "$(getfattr --absolute-names --only-values -n user.color "$M/w/d/big")" blue "SETXATTR text"
whc 200 PUT /w/d/big SETXATTR "&xattr.name=user.bin&xattr.value=0x00ff10&flag=CREATE"
assert_eq "$(getfattr --absolute-names -e hex -n user.bin "$M/w/d/big" | sed -n 's/^user.bin=//p')" \
	0x00ff10 "SETXATTR hex"
setfattr -n user.mounted -v here "$M/w/d/big"
whc 200 GET /w/d/big GETXATTRS "&encoding=hex&xattr.name=user.bin&xattr.name=user.mounted"
assert_eq "$(jget '["XAttrs"]')" '[{"name": "user.bin", "value": "0x00ff10"}, {"name": "user.mounted", "value": "0x68657265"}]' "GETXATTRS hex"
whc 200 GET /w/d/big GETXATTRS "&encoding=text&xattr.name=user.color"
assert_eq "$(jget '["XAttrs"][0]["value"]')" '"blue"' "GETXATTRS text"
whc 403 PUT /w/d/big SETXATTR "&xattr.name=user.color&xattr.value=red&flag=CREATE"
whc 200 PUT /w/d/big REMOVEXATTR "&xattr.name=user.color"
assert_fails getfattr --absolute-names -n user.color "$M/w/d/big"
whc 403 PUT /w/d/big REMOVEXATTR "&xattr.name=user.color"

say "CREATESYMLINK"
whc 200 PUT /w/link CREATESYMLINK "&destination=/w/d/big"
assert_eq "$(readlink "$M/w/link")" /w/d/big "the link's target"
whc 200 GET /w/link GETFILESTATUS
assert_eq "$(jget '["FileStatus"]["type"]') $(jget '["FileStatus"]["symlink"]')" "SYMLINK /w/d/big" "a link's status"

say "TRUNCATE"
whc 200 POST /w/d/big TRUNCATE "&newlength=5"
assert_eq "$(jget '["boolean"]')" true "TRUNCATE"
head -c 5 "$T/appended" >"$T/cut"
wait_until 10 "the truncated size on the mount" stat_is %s "$M/w/d/big" 5
cmp "$T/cut" "$M/w/d/big" || fail "TRUNCATE: bytes differ"

say "RENAME, DELETE"
whc 200 PUT /w/d/big RENAME "&destination=/w/moved"
assert_eq "$(jget '["boolean"]')" true "RENAME"
wait_until 10 "the rename on the mount" test -f "$M/w/moved"
wait_until 10 "the source gone on the mount" test ! -e "$M/w/d/big"
whc 200 PUT /w/moved RENAME "&destination=/w/d"
wait_until 10 "a rename into a directory" test -f "$M/w/d/moved"
whc 200 PUT /w/nothing RENAME "&destination=/w/x"
assert_eq "$(jget '["boolean"]')" false "RENAME of nothing"
whc 403 DELETE /w/d DELETE ""
assert_eq "$(jget '["RemoteException"]["exception"]')" PathIsNotEmptyDirectoryException "DELETE of a full directory"
whc 200 DELETE /w/d DELETE "&recursive=true"
assert_eq "$(jget '["boolean"]')" true "DELETE recursive"
wait_until 10 "the delete on the mount" test ! -e "$M/w/d"
whc 200 DELETE /w/d DELETE ""
assert_eq "$(jget '["boolean"]')" false "DELETE of nothing"
whc 404 GET /w/d GETFILESTATUS
assert_eq "$(jget '["RemoteException"]["exception"]')" FileNotFoundException "status of a deleted path"

say "another user: permissions as the RPC path checks them"
WUSER=nobody
whc 403 PUT /w/theirs MKDIRS ""
assert_eq "$(jget '["RemoteException"]["exception"]')" AccessControlException "nobody in root's 755 dir"
whc 403 PUT /w/theirs CREATE "" -T "$T/small"
[ ! -e "$M/w/theirs" ] || fail "nobody created a file in root's directory"
WUSER=root

say "fsspec WebHDFS with pandas writes and reads a CSV"
mkdir -p "$M/tmp" "$M/py"
chmod 1777 "$M/tmp"
"$PY" - "$HP" "$T/df.csv" <<'PY' || fail "fsspec/pandas through webhdfs:// failed"
import sys
import fsspec
import pandas as pd
port, local = int(sys.argv[1]), sys.argv[2]
opts = {"host": "127.0.0.1", "port": port, "user": "root"}
df = pd.DataFrame({"id": range(20000), "name": ["row %d, \"quoted\"" % i for i in range(20000)],
                   "x": [i * 0.5 for i in range(20000)]})
df.to_csv("webhdfs:///py/data.csv", index=False, storage_options=opts)
df.to_csv(local, index=False)
back = pd.read_csv("webhdfs:///py/data.csv", storage_options=opts)
assert back.equals(df), "the CSV read back differs"
fs = fsspec.filesystem("webhdfs", **opts)
assert fs.info("/py/data.csv")["size"] == len(open(local, "rb").read())
assert [p.rsplit("/", 1)[-1] for p in fs.ls("/py")] == ["data.csv"]
PY
cmp "$T/df.csv" "$M/py/data.csv" || fail "the CSV fsspec wrote differs from pandas' own on the mount"
say "webhdfs: all ops agree with the mount"
