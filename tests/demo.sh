#!/bin/sh
# SPDX-License-Identifier: ISC
# make demo: three TLS servers behind one snimux port.  Makes a throwaway
# CA and a certificate per site, starts openssl s_server for
# alice.example.com, bob.example.org and a default (legacy.example.net),
# puts snimux in front of them on a local port, connects as alice, as bob
# and without a server name, shows which certificate each client got and
# the daemon's statistics, then stops everything it started.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
snimux=${SNIMUX_BIN:-$top/snimux}
lib=$top/tests/integ/lib.py
dir=$(mktemp -d "${TMPDIR:-/tmp}/snimux-demo.XXXXXX") || exit 1
pids=

cleanup() {
	for pid in $pids; do
		kill "$pid" 2>/dev/null
	done
	for pid in $pids; do
		wait "$pid" 2>/dev/null
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

say() {
	printf '%s\n' "$*"
}

die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

pause() {
	sleep 0.1 2>/dev/null || sleep 1
}

# wait_for FILE WORD: until the log FILE says WORD (5 s at most).
wait_for() {
	i=0
	until grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -le 50 ] || die "no '$2' in $1: $(cat "$1")"
		pause
	done
}

[ -x "$snimux" ] || die "$snimux not found: run make first"

say "1. A throwaway CA and one certificate per site, in $dir"
python3 "$lib" pki "$dir" alice.example.com bob.example.org \
    legacy.example.net || die "could not make the certificates"
# shellcheck disable=SC2046
set -- $(python3 "$lib" ports 4)
[ $# -eq 4 ] || die "could not find free ports"
port_alice=$1 port_bob=$2 port_legacy=$3 port=$4

say ""
say "2. Three TLS servers, each with its own certificate and key"
for site in alice.example.com:$port_alice bob.example.org:$port_bob \
    legacy.example.net:$port_legacy; do
	name=${site%:*}
	p=${site##*:}
	openssl s_server -accept "127.0.0.1:$p" -cert "$dir/$name.pem" \
	    -key "$dir/$name.key" -www >"$dir/$name.log" 2>&1 &
	pids="$pids $!"
	say "   openssl s_server -accept 127.0.0.1:$p" \
	    "-cert $name.pem  (pid $!)"
	wait_for "$dir/$name.log" ACCEPT
done

say ""
say "3. snimux on 127.0.0.1:$port with this configuration:"
cat >"$dir/snimux.conf" <<EOF
listen 127.0.0.1:$port
route alice.example.com 127.0.0.1:$port_alice
route bob.example.org 127.0.0.1:$port_bob
default 127.0.0.1:$port_legacy
stats $dir/snimux.sock
EOF
sed 's/^/     /' "$dir/snimux.conf"
"$snimux" -c "$dir/snimux.conf" 2>"$dir/snimux.log" &
pids="$pids $!"
i=0
until "$snimux" -c "$dir/snimux.conf" help >/dev/null 2>&1; do
	i=$((i + 1))
	[ "$i" -le 50 ] || die "snimux did not start: $(cat "$dir/snimux.log")"
	pause
done

say ""
say "4. Three clients, all to 127.0.0.1:$port; which certificate comes back?"
client() {
	what=$1
	shift
	out=$(openssl s_client -connect "127.0.0.1:$port" -CAfile "$dir/ca.pem" \
	    "$@" </dev/null 2>/dev/null)
	subject=$(printf '%s\n' "$out" | sed -n 's/^subject=//p')
	verify=$(printf '%s\n' "$out" | sed -n 's/^Verify return code: //p')
	printf '   %-30s -> %s (verify: %s)\n' "$what" \
	    "${subject:-no certificate}" "${verify:-none}"
}
client "-servername alice.example.com" -servername alice.example.com
client "-servername bob.example.org" -servername bob.example.org
client "-noservername" -noservername

say ""
say "5. ./snimux -c snimux.conf stats"
"$snimux" -c "$dir/snimux.conf" stats | sed '/./s/^/     /'

say ""
say "6. snimux's log (stderr): one access line per connection"
sed 's/^/     /' "$dir/snimux.log"

say ""
say "Stopping the servers and snimux (pids$pids)."
