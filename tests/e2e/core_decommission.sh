#!/bin/bash
# Decommissioning copies a datanode's replicas away before it may stop:
# once `decommission -w` returns, killing the node leaves every block fully
# replicated (no window of under-replication), reads are unaffected, and
# new blocks are never placed on a draining node.
source "$(dirname "$0")/../lib.sh"
export CAUDAL_DN_HOSTS=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5
cluster_up

for i in 1 2 3; do
	mkfile "$T/f$i" $((2 * BS + 1000 * i))
	caudal put "$T/f$i" "/f$i"
done
wait_until 20 "fsck healthy" caudal fsck /

victim_host=127.0.0.2
victim=$(dn_name_of_host "$victim_host")
addr="$victim_host:$CAUDAL_DN_PORT"
held=$(caudal report | awk -v a="$addr" '$1 == a {print $7}')
say "$victim ($addr) holds $held replicas; decommissioning it"
[ "${held:-0}" -gt 0 ] || fail "the victim holds no replica: the test would prove nothing"

assert_fails setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$CAUDAL" decommission "$addr"
caudal decommission -w "$addr"
assert_eq "$(caudal report | awk -v a="$addr" '$1 == a {print $3}')" out "report state of the drained node"

say "a new file avoids the draining node"
mkfile "$T/g" $((3 * BS))
caudal put "$T/g" /g
caudal blocks /g | while read -r id gen off len locs; do
	case ",$locs," in *",$victim_host:"*) fail "block $id of /g placed on draining $victim_host" ;; esac
done

say "stop it: every block still has 3 replicas elsewhere"
stop_daemon "$victim" KILL
out=$(caudal fsck -v /) || fail "fsck unhealthy right after stopping a decommissioned node: $out"
wait_until 30 "1 dead datanode in report" sh -c "'$CAUDAL' report | grep -q '^dead datanodes: 1$'"
out=$(caudal fsck -v /) || fail "fsck unhealthy after the node was declared dead: $out"
assert_eq "$(field 'replicas' caudal fsck / | awk '{print $1}')" \
	"$(field 'replicas' caudal fsck / | awk '{print $3}')" "replicas found against wanted"
for i in 1 2 3; do assert_same_file "$T/f$i" <(caudal cat "/f$i"); done
echo "PASS"
