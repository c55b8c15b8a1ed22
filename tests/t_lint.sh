#!/bin/sh
# SPDX-License-Identifier: ISC
# The layout check of tests/lint.sh over every C source, as one test.
cd "$(dirname "$0")/.." || exit 1
for f in *.c *.h tests/*.c tests/*.h; do
	if out=$(sh tests/lint.sh "$f"); then
		echo "ok - layout of $f"
	else
		echo "not ok - layout of $f"
		echo "$out" | sed 's/^/# /'
	fi
done
