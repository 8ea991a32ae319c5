#!/bin/bash
# A datanode killed with SIGKILL does not stop reads (another replica
# serves, before and after the namenode declares it dead), and writes
# carry on by excluding it from new pipelines.
source "$(dirname "$0")/../lib.sh"
cluster_up

mkfile "$T/f" $((3 * BS + 7))
caudal put "$T/f" /f
wait_until 20 "fsck healthy" caudal fsck /

# kill the datanode the reader would try first for block 0
first=$(caudal blocks /f | head -n 1 | awk '{print $5}' | cut -d, -f1 | cut -d: -f1)
victim=$(dn_name_of_host "$first")
say "killing $victim ($first), first replica of block 0"
stop_daemon "$victim" KILL

say "read right after the kill (namenode still lists it)"
start=$SECONDS
caudal get /f "$T/out1"
assert_same_file "$T/f" "$T/out1"
[ $((SECONDS - start)) -le 15 ] || fail "failover read took $((SECONDS - start))s"

say "write while the dead datanode is still listed as live"
mkfile "$T/g" $((2 * BS + 3))
caudal put "$T/g" /g
assert_same_file "$T/g" <(caudal cat /g)

say "namenode declares it dead"
wait_until 30 "1 dead datanode in report" sh -c "'$CAUDAL' report | grep -q '^dead datanodes: 1$'"
caudal get /f "$T/out2"
assert_same_file "$T/f" "$T/out2"
caudal put "$T/g" /g2
assert_same_file "$T/g" <(caudal cat /g2)
caudal blocks /g2 | while read -r id gen off len locs; do
	case ",$locs," in *",$first:"*) fail "block $id of /g2 placed on dead $first" ;; esac
done

say "datanode back: everything fully replicated again"
caudal up >/dev/null
wait_until 60 "fsck healthy with the datanode back" caudal fsck /
assert_same_file "$T/g" <(caudal cat /g)
echo "PASS"
