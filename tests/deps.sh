#!/bin/sh
# SPDX-License-Identifier: ISC
# Makes sure the programs that build and test snimux are present: make and
# a C compiler, clang (sanitizer and fuzz builds), and for the integration
# tests openssl, curl and python3.  Installs what is missing with apt-get
# when run as root; otherwise lists it and exits 1.  Quick when nothing is
# missing.
set -u
missing=
need() {
	command -v "$1" >/dev/null 2>&1 || missing="$missing $2"
}
need make make
need cc "gcc libc6-dev"
need clang clang
need openssl openssl
need curl curl
need python3 python3
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "tests/deps.sh: missing:$missing" >&2
	echo "tests/deps.sh: install them first, e.g. apt-get install$missing" >&2
	exit 1
fi
echo "tests/deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# $missing is a list of package names: split on purpose.
# shellcheck disable=SC2086
apt-get update -q && apt-get install -y -q --no-install-recommends $missing
