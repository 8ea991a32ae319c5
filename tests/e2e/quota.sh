#!/bin/bash
# Name and space quotas (issue 11) on a mounted cluster: filling a
# directory to its name quota with mkdir, touch and ln -s, and to its space
# quota with dd and cp, ends in "Disk quota exceeded" (EDQUOT) with nothing
# half-made; `caudal count -q` prints HDFS's columns with the exact counts;
# df inside a quota'd directory shows the quota; a rename into a quota'd
# tree is checked against the destination's quotas and moves the usage; a
# namenode restart keeps the counts (and the live invariant check recounts
# them); a user's certificate cannot set a quota; nonsense values are
# refused with a clear message.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"
cluster_up
M=$T/mnt
mount_caudal "$M"
QE="Disk quota exceeded"
# count -q's columns for PATH, without the path
countq() { caudal count -q "$1" | sed -n 2p | awk '{ $NF = ""; print }' | sed 's/ *$//'; }
# the live invariant check (HTTP /check with the namenode's token)
nn_check() {
	local tok out
	tok=$(cat "$CAUDAL_HOME/nn/check.token")
	out=$(curl -s --cacert "$CAUDAL_HOME/certs/ca.crt" "https://127.0.0.1:$CAUDAL_NN_HTTP_PORT/check?token=$tok")
	case $out in ok*) ;; *) fail "invariant check $1: $out" ;; esac
}

say "name quota: the directory counts itself; mkdir, touch and ln -s stop at it"
caudal mkdir /q
caudal quota set /q -n 4 || fail "setting a name quota"
mkdir "$M/q/a"
touch "$M/q/b"
ln -s b "$M/q/c"
assert_fails_with "$QE" mkdir "$M/q/d"
assert_fails_with "$QE" touch "$M/q/e"
assert_fails_with "$QE" ln -s b "$M/q/f"
assert_fails_with "$QE" mkdir "$M/q/a/deeper"
[ ! -e "$M/q/d" ] && [ ! -e "$M/q/e" ] && [ ! -L "$M/q/f" ] || fail "a refused entry exists"
assert_eq "$(countq /q)" "4 0 none inf 2 2 0" "count -q of a full /q"
caudal count /q >"$T/count"
assert_eq "$(sed -n 1p "$T/count" | tr -s ' ' | sed 's/^ //')" "DIR_COUNT FILE_COUNT CONTENT_SIZE PATHNAME" "count's header"
assert_eq "$(df --output=itotal,iavail "$M/q" | sed -n 2p | tr -s ' ' | sed 's/^ //')" "4 0" "df -i inside /q"
rm "$M/q/b"
mkdir "$M/q/d" || fail "mkdir after a removal freed a name"
caudal quota show /q >"$T/show"
assert_contains "$(cat "$T/show")" "names        4, using 4, 0 left" "quota show /q"
assert_contains "$(cat "$T/show")" "space        none" "quota show /q"

say "space quota: bytes times replication, a block being written counts whole"
caudal mkdir /s
caudal quota set /s -s 4m
# 3 replicas of 1 MiB blocks: a block takes 3 MiB of the quota while written
dd if=/dev/urandom of="$T/500k" bs=1k count=500 status=none
cp "$T/500k" "$M/s/f1"
assert_eq "$(countq /s)" "none inf 4194304 $((4194304 - 3 * 512000)) 1 1 512000" "count -q of /s"
# a second block would take 1.5 + 3 MiB
assert_fails_with "$QE" dd if="$T/500k" of="$M/s/f2" bs=64k
assert_fails_with "$QE" cp "$T/500k" "$M/s/f3"
cmp "$T/500k" "$M/s/f1" || fail "f1 changed"
# small files are inline: their bytes times replication count
head -c 40000 "$T/500k" >"$M/s/small"
caudal quota show /s >"$T/show"
used=$((3 * 512000 + 3 * 40000 + 3 * $(stat -c %s "$M/s/f2") + 3 * $(stat -c %s "$M/s/f3")))
assert_contains "$(cat "$T/show")" "using $used " "quota show /s"
assert_eq "$(df -B1 --output=size "$M/s" | sed -n 2p | tr -d ' ')" 4194304 "df size inside /s"
assert_eq "$(df -B1 --output=avail "$M/s" | sed -n 2p | tr -d ' ')" $(((4194304 - used) / 4096 * 4096)) "df avail inside /s"
mkdir "$M/s/sub"
assert_eq "$(df -B1 --output=size "$M/s/sub" | sed -n 2p | tr -d ' ')" 4194304 "df size under /s"
# setrep is charged too: 512000 bytes times 8 replicas do not fit
assert_fails_with "$QE" caudal setrep 8 /s/f1

say "rename into a quota'd tree is checked against the destination"
caudal mkdir /t1 /t2
cp "$T/500k" "$M/t1/f"
mkdir -p "$M/t1/dir/a/b"
caudal quota set /t2 -s 1m -n 10
assert_fails_with "$QE" mv "$M/t1/f" "$M/t2/f"
caudal quota set /t2 -s 2m
mv "$M/t1/f" "$M/t2/f" || fail "mv into /t2 with room"
caudal quota set /t1 -n 100
caudal quota set /t2 -n 3
assert_fails_with "$QE" mv "$M/t1/dir" "$M/t2/dir"
caudal quota set /t2 -n 5
mv "$M/t1/dir" "$M/t2/dir" || fail "mv of a tree into /t2 with room"
assert_eq "$(countq /t1)" "100 99 none inf 1 0 0" "count -q of /t1 after the moves"
assert_eq "$(countq /t2)" "5 0 2097152 $((2097152 - 3 * 512000)) 4 1 512000" "count -q of /t2 after the moves"
cmp "$T/500k" "$M/t2/f" || fail "the moved file differs"
nn_check "before the restart"

say "a restart keeps the quotas and their counts"
before_q=$(countq /q) before_s=$(caudal quota show /s) before_t2=$(countq /t2)
stop_daemon namenode TERM
caudal up >/dev/null || fail "caudal up after stopping the namenode"
wait_until 30 "a mkdir answers" sh -c "'$CAUDAL' mkdir -p /probe"
assert_eq "$(countq /q)" "$before_q" "count -q of /q after the restart"
assert_eq "$(caudal quota show /s)" "$before_s" "quota show /s after the restart"
assert_eq "$(countq /t2)" "$before_t2" "count -q of /t2 after the restart"
assert_fails_with "$QE" mkdir "$M/q/again"
nn_check "after the restart"

say "only root sets quotas; anyone may read them"
caudal cert create-client nobody >/dev/null
C=$CAUDAL_HOME/certs
as_nobody() { env CAUDAL_CA="$C/ca.crt" CAUDAL_CERT="$C/users/nobody.crt" CAUDAL_KEY="$C/users/nobody.key" "$CAUDAL" "$@"; }
assert_fails as_nobody quota set /q -n 100
assert_contains "$OUT" "only root" "a user's quota set"
assert_fails as_nobody quota clear /q
assert_ok as_nobody quota show /q
assert_contains "$OUT" "names        4" "a user's quota show"
assert_eq "$(countq /q)" "$before_q" "count -q of /q after the user's attempts"

say "nonsense values are refused clearly"
assert_fails caudal quota set /q -n -5
assert_contains "$OUT" "invalid name quota '-5'" "a negative name quota"
assert_fails caudal quota set /q -n 0
assert_contains "$OUT" "invalid name quota '0'" "a zero name quota"
assert_fails caudal quota set /q -n 99999999999999999999
assert_contains "$OUT" "invalid name quota" "a huge name quota"
assert_fails caudal quota set /q -s 8e
assert_contains "$OUT" "too large" "an 8 EiB space quota"
assert_fails caudal quota set /q -s -1
assert_contains "$OUT" "must be positive" "a negative space quota"
assert_fails caudal quota set /q -s 12x
assert_contains "$OUT" "invalid space quota" "a space quota in no unit"
assert_fails caudal quota set /q/a/../a -n 3
assert_fails caudal quota set /nowhere -n 3
assert_contains "$OUT" "No such file" "a quota on a missing directory"
assert_fails caudal quota set /s/f1 -n 3
assert_contains "$OUT" "Not a directory" "a quota on a file"
assert_fails caudal quota set /q
assert_eq "$(countq /q)" "$before_q" "count -q of /q after the refusals"
assert_ok caudal quota --help
assert_contains "$OUT" "Disk quota exceeded" "quota --help"

say "clearing a quota lifts it"
caudal quota clear /q
mkdir "$M/q/again" || fail "mkdir after clearing the quota"
assert_eq "$(countq /q)" "none inf none inf 4 1 0" "count -q of /q without quotas"
nn_check "at the end"
say "quota ok"
