#!/bin/sh
# SPDX-License-Identifier: ISC
# tests/lint.sh FILE...: the layout rules of snimux's sources.  Flags lines
# wider than 80 columns (tabs 8 wide, UTF-8 characters one column),
# trailing blanks, and indentation that uses spaces where a tab belongs
# (eight spaces in a row, or a space before a tab); the 4-space
# continuation and the " * " of block comments are fine.  Prints
# FILE:LINE: problem for each and exits 1 if there was any.
if [ $# -eq 0 ]; then
	echo "usage: sh tests/lint.sh FILE..." >&2
	exit 2
fi
LC_ALL=C awk '
function columns(s,    i, c, n) {
	n = 0
	for (i = 1; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (c == "\t")
			n += 8 - n % 8
		else if (c < "\200" || c > "\277")
			n++
	}
	return n
}
{
	sub(/\r$/, "")
	n = columns($0)
	if (n > 80) {
		printf "%s:%d: %d columns, over 80\n", FILENAME, FNR, n
		bad = 1
	}
	if ($0 ~ /[ \t]$/) {
		printf "%s:%d: trailing whitespace\n", FILENAME, FNR
		bad = 1
	}
	match($0, /^[ \t]*/)
	indent = substr($0, 1, RLENGTH)
	if (indent ~ /        / || indent ~ / \t/) {
		printf "%s:%d: indented with spaces\n", FILENAME, FNR
		bad = 1
	}
}
END { exit bad }
' "$@"
