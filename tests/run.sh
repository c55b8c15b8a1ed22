#!/bin/sh
# SPDX-License-Identifier: ISC
# Runs each test given on the command line, keeps its output in
# tests/logs/NAME.log, prints its ok / not ok lines, and ends with one line
# "N passed, N failed".  A test that exits non-zero without printing a
# "not ok" line counts as one failure of its own.
set -u
logs=${TEST_LOGS:-tests/logs}
mkdir -p "$logs"
pass=0
fail=0
for t in "$@"; do
	name=$(basename "$t")
	log="$logs/$name.log"
	case "$t" in
	*.py) python3 "$t" >"$log" 2>&1 ;;
	*.sh) sh "$t" >"$log" 2>&1 ;;
	*) "$t" >"$log" 2>&1 ;;
	esac
	rc=$?
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $name exited with status $rc" >>"$log"
		f=1
	fi
	grep -E '^(not ok |#)' "$log" | sed "s|^|$name: |"
	echo "$name: $p passed, $f failed"
	pass=$((pass + p))
	fail=$((fail + f))
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
