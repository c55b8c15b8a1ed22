#!/bin/sh
# SPDX-License-Identifier: ISC
# tests/fuzz.sh [TARGET...]: runs the libFuzzer targets (default: hello
# config) for $FUZZ_SECONDS each (default 10), seeded from tests/fuzz/T/
# (hello also from $SNIMUX_CORPUS or tests/corpus).  New corpus
# entries go to a scratch directory that is removed; a failing input is
# kept as tests/fuzz/T/crash-*.  Prints one "ok"/"not ok" line a target,
# or a skip when $FUZZ_CC (default clang) cannot link libFuzzer.
set -u
cd "$(dirname "$0")/.." || exit 1
secs=${FUZZ_SECONDS:-10}
cc=${FUZZ_CC:-clang}
make=${MAKE:-make}
targets=${*:-hello config}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/snimux-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT INT TERM

cat >"$scratch/probe.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{ (void)d; (void)n; return 0; }
EOF
if ! "$cc" -fsanitize=fuzzer -o "$scratch/probe" "$scratch/probe.c" \
    >/dev/null 2>&1; then
	echo "ok - fuzz: skipped, $cc cannot link libFuzzer # SKIP"
	exit 0
fi
bins=
for t in $targets; do
	bins="$bins tests/fuzz_$t"
done
if ! $make -s FUZZ_CC="$cc" $bins >"$scratch/build.log" 2>&1; then
	echo "not ok - fuzz: targets build with $cc"
	sed 's/^/# /' "$scratch/build.log"
	exit 1
fi

fail=0
for t in $targets; do
	seeds=tests/fuzz/$t
	[ "$t" = hello ] && seeds="$seeds ${SNIMUX_CORPUS:-tests/corpus}"
	dict=
	[ -f "tests/fuzz/$t.dict" ] && dict=-dict=tests/fuzz/$t.dict
	log=$scratch/$t.log
	mkdir -p "$scratch/$t" "tests/fuzz/$t"
	# shellcheck disable=SC2086
	TMPDIR=$scratch "tests/fuzz_$t" -max_total_time="$secs" \
	    -timeout=10 -print_final_stats=1 $dict \
	    -artifact_prefix="tests/fuzz/$t/" "$scratch/$t" $seeds \
	    >"$log" 2>&1
	rc=$?
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
	stats=$(echo "$done_line" |
	    sed -E 's/^#([0-9]+)[[:space:]]+DONE[[:space:]]*/\1 runs, /')
	if [ "$rc" -eq 0 ] && [ -n "$done_line" ]; then
		echo "ok - fuzz_$t: ${secs}s: $stats"
		continue
	fi
	fail=1
	echo "not ok - fuzz_$t: exit $rc after ${secs}s or less"
	grep -E 'fuzz_(hello|config):|ERROR|SUMMARY|Test unit written' \
	    "$log" | head -n 20 | sed 's/^/# /'
done
exit "$fail"
