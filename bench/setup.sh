#!/bin/sh
# SPDX-License-Identifier: ISC
# Copyright (c) 2026 The snimux authors
#
# bench/setup.sh: optionally install the proxies that make bench compares
# snimux with (HAProxy, nginx with the stream module).  The benchmark runs
# without them; as root this installs them with apt-get, otherwise it says
# what to run.
PKGS="haproxy nginx-light libnginx-mod-stream"
missing=""
command -v haproxy >/dev/null 2>&1 || missing="$missing haproxy"
if ! command -v nginx >/dev/null 2>&1 ||
    [ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then
	missing="$missing nginx-light libnginx-mod-stream"
fi
if [ -z "$missing" ]; then
	echo "bench/setup.sh: haproxy and nginx stream are installed"
	exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "bench/setup.sh: to compare with HAProxy and nginx, run as root:"
	echo "    apt-get install $PKGS"
	exit 0
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    $missing
# The Debian packages start services; the benchmark starts its own.
for s in haproxy nginx; do
	systemctl disable --now "$s" >/dev/null 2>&1 || true
done
exit 0
