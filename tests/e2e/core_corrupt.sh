#!/bin/bash
# A byte flipped in a replica on disk: reads still return the right bytes
# (checksums catch it, another replica serves), the corrupt replica is
# reported (fsck counts it, or the namenode drops that location), and the
# block is re-replicated back to 3 good replicas.
source "$(dirname "$0")/../lib.sh"
CAUDAL_HEARTBEAT_MS=1000 cluster_up

mkfile "$T/c" $((2 * BS + 5))
caudal put "$T/c" /c
wait_until 20 "fsck healthy" caudal fsck /

replica_file() { # BLOCK HOST
	find "$(dn_dir_of_host "$2")/current" -name "blk_${1}_*" ! -name '*.*'
}
flip() { # FILE OFFSET
	python3 - "$1" "$2" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 0xFF]))
PY
}
# Bytes of block number K of the original file.
slice() { tail -c +$(($1 * BS + 1)) "$T/c" | head -c "$BS"; }

read -r id0 _ _ _ locs0 <<<"$(caudal blocks /c | sed -n 1p)"
read -r id1 _ _ _ locs1 <<<"$(caudal blocks /c | sed -n 2p)"
hosts0=$(echo "$locs0" | tr ',' '\n' | cut -d: -f1 | sort)
hosts1=$(echo "$locs1" | tr ',' '\n' | cut -d: -f1 | sort)
a=$(echo "$hosts0" | sed -n 1p)
b=$(echo "$hosts1" | sed -n 2p)
c=$(echo "$hosts1" | sed -n 1p)
say "flipping a byte of block $id0 on $a, and of block $id1 on $c and $b"
for spec in "$id0 $a 1000" "$id1 $c 4242" "$id1 $b $((BS - 1))"; do
	set -- $spec
	f=$(replica_file "$1" "$2")
	[ -f "$f" ] || fail "replica file of block $1 not found on $2"
	flip "$f" "$3"
done
cmp -s "$(replica_file "$id0" "$a")" <(slice 0) && fail "the flip did not change the replica"

say "reads return the right bytes, each preferring a corrupt replica"
for h in $a $b $c; do
	CAUDAL_CLIENT_HOST=$h caudal get /c "$T/out.$h"
	assert_same_file "$T/c" "$T/out.$h"
done

say "the corrupt replicas are reported"
seen=0
for ((i = 0; i < 100; i++)); do
	fs=$(caudal fsck -v / || true)
	if [ "$(echo "$fs" | sed -n 's/^corrupt: //p')" != 0 ]; then
		echo "$fs"
		seen=1
		break
	fi
	if ! caudal blocks /c | sed -n 1p | grep -q "$a:"; then
		echo "namenode dropped $a from block $id0"
		seen=1
		break
	fi
	sleep 0.1
done
[ $seen = 1 ] || fail "neither fsck nor the block list shows the corrupt replica of block $id0 on $a"

say "re-replicated back to 3 good replicas"
wait_until 60 "fsck healthy" caudal fsck /
check_replicas() {
	local k id locs h f
	for k in 0 1 2; do
		read -r id _ _ _ locs <<<"$(caudal blocks /c | sed -n $((k + 1))p)"
		[ "$(echo "$locs" | tr ',' '\n' | cut -d: -f1 | sort -u | wc -l)" = 3 ] || return 1
		for h in $(echo "$locs" | tr ',' '\n' | cut -d: -f1); do
			f=$(replica_file "$id" "$h")
			[ -f "$f" ] && cmp -s "$f" <(slice $k) || return 1
		done
	done
}
wait_until 60 "every replica on disk good again" check_replicas
assert_same_file "$T/c" <(caudal cat /c)
assert_ok caudal fsck /
echo "PASS"
