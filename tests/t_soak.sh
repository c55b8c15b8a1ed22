#!/bin/sh
# SPDX-License-Identifier: ISC
# The short form of the soak test (tests/soak.py) for make check: 30 s
# unless SOAK_SECONDS says otherwise.
cd "$(dirname "$0")/.." || exit 1
SOAK_SECONDS=${SOAK_SECONDS:-30} exec python3 tests/soak.py
