#!/bin/bash
# Bad paths are refused with clear errors before anything is sent: relative
# paths, '.' and '..', a component over 255 bytes, empty components, and an
# over-long path. Names of exactly 255 bytes work.
source "$(dirname "$0")/../lib.sh"
cluster_up

mkfile "$T/f" 10
long=$(printf 'x%.0s' $(seq 256))
ok255=$(printf 'y%.0s' $(seq 255))
deep=$(for i in $(seq 20); do printf '/%s' "${ok255:0:250}"; done)

check_bad() { # PATH REASON
	local p=$1 why=$2
	for cmd in "mkdir -p" "ls" "stat" "cat" "rm" "put $T/f" "get" "setrep 2" "fsck"; do
		assert_fails caudal $cmd "$p"
		[ "$(echo "$OUT" | wc -l)" = 1 ] || fail "'caudal $cmd' printed more than one line: $OUT"
		assert_contains "$OUT" "caudal: invalid path '$p': " "'caudal $cmd $p'"
		assert_contains "$OUT" "$why" "'caudal $cmd $p'"
	done
	assert_fails caudal mv "$p" /somewhere
	assert_contains "$OUT" "invalid path '$p'"
	assert_fails caudal mv /somewhere "$p"
	assert_contains "$OUT" "invalid path '$p'"
}

say "relative"
check_bad "relative/x" "path is not absolute"
check_bad "x" "path is not absolute"
check_bad "" "path is not absolute"
say "dot and dot-dot"
check_bad "/a/../b" "'..'"
check_bad "/.." "'..'"
check_bad "/a/./b" "'.'"
say "long component"
check_bad "/$long" "longer than 255 bytes"
check_bad "/a/$long/b" "longer than 255 bytes"
say "empty component"
check_bad "/a//b" "empty component"
check_bad "//a" "empty component"
say "path too long"
check_bad "$deep" "longer than 4095 bytes"

say "nothing was created"
assert_eq "$(caudal ls /)" "" "root listing"

say "255-byte names work"
caudal mkdir -p "/ok/$ok255"
caudal put "$T/f" "/ok/$ok255/$ok255"
assert_same_file "$T/f" <(caudal cat "/ok/$ok255/$ok255")
assert_eq "$(caudal ls "/ok/$ok255")" "$ok255" "listing of the 255-byte name"
say "a single trailing slash is fine"
assert_eq "$(caudal ls "/ok/")" "$ok255" "ls /ok/"
echo "PASS"
