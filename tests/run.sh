#!/bin/sh
# SPDX-License-Identifier: ISC
# Runs each test given on the command line, keeps its output in
# tests/logs/NAME.log, prints its "not ok" lines and a count, and ends
# with one line "N passed, N failed".  The integration tests (*.py) run
# once per relay named in SNIMUX_RELAYS (default: "splice copy"), each
# daemon getting the line "relay R".  A test that exits non-zero without
# printing a "not ok" line counts as one failure of its own.
set -u
logs=${TEST_LOGS:-tests/logs}
relays=${SNIMUX_RELAYS:-splice copy}
mkdir -p "$logs"
pass=0
fail=0

# one NAME LOG COMMAND...: run a test, add up its lines.
one() {
	one_name=$1
	one_log=$2
	shift 2
	"$@" >"$one_log" 2>&1
	rc=$?
	p=$(grep -c '^ok ' "$one_log")
	f=$(grep -c '^not ok ' "$one_log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $one_name exited with status $rc" >>"$one_log"
		f=1
	fi
	grep -E '^(not ok |#)' "$one_log" | sed "s|^|$one_name: |"
	echo "$one_name: $p passed, $f failed"
	pass=$((pass + p))
	fail=$((fail + f))
}

for t in "$@"; do
	name=$(basename "$t")
	case "$t" in
	*.py)
		for r in $relays; do
			SNIMUX_EXTRA_CONF="relay $r" TEST_LOGS="$logs/$r" \
			    one "$name[$r]" "$logs/$name.$r.log" python3 "$t"
		done
		;;
	*.sh) one "$name" "$logs/$name.log" sh "$t" ;;
	*) one "$name" "$logs/$name.log" "$t" ;;
	esac
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
