#!/bin/bash
# `make install DESTDIR=$T/root PREFIX=/usr` lays out the tree an operator
# gets (programs, mount.caudal where mount(8) looks, one systemd unit per
# daemon, the example config, docs), every unit names a program of the
# tree (and passes `systemd-analyze verify` where systemd is installed),
# every program answers --help, each daemon reads its section (and with
# --instance its [ROLE.NAME]) of the example config; then a cluster is run
# from the installed programs alone, configured by the example config with
# this test's addresses, ports and folders, as docs/deploy.md does it
# (certificates from `caudal cert`, no `caudal up`): namenode, two
# datanodes as template instances, jobtracker, tasktracker, a checkpoint,
# and a mount by mount.caudal with its certificate in the options (as an
# fstab line passes it). Abuse: an unknown key, a bad instance name, a
# missing config file, a mount with only part of its certificate.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/mount_lib.sh"

R=$T/root
say "make install DESTDIR=$R PREFIX=/usr"
make -s -C "$ROOT" B="$B" install DESTDIR="$R" PREFIX=/usr >"$T/install.log" 2>&1 ||
	fail "make install failed: $(tail -n 20 "$T/install.log")"

say "the tree"
PROGS="caudal caudal-namenode caudal-datanode caudal-jobtracker caudal-tasktracker caudal-mount"
for p in $PROGS; do
	[ -f "$R/usr/bin/$p" ] && [ -x "$R/usr/bin/$p" ] || fail "no program '$R/usr/bin/$p'"
done
[ -L "$R/sbin/mount.caudal" ] || fail "no mount helper link '$R/sbin/mount.caudal'"
assert_eq "$(readlink "$R/sbin/mount.caudal")" /usr/bin/caudal-mount "mount.caudal's target"
[ -f "$R/etc/caudal/caudal.conf" ] || fail "no example config /etc/caudal/caudal.conf"
assert_same_file "$R/etc/caudal/caudal.conf" "$ROOT/dist/caudal.conf"
for d in deploy.md topology.example fstab.example; do
	[ -s "$R/usr/share/doc/caudal/$d" ] || fail "no /usr/share/doc/caudal/$d"
done
UNITS="caudal-namenode.service caudal-checkpointer.service caudal-jobtracker.service
caudal-datanode@.service caudal-tasktracker@.service"
for u in $UNITS; do
	f=$R/lib/systemd/system/$u
	[ -f "$f" ] || fail "no unit '$f'"
	exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$f")
	[ -n "$exe" ] || fail "unit '$u' has no ExecStart"
	[ -x "$R$exe" ] || fail "unit '$u' runs '$exe', which is not in the tree"
	grep -q -- "--config /etc/caudal/caudal.conf" "$f" || fail "unit '$u' does not name the config"
	if grep -q @ <<<"$u"; then
		grep -q -- "--instance %i" "$f" || fail "template '$u' does not pass its instance"
	fi
	grep -q '@[A-Z]*@' "$f" && fail "unit '$u' kept a placeholder: $(grep '@[A-Z]*@' "$f")"
done
if command -v systemd-analyze >/dev/null; then
	# verify on copies whose programs point into the tree (verify looks
	# them up on this host); templates are verified as an instance
	mkdir -p "$T/verify"
	for u in $UNITS; do
		sed "s|^ExecStart=/|ExecStart=$R/|" "$R/lib/systemd/system/$u" >"$T/verify/${u/@./@dn1.}"
	done
	out=$(systemd-analyze verify --man=no "$T"/verify/*.service 2>&1) ||
		fail "systemd-analyze verify failed: $out"
	[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
	say "systemd-analyze verify: clean"
else
	say "no systemd-analyze here: unit syntax not verified"
fi

say "--help of every program"
for p in $PROGS; do
	out=$("$R/usr/bin/$p" --help 2>&1) || fail "'$p --help' failed: $out"
	assert_contains "$out" "usage:" "'$p --help'"
	[ "$(wc -l <<<"$out")" -ge 8 ] || fail "'$p --help' says too little: $out"
done
out=$(ln -sf "$R/usr/bin/caudal-mount" "$T/mount.caudal" && "$T/mount.caudal" --help 2>&1)
assert_contains "$out" "tls_cert" "mount.caudal --help"

say "each daemon reads its section of the example config"
C=$R/etc/caudal/caudal.conf
pc() { "$R/usr/bin/$1" --config "$C" "${@:3}" --print_config | sed -n "s/^$2 = //p"; } # PROG KEY [ARGS]
assert_eq "$(pc caudal-namenode dir)" /var/lib/caudal/namenode "namenode dir"
assert_eq "$(pc caudal-namenode checkpoint_dir --checkpoint)" /var/lib/caudal/checkpoints "checkpointer dir"
assert_eq "$(pc caudal-namenode tls_cert --checkpoint)" /etc/caudal/certs/checkpointer.crt "checkpointer cert"
assert_eq "$(pc caudal-datanode host --instance=dn3)" 10.0.0.13 "datanode@dn3 host"
assert_eq "$(pc caudal-datanode data_dir --instance=dn3)" /var/lib/caudal/datanode "datanode@dn3 data_dir"
assert_eq "$(pc caudal-tasktracker host --instance=dn4)" 10.0.0.14 "tasktracker@dn4 host"
assert_eq "$(pc caudal-jobtracker port)" 9001 "jobtracker port"
# flags override the file
assert_eq "$(pc caudal-datanode host --instance=dn3 --host=10.9.9.9)" 10.9.9.9 "flag over file"

say "abuse: unknown key, bad instance, missing file"
printf '[datanode]\nport = 1\nbogus_key = 2\n' >"$T/bad.conf"
assert_fails "$R/usr/bin/caudal-datanode" --config "$T/bad.conf" --print_config
assert_contains "$OUT" "line 3" "unknown key error"
assert_fails "$R/usr/bin/caudal-datanode" --config "$C" --instance '../x' --print_config
assert_contains "$OUT" "--instance" "bad instance error"
assert_fails "$R/usr/bin/caudal-datanode" --config "$C" --instance "$(printf 'a%.0s' {1..100})" --print_config
assert_fails "$R/usr/bin/caudal-tasktracker" --config "$T/nope.conf" --print_config
assert_contains "$OUT" "cannot open" "missing config error"

say "certificates with the installed 'caudal cert'"
CD=$R/etc/caudal/certs
cert() { "$R/usr/bin/caudal" cert --dir "$CD" "$@" >/dev/null || fail "caudal cert $* failed"; }
cert create-ca
cert create-node 127.0.0.1 namenode
cert create-node 127.0.0.1 jobtracker
cert create-node 127.0.0.2 datanode
cert create-node 127.0.0.3 datanode
cert create-node 127.0.0.2 tasktracker
cert create-node 127.0.0.1 mount
cert create-client admin
# named by role on each host, as docs/deploy.md copies them
for r in namenode jobtracker mount; do
	cp "$CD/$r-127.0.0.1.crt" "$CD/$r.crt"
	cp "$CD/$r-127.0.0.1.key" "$CD/$r.key"
done
cp "$CD/namenode.crt" "$CD/checkpointer.crt"
cp "$CD/namenode.key" "$CD/checkpointer.key"
cp "$CD/tasktracker-127.0.0.2.crt" "$CD/tasktracker.crt"
cp "$CD/tasktracker-127.0.0.2.key" "$CD/tasktracker.key"

say "the example config, edited for this test's addresses, ports and folders"
read -r NNP HTTPP DNP JTP TTP <<<"$(free_ports 5)"
V=$T/var
mkdir -p "$V" "$T/logs"
sed -e "s|10\.0\.0\.10|127.0.0.1|g" -e "s|10\.0\.0\.11|127.0.0.2|g" -e "s|10\.0\.0\.12|127.0.0.3|g" \
	-e "s|= 9000|= $NNP|; s|:9000|:$NNP|g; s|= 9870|= $HTTPP|; s|= 9866|= $DNP|" \
	-e "s|= 9001|= $JTP|; s|:9001|:$JTP|g; s|= 9002|= $TTP|" \
	-e "s|/var/lib/caudal|$V|g; s|/etc/caudal|$R/etc/caudal|g" \
	-e "s|^replication = 3|replication = 2|; s|^block_size = 64m|block_size = 1m|" \
	-e "s|^heartbeat_ms = 3000|heartbeat_ms = 300|; s|^dead_ms = 30000|dead_ms = 3000|" \
	"$C" >"$T/caudal.conf"
# two datanodes on this host: each instance its own folder and certificate
cat >>"$T/caudal.conf" <<EOF
[datanode.dn1]
data_dir = $V/datanode-dn1
tls_cert = $CD/datanode-127.0.0.2.crt
tls_key = $CD/datanode-127.0.0.2.key
[datanode.dn2]
data_dir = $V/datanode-dn2
tls_cert = $CD/datanode-127.0.0.3.crt
tls_key = $CD/datanode-127.0.0.3.key
[jobtracker]
allow_root_jobs = yes
EOF
printf '127.0.0.2 /r1\n127.0.0.3 /r2\n' >"$R/etc/caudal/topology"
grep -qE "10\.0\.0\.1[012]([^0-9]|$)" "$T/caudal.conf" && fail "an address of the example is left"

# Starts an installed daemon with the test config in the background.
PIDS_DIR=$T/daemons/pids
mkdir -p "$PIDS_DIR"
run() { # NAME PROG ARGS...
	local name=$1 prog=$2
	shift 2
	"$R/usr/bin/$prog" --config "$T/caudal.conf" "$@" >>"$T/logs/$name.log" 2>&1 &
	register_pid $!
	printf '%s\n%s\n' $! "$prog" >"$PIDS_DIR/$name.pid"
}
export CAUDAL_NAMENODE=127.0.0.1:$NNP CAUDAL_CA=$CD/ca.crt CAUDAL_CERT=$CD/admin.crt CAUDAL_KEY=$CD/admin.key
CLI=$R/usr/bin/caudal
live_dns() { [ "$("$CLI" report 2>/dev/null | sed -n 's/^live datanodes: //p')" = "$1" ]; }

say "start namenode, datanodes dn1 and dn2 (instances), jobtracker, tasktracker dn1"
run namenode caudal-namenode
run dn1 caudal-datanode --instance dn1
run dn2 caudal-datanode --instance dn2
run jobtracker caudal-jobtracker
run tt1 caudal-tasktracker --instance dn1
wait_until 30 "two live datanodes" live_dns 2
wait_until 20 "the tasktracker registered" grep -q "registered (host" "$T/logs/jobtracker.log"

say "mount with the installed mount.caudal, certificate in the options (fstab style)"
M=$T/mnt
mkdir -p "$M"
register_mount "$M"
assert_fails "$T/mount.caudal" "127.0.0.1:$NNP" "$M" -o "tls_cert=$CD/mount.crt"
assert_contains "$OUT" "go together" "half a certificate"
"$T/mount.caudal" "127.0.0.1:$NNP" "$M" -o "_netdev,nofail,io_timeout=10,client_host=127.0.0.1,log=$T/logs/mount.log,pidfile=$T/daemons/pids/mount.pid,tls_ca=$CD/ca.crt,tls_cert=$CD/mount.crt,tls_key=$CD/mount.key" ||
	fail "mount.caudal failed"
mountpoint -q "$M" || fail "'$M' is not mounted"
[ "$(findmnt -n -o FSTYPE -T "$M")" = fuse.caudal ] || fail "'$M' is not fuse.caudal"

say "write and read through the mount; the replicas span both racks"
mkfile "$T/f" $((3 * 1048576 + 4321))
mkdir -p "$M/data"
cp "$T/f" "$M/data/f"
assert_same_file "$T/f" "$M/data/f"
"$CLI" get /data/f "$T/f.back" || fail "caudal get failed"
assert_same_file "$T/f" "$T/f.back"
blocks=$("$CLI" blocks /data/f) || fail "caudal blocks failed"
n=0
while read -r _ _ _ _ hosts; do
	case $hosts in *127.0.0.2:*127.0.0.3:* | *127.0.0.3:*127.0.0.2:*) n=$((n + 1)) ;;
	*) fail "a block is not on both racks: $hosts" ;;
	esac
done <<<"$blocks"
assert_eq "$n" 4 "blocks of /data/f"
assert_ok "$CLI" fsck /
assert_contains "$OUT" HEALTHY "fsck"

say "a job through the installed jobtracker and tasktracker"
printf 'a b a\nc a b\n' >"$M/data/words"
printf 'input = /data/words\noutput = /out/wc\nmap = wordcount\nreduce = sum\nreduces = 1\n' >"$T/wc.job"
cp "$T/wc.job" "$M/jobs/wc.job"
end=$((SECONDS + 60))
until grep -q '^state: SUCCEEDED' "$M/jobs/wc/status" 2>/dev/null; do
	grep -q '^state: FAILED' "$M/jobs/wc/status" 2>/dev/null && fail "job failed: $(cat "$M/jobs/wc/status")"
	[ $SECONDS -lt $end ] || fail "job not done in 60 s: $(cat "$M/jobs/wc/status" 2>/dev/null)"
	sleep 0.3
done
assert_eq "$(sort "$M/out/wc/part-00000" | tr '\t' ' ' | tr '\n' ' ')" "a 3 b 2 c 1 " "word counts"

say "a checkpoint by the checkpointer's section"
"$R/usr/bin/caudal-namenode" --checkpoint --once --config "$T/caudal.conf" >>"$T/logs/checkpointer.log" 2>&1 ||
	fail "checkpoint failed"
ls "$V/checkpoints"/* >/dev/null 2>&1 || fail "no checkpoint in '$V/checkpoints'"

say "unmount, stop every daemon with SIGTERM: each exits 0"
fusermount3 -u "$M" || fail "cannot unmount"
# (the mount removes its own pid file as it exits after the unmount: it may
# go between the glob and the read)
for f in "$PIDS_DIR"/*.pid; do
	[ "${f##*/}" = mount.pid ] && continue
	pid=$(sed -n 1p "$f")
	prog=$(sed -n 2p "$f")
	[ "$prog" = caudal-mount ] && continue
	kill -TERM "$pid" 2>/dev/null || fail "${f##*/} (pid $pid) is not running"
done
for f in "$PIDS_DIR"/*.pid; do
	[ "${f##*/}" = mount.pid ] && continue
	pid=$(sed -n 1p "$f")
	[ "$(sed -n 2p "$f")" = caudal-mount ] && continue
	rc=0
	timeout 20 tail --pid="$pid" -f /dev/null || fail "${f##*/} did not stop"
	wait "$pid" || rc=$?
	assert_eq "$rc" 0 "exit status of ${f##*/}"
done
say "PASS"
