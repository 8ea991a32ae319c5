#!/bin/bash
# Hosts files (issue 11, HDFS's dfs.hosts and dfs.hosts.exclude): with an
# include file only the datanodes it names may register; a datanode left
# out of it is refused (its re-registration, with a clear line in the
# namenode's log) and turns dead, and once the file names it again
# `caudal refresh-nodes` lets it back in; a datanode put in the exclude
# file is decommissioned by refresh-nodes (its replicas copied away, every
# file still readable) and returns to service when taken out; a file with
# a bad line is refused with its line number and changes nothing; only
# root refreshes; a namenode started with a bad file says so and stops.
source "$(dirname "$0")/../lib.sh"
INC=$T/hosts.include
EXC=$T/hosts.exclude
mkdir -p "$T"
cat >"$INC" <<'EOF'
# the datanodes of this test
127.0.0.2 127.0.0.3   # two on a line
127.0.0.4
EOF
: >"$EXC"
export CAUDAL_DN_HOSTS=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5
export CAUDAL_HOSTS=$INC CAUDAL_HOSTS_EXCLUDE=$EXC
# caudal up waits for every datanode it starts: all four are in at first
echo 127.0.0.5 >>"$INC"
cluster_up
NNLOG=$CAUDAL_HOME/logs/namenode.log
state_of() { caudal report | awk -v a="$1:$CAUDAL_DN_PORT" '$1 == a {print $3}'; }
state_is() { [ "$(state_of "$1")" = "$2" ]; }
for i in 1 2 3; do
	mkfile "$T/f$i" $((2 * BS + 1000 * i))
	caudal put "$T/f$i" "/f$i"
done
wait_until 20 "fsck healthy" caudal fsck /

say "a datanode left out of the include file is refused"
sed -i '/^127.0.0.5$/d' "$INC"
assert_ok caudal refresh-nodes
assert_contains "$OUT" "1 refused" "refresh-nodes' summary"
wait_until 20 "the refusal in the namenode's log" grep -q \
	"at 127.0.0.5:$CAUDAL_DN_PORT is not in the include file '$INC': registration refused" "$NNLOG"
wait_until 30 "127.0.0.5 is dead" state_is 127.0.0.5 dead
wait_until 30 "fsck healthy without it" caudal fsck /

say "named again, refresh-nodes lets it back in"
echo "127.0.0.5:$CAUDAL_DN_PORT   # by its data port" >>"$INC"
assert_ok caudal refresh-nodes
assert_contains "$OUT" "0 refused" "refresh-nodes' summary"
wait_until 30 "127.0.0.5 is live again" state_is 127.0.0.5 live

say "the exclude file decommissions, refresh-nodes after taking it out recommissions"
held=$(caudal report | awk -v a="127.0.0.2:$CAUDAL_DN_PORT" '$1 == a {print $7}')
[ "${held:-0}" -gt 0 ] || fail "127.0.0.2 holds no replica: the test would prove nothing"
printf '# drained\n127.0.0.2\n' >"$EXC"
assert_ok caudal refresh-nodes
assert_contains "$OUT" "1 datanodes draining" "refresh-nodes' summary"
assert_contains "$(cat "$NNLOG")" "at 127.0.0.2:$CAUDAL_DN_PORT is in the exclude file" "the namenode's log"
wait_until 60 "127.0.0.2 decommissioned" state_is 127.0.0.2 out
for i in 1 2 3; do assert_same_file "$T/f$i" <(caudal cat "/f$i"); done
: >"$EXC"
assert_ok caudal refresh-nodes
assert_eq "$(state_of 127.0.0.2)" live "state of 127.0.0.2 taken out of the exclude file"

say "a bad line is refused with its number; the lists stay"
cp "$INC" "$T/inc.good"
printf '127.0.0.2\n\nnot/a host\n' >>"$INC"
assert_fails caudal refresh-nodes
assert_contains "$OUT" "line $(($(wc -l <"$T/inc.good") + 3))" "the error of a bad include file"
assert_contains "$OUT" "not/a" "the error of a bad include file"
printf '127.0.0.3:99999\n' >"$EXC"
cp "$T/inc.good" "$INC"
assert_fails caudal refresh-nodes
assert_contains "$OUT" "line 1" "the error of a bad exclude file"
assert_contains "$OUT" "port" "the error of a bad exclude file"
assert_eq "$(state_of 127.0.0.3)" live "state of 127.0.0.3 after a refused exclude file"
: >"$EXC"
head -c 5000 /dev/zero | tr '\0' x >"$T/long"
cp "$T/long" "$INC"
assert_fails caudal refresh-nodes
assert_contains "$OUT" "longer than" "the error of a huge line"
cp "$T/inc.good" "$INC"
assert_ok caudal refresh-nodes
assert_eq "$(field 'live datanodes' caudal report)" 4 "live datanodes after the refusals"

say "only root refreshes"
caudal cert create-client nobody >/dev/null
C=$CAUDAL_HOME/certs
assert_fails env CAUDAL_CA="$C/ca.crt" CAUDAL_CERT="$C/users/nobody.crt" CAUDAL_KEY="$C/users/nobody.key" \
	"$CAUDAL" refresh-nodes
assert_contains "$OUT" "only root" "a user's refresh-nodes"
assert_ok caudal refresh-nodes --help
assert_contains "$OUT" "exclude file" "refresh-nodes --help"

say "a namenode started with a bad hosts file says which line and stops"
printf '127.0.0.2\n127.0.0.3 bad:host:1:x\n' >"$T/bad.include"
read -r -a bad_ports <<<"$(free_ports 2)"
assert_fails timeout 10 "$BIN/caudal-namenode" --dir="$T/nn-bad" --port="${bad_ports[0]}" \
	--http_port="${bad_ports[1]}" \
	--insecure=true --hosts="$T/bad.include"
assert_contains "$OUT" "line 2" "the bad namenode's error"
say "hosts ok"
