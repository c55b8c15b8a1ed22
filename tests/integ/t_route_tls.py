# SPDX-License-Identifier: ISC
"""Real TLS clients through snimux: each server name must reach the
backend holding its own certificate, over IPv4, IPv6 and a wildcard
listener; clients that no route takes get the TLS alert the
configuration asks for; the counters match what was sent."""

import collections
import re
import ssl

import lib
from lib import diag, eq, ok

CERTS = {
    "alice.example.com": (),
    "bob.example.org": ("example.org",),
    "wild.example.net": ("*.example.net",),
    "default.example.net": (),
}

# (server name sent, certificate expected, route label counted)
CASES = [
    ("alice.example.com", "alice.example.com", "alice.example.com"),
    ("ALICE.EXAMPLE.COM", "alice.example.com", "alice.example.com"),
    ("alice.example.com.", "alice.example.com", "alice.example.com"),
    ("Alice.Example.Com.", "alice.example.com", "alice.example.com"),
    ("bob.example.org", "bob.example.org", ".example.org"),
    ("example.org", "bob.example.org", ".example.org"),
    ("a.b.c.example.org", "bob.example.org", ".example.org"),
    ("sub.example.org", "bob.example.org", ".example.org"),
    ("z.y.sub.example.org", "bob.example.org", ".example.org"),
    ("y.sub.example.org", "wild.example.net", "*.sub.example.org"),
    ("deep.example.org", "alice.example.com", ".deep.example.org"),
    ("q.deep.example.org", "alice.example.com", ".deep.example.org"),
    ("x.example.net", "wild.example.net", "*.example.net"),
    ("X.Example.NET", "wild.example.net", "*.example.net"),
    ("pri.example.net", "alice.example.com", "pri.example.net"),
    ("a.b.example.net", "default.example.net", "(unknown)"),
    ("example.net", "default.example.net", "(unknown)"),
    ("nobody.example.com", "default.example.net", "(unknown)"),
    ("xalice.example.com", "default.example.net", "(unknown)"),
    ("notexample.org", "default.example.net", "(unknown)"),
    (None, "default.example.net", "(no-sni)"),
]

BY_NAME = {c[0]: c for c in CASES}

ROUTES = [
    ("alice.example.com", "alice.example.com"),
    (".example.org", "bob.example.org"),
    ("*.example.net", "wild.example.net"),
    ("pri.example.net", "alice.example.com"),
    ("*.sub.example.org", "wild.example.net"),
    (".deep.example.org", "alice.example.com"),
]


def start_backends(pki, host):
    return {cn: lib.TlsServer(pki, cn, host) for cn in CERTS}


def routed_config(host, port, servers):
    lines = ["listen " + lib.hostport(host, port), "timeout idle 30s"]
    lines += ["route %s %s" % (pat, servers[cn].addr) for pat, cn in ROUTES]
    lines.append("default " + servers["default.example.net"].addr)
    return lines


def check_counts(mux, expect, fam):
    """connections_total of every row equals what the test sent, and
    nothing stays active."""
    labels = [p for p, _ in ROUTES] + ["(no-sni)", "(unknown)"]

    def settled(m):
        return all(m.get("snimux_connections_total", route=r) ==
                   expect[r] and
                   m.get("snimux_connections_active", route=r) == 0
                   for r in labels)
    m = mux.wait_metrics(settled)
    rows = sorted(dict(lab)["route"]
                  for lab in m.series("snimux_connections_total"))
    eq(rows, sorted(labels), "%s: one row per route plus (no-sni) and "
       "(unknown), none for the names clients sent" % fam)
    for r in labels:
        eq(m.get("snimux_connections_total", route=r), expect[r],
           "%s: connections_total{route=\"%s\"}" % (fam, r))
        eq(m.get("snimux_connections_active", route=r), 0,
           "%s: connections_active{route=\"%s\"} back to 0" % (fam, r))
        eq(m.get("snimux_backend_failures_total", route=r), 0,
           "%s: backend_failures_total{route=\"%s\"}" % (fam, r))


def routing(d, pki, host, fam):
    """Every case with s_client; the plain names with curl and Python."""
    servers = start_backends(pki, host)
    port = lib.free_port(host)
    mux = lib.Snimux(d, routed_config(host, port, servers),
                     tag="route-" + fam).start()
    expect = collections.Counter()

    for name, want, label in CASES:
        cn, verify, out = lib.s_client(port, name, pki.ca, host)
        expect[label] += 1
        shown = "-noservername" if name is None else "-servername " + name
        ok(cn == want and verify is not None and verify.startswith("0 "),
           "%s: s_client %s gets the %s certificate (route %s)" %
           (fam, shown, want, label),
           "subject CN %r, verify %r" % (cn, verify), *out.splitlines()[-8:])

    for name in ("alice.example.com", "bob.example.org", "example.org"):
        _, want, label = BY_NAME[name]
        rc, cn, err = lib.curl(port, name, pki.ca, host)
        expect[label] += 1
        ok(rc == 0 and cn == want,
           "%s: curl https://%s/ verifies and gets its certificate" %
           (fam, name), "curl status %d, subject CN %r" % (rc, cn),
           *err.splitlines()[-8:])

    for name, want, label, check in [
            ("alice.example.com", "alice.example.com", "alice.example.com",
             True),
            ("bob.example.org", "bob.example.org", ".example.org", True),
            ("ALICE.example.COM", "alice.example.com", "alice.example.com",
             True),
            ("x.example.net", "wild.example.net", "*.example.net", True),
            ("nobody.example.com", "default.example.net", "(unknown)",
             False),
            (None, "default.example.net", "(no-sni)", False)]:
        expect[label] += 1
        try:
            cn, body = lib.py_tls(port, name, pki.ca, host, check)
        except (OSError, ssl.SSLError) as e:
            cn, body = None, repr(e).encode()
        ok(cn == want and body.startswith(b"HTTP/1.0 200"),
           "%s: Python ssl server_hostname=%s gets %s and an answer" %
           (fam, name, want), "subject CN %r, answer %r" % (cn, body[:60]))

    check_counts(mux, expect, fam)
    eq(mux.stop(), 0, "%s: snimux exits 0 on SIGTERM" % fam)
    client = r"client=%s:\d+ " % re.escape(
        "[%s]" % host if ":" in host else host)
    ok(re.search(client, mux.log()), "%s: access log writes %s" %
       (fam, client), *mux.log_tail(3))


def wildcard_listener(d, pki):
    """listen *:PORT takes IPv4 and, where there is one, IPv6."""
    alice = lib.TlsServer(pki, "alice.example.com")
    port = lib.free_port("*")
    mux = lib.Snimux(d, ["listen *:%d" % port,
                         "route alice.example.com " + alice.addr],
                     tag="any").start()
    hosts = ["127.0.0.1"] + (["::1"] if lib.have_ipv6() else [])
    for host in hosts:
        try:
            cn, _ = lib.py_tls(port, "alice.example.com", pki.ca, host)
        except (OSError, ssl.SSLError) as e:
            cn = repr(e)
        eq(cn, "alice.example.com",
           "listen *:PORT: alice reached through %s" % host)
    m = mux.wait_metrics(lambda m: m.get(
        "snimux_connections_total", route="alice.example.com") ==
        len(hosts))
    eq(m.get("snimux_connections_total", route="alice.example.com"),
       len(hosts), "listen *:PORT: connections_total counts both families")
    eq(mux.stop(), 0, "listen *:PORT: snimux exits 0 on SIGTERM")


def failover(d, pki):
    """A backend that refuses is skipped for the next one; when every
    backend refuses, the client is closed and the failures counted."""
    alice = lib.TlsServer(pki, "alice.example.com")
    dead = [lib.free_port() for _ in range(2)]
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                         "route alice.example.com 127.0.0.1:%d %s" %
                         (dead[0], alice.addr),
                         "route bob.example.org 127.0.0.1:%d" % dead[1]],
                     tag="failover").start()
    cn, verify, out = lib.s_client(port, "alice.example.com", pki.ca)
    ok(cn == "alice.example.com" and verify.startswith("0 "),
       "failover: a refusing first backend is skipped, alice answers",
       *out.splitlines()[-8:])
    try:
        cn, _ = lib.py_tls(port, "bob.example.org", pki.ca)
    except (OSError, ssl.SSLError) as e:
        cn = None
        diag("failover: bob with no backend left: %r" % e)
    eq(cn, None, "failover: with every backend refusing, no handshake")
    m = mux.wait_metrics(lambda m: m.get(
        "snimux_backend_failures_total", route="bob.example.org"))
    for r in ("alice.example.com", "bob.example.org"):
        n = m.get("snimux_backend_failures_total", route=r)
        ok(n is not None and n >= 1,
           "failover: backend_failures_total{route=\"%s\"} counted" % r,
           "value %r" % n)
        diag("failover: backend_failures_total{route=\"%s\"} %s" % (r, n))
    eq(mux.stop(), 0, "failover: snimux exits 0 on SIGTERM")


def raw_hello(port, hello):
    """Send a captured hello, read until snimux closes: (bytes, how)."""
    with lib.connect(port) as s:
        s.sendall(hello)
        return lib.read_to_end(s)


def expect_alert(port, hello, code, what):
    data, how = raw_hello(port, hello)
    ok(lib.alert_of(data) == code and how == "eof",
       "%s: alert record 15 03 0x 00 02 02 %d, then close" % (what, code),
       "received %s, then %s" % (data.hex(" "), how))


def expect_py_alert(port, name, ca, reason, what):
    try:
        lib.py_tls(port, name, ca, check=False)
        got = "handshake succeeded"
    except ssl.SSLError as e:
        got = e.reason
    except OSError as e:
        got = repr(e)
    eq(got, reason, "%s: Python ssl reports %s" % (what, reason))


def refusals(d, pki, hellos):
    nosni, unknown = hellos
    alice = lib.TlsServer(pki, "alice.example.com")
    dflt = lib.TlsServer(pki, "default.example.net")
    route = "route alice.example.com " + alice.addr

    # No default at all: both kinds are refused.
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port, route],
                     tag="nodefault").start()
    expect_alert(port, nosni, lib.ALERT_HANDSHAKE_FAILURE,
                 "no default, no SNI")
    expect_alert(port, unknown, lib.ALERT_UNRECOGNIZED_NAME,
                 "no default, unknown name")
    expect_py_alert(port, None, pki.ca, "SSLV3_ALERT_HANDSHAKE_FAILURE",
                    "no default, no SNI")
    expect_py_alert(port, "nobody.example.com", pki.ca,
                    "TLSV1_UNRECOGNIZED_NAME", "no default, unknown name")
    cn, verify, out = lib.s_client(port, "alice.example.com", pki.ca)
    eq(cn, "alice.example.com", "no default: alice still routed")
    m = mux.wait_metrics(lambda m: m.get(
        "snimux_hello_failures_total", reason="refused") == 4)
    eq(m.get("snimux_hello_failures_total", reason="refused"), 4,
       "no default: hello_failures_total{reason=\"refused\"} counts 4")
    eq(m.get("snimux_connections_total", route="alice.example.com"), 1,
       "no default: connections_total{route=\"alice.example.com\"}")
    diag("no default: connections_total (no-sni) %s, (unknown) %s" %
         (m.get("snimux_connections_total", route="(no-sni)"),
          m.get("snimux_connections_total", route="(unknown)")))
    eq(mux.stop(), 0, "no default: snimux exits 0 on SIGTERM")

    # A default, but clients without a name are refused.
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port, route,
                         "default " + dflt.addr, "no-sni refuse"],
                     tag="nosni-refuse").start()
    expect_alert(port, nosni, lib.ALERT_HANDSHAKE_FAILURE,
                 "no-sni refuse, no SNI")
    expect_py_alert(port, None, pki.ca, "SSLV3_ALERT_HANDSHAKE_FAILURE",
                    "no-sni refuse, no SNI")
    cn, verify, out = lib.s_client(port, "nobody.example.com", pki.ca)
    eq(cn, "default.example.net",
       "no-sni refuse: an unknown name still goes to the default")
    m = mux.wait_metrics(lambda m: m.get(
        "snimux_hello_failures_total", reason="refused") == 2)
    eq(m.get("snimux_hello_failures_total", reason="refused"), 2,
       "no-sni refuse: hello_failures_total{reason=\"refused\"} counts 2")
    eq(m.get("snimux_connections_total", route="(unknown)"), 1,
       "no-sni refuse: connections_total{route=\"(unknown)\"}")
    eq(mux.stop(), 0, "no-sni refuse: snimux exits 0 on SIGTERM")

    # A default, but unknown names are refused.
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port, route,
                         "default " + dflt.addr, "unknown-sni refuse"],
                     tag="unknown-refuse").start()
    expect_alert(port, unknown, lib.ALERT_UNRECOGNIZED_NAME,
                 "unknown-sni refuse, unknown name")
    expect_py_alert(port, "nobody.example.com", pki.ca,
                    "TLSV1_UNRECOGNIZED_NAME",
                    "unknown-sni refuse, unknown name")
    cn, verify, out = lib.s_client(port, None, pki.ca)
    eq(cn, "default.example.net",
       "unknown-sni refuse: no SNI still goes to the default")
    m = mux.wait_metrics(lambda m: m.get(
        "snimux_hello_failures_total", reason="refused") == 2)
    eq(m.get("snimux_hello_failures_total", reason="refused"), 2,
       "unknown-sni refuse: hello_failures_total{reason=\"refused\"} "
       "counts 2")
    eq(m.get("snimux_connections_total", route="(no-sni)"), 1,
       "unknown-sni refuse: connections_total{route=\"(no-sni)\"}")
    eq(mux.stop(), 0, "unknown-sni refuse: snimux exits 0 on SIGTERM")


def main():
    d = lib.workdir()
    pki = lib.Pki(d, CERTS)
    cases = {c["name"]: c for c in lib.corpus()}
    hellos = (cases["openssl_s_client_noservername"]["bin"],
              cases["crafted_baseline_tls13"]["bin"])

    routing(d, pki, "127.0.0.1", "v4")
    if lib.have_ipv6():
        routing(d, pki, "::1", "v6")
    else:
        lib.skip("v6: routing over [::1]", "::1 cannot be bound here")
    wildcard_listener(d, pki)
    failover(d, pki)
    refusals(d, pki, hellos)


lib.run(main, limit=180)
