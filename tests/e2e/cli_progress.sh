#!/bin/bash
# Progress of the CLI (issue 10): on a terminal (`script` gives one) `caudal
# put`, `get`, `setrep -w` and `fsck` redraw one status line with \r (what, bytes
# of the total, percentage, rate, time left) and end it with 100% and a
# newline; with -q, or when stdout/stderr are not terminals (a pipe, a
# file), they print nothing at all. The files are copied intact either way.
source "$(dirname "$0")/../lib.sh"
command -v script >/dev/null || fail "script (util-linux) is not installed"
cluster_up
mkfile "$T/big" $((5 * BS + 4321))

# Runs a caudal command under a pseudo-terminal; its output in $T/tty.
# (what the terminal showed is script's own output; its log file has headers)
on_tty() { script -qec "$CAUDAL $*" /dev/null >"$T/tty" </dev/null; }

say "put on a terminal: a progress line ending at 100%"
on_tty put "$T/big" /big
tty=$(cat "$T/tty")
assert_contains "$tty" $'\r' "put's terminal output"
assert_contains "$tty" "big: " "put's progress line"
assert_contains "$tty" "5.0 MiB of 5.0 MiB 100%" "put's last progress line"
assert_contains "$tty" "/s " "put's rate"
assert_contains "$tty" " left, " "put's time left"

say "get on a terminal"
on_tty get /big "$T/back"
assert_same_file "$T/big" "$T/back"
assert_contains "$(cat "$T/tty")" "5.0 MiB of 5.0 MiB 100%" "get's last progress line"

say "setrep -w on a terminal: blocks at the new replication"
on_tty setrep -w 2 /big
assert_contains "$(cat "$T/tty")" "blocks replicated: 6 of 6 100%" "setrep -w's last progress line"

say "fsck on a terminal: entries checked, and the same figures as one check"
caudal mkdir -p /t/a/b /t/c >/dev/null
for f in /t/a/x /t/a/b/y /t/z; do caudal put "$T/big" "$f" >/dev/null 2>&1 </dev/null; done
whole=$("$CAUDAL" fsck / 2>/dev/null)
on_tty fsck /
tty=$(tr -d '\r' <"$T/tty")
assert_contains "$(cat "$T/tty")" "entries checked: " "fsck's progress line"
n=$(caudal ls / | wc -l)
assert_contains "$tty" "entries checked: $n of $n 100%" "fsck's last progress line"
assert_eq "$(grep -E '^(files|dirs|symlinks|bytes|blocks|replicas|status):' <<<"$tty")" \
	"$(grep -E '^(files|dirs|symlinks|bytes|blocks|replicas|status):' <<<"$whole")" \
	"fsck's figures entry by entry and whole"
on_tty fsck -q /
assert_eq "$(tr -d '\r' <"$T/tty" | grep -c 'entries checked')" 0 "fsck -q's progress lines"

say "-q on a terminal: nothing"
on_tty put -q "$T/big" /big2
assert_eq "$(cat "$T/tty")" "" "put -q's terminal output"
on_tty get -q /big2 "$T/back2"
assert_eq "$(cat "$T/tty")" "" "get -q's terminal output"
assert_same_file "$T/big" "$T/back2"

say "not a terminal: nothing, on stdout or stderr"
"$CAUDAL" put "$T/big" /big3 >"$T/out" 2>"$T/err"
"$CAUDAL" get /big3 "$T/back3" >>"$T/out" 2>>"$T/err"
"$CAUDAL" setrep -w 1 /big3 >>"$T/out" 2>>"$T/err"
assert_eq "$(cat "$T/out" "$T/err")" "" "output without a terminal"
assert_same_file "$T/big" "$T/back3"
# stdout a terminal but stderr not (or the other way): still nothing
script -qec "$CAUDAL get /big3 $T/back4 2>$T/err4" /dev/null >"$T/tty" </dev/null
assert_eq "$(cat "$T/tty" "$T/err4")" "" "output with stderr redirected"
# get to stdout: the data, never a progress line in it
"$CAUDAL" get /big3 - | cmp - "$T/big" || fail "get - differs"

say "abuse: a failed put on a terminal ends its line and says why"
on_tty put "$T/big" /no/such/dir/x || true
assert_contains "$(cat "$T/tty")" "caudal:" "a failed put's message"
say "ok"
