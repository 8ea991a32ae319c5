#!/bin/bash
# Every block has 3 replicas on 3 distinct datanodes, as fsck, the block
# list and report show; setrep moves a file to 2 replicas and back.
source "$(dirname "$0")/../lib.sh"
cluster_up

mkfile "$T/a" $((3 * BS + 7))
mkfile "$T/b" $((BS + 1))
caudal put "$T/a" /a
caudal put "$T/b" /b

say "fsck counts"
wait_until 20 "fsck / healthy" caudal fsck /
caudal fsck / | tee "$T/fsck"
assert_eq "$(sed -n 's/^blocks: //p' "$T/fsck")" 6 "blocks"
assert_eq "$(sed -n 's/^replicas: //p' "$T/fsck")" "18 found, 18 wanted" "replicas"
assert_eq "$(sed -n 's/^under-replicated: //p' "$T/fsck")" 0 "under-replicated"
assert_eq "$(sed -n 's/^distinct-host violations: //p' "$T/fsck")" 0 "distinct-host violations"
assert_eq "$(sed -n 's/^status: //p' "$T/fsck")" HEALTHY "status"

say "block locations"
for f in /a /b; do
	caudal blocks $f | tee "$T/blocks"
	while read -r id gen off len locs; do
		n=$(echo "$locs" | tr ',' '\n' | wc -l)
		hosts=$(echo "$locs" | tr ',' '\n' | cut -d: -f1 | sort -u | wc -l)
		assert_eq "$n" 3 "replicas of block $id of $f"
		assert_eq "$hosts" 3 "distinct hosts of block $id of $f"
		for h in $(echo "$locs" | tr ',' '\n' | cut -d: -f1); do
			d=$(dn_dir_of_host "$h")
			[ -n "$(find "$d/current" -name "blk_${id}_*" ! -name '*.*')" ] ||
				fail "no replica file of block $id under $d"
		done
	done <"$T/blocks"
done

say "report"
caudal report | tee "$T/report"
assert_eq "$(sed -n 's/^live datanodes: //p' "$T/report")" 3 "live datanodes"
assert_eq "$(grep -c ' live ' "$T/report")" 3 "datanode lines"
blocks_on() { caudal report | grep "^$1:$CAUDAL_DN_PORT " | awk '{print $7}'; }
for h in 127.0.0.2 127.0.0.3 127.0.0.4; do
	grep -q "^$h:$CAUDAL_DN_PORT " "$T/report" || fail "no datanode $h in report"
	wait_until 10 "report shows 6 blocks on $h" test "$(blocks_on $h)" = 6
done

say "setrep 2 and back to 3"
caudal setrep -w 2 /a
assert_eq "$(field replication caudal stat /a)" 2 "replication after setrep"
caudal blocks /a | while read -r id gen off len locs; do
	assert_eq "$(echo "$locs" | tr ',' '\n' | wc -l)" 2 "replicas of block $id after setrep 2"
done
caudal setrep -w 3 /a
caudal blocks /a | while read -r id gen off len locs; do
	assert_eq "$(echo "$locs" | tr ',' '\n' | cut -d: -f1 | sort -u | wc -l)" 3 "hosts of block $id after setrep 3"
done
assert_same_file "$T/a" <(caudal cat /a)
assert_ok caudal fsck /
echo "PASS"
