# SPDX-License-Identifier: ISC
"""Every ClientHello of the shared corpus, sent raw through snimux the
way the client sent it (in the listed TCP writes, 50 ms apart).  A valid
hello with a name reaches the routed backend R1 byte for byte, early
data included; a valid hello without a name reaches the default R2;
invalid input reaches no backend, snimux closes it and counts it."""

import collections
import socket

import lib
from lib import diag, eq, ok

IO_TIMEOUT = 10


def failures(mux):
    """{reason: count} of every hello_failures_total series."""
    found = mux.metrics().series("snimux_hello_failures_total")
    return {dict(labels).get("reason"): v for labels, v in found.items()}


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def valid_case(case, port, backend, index):
    """Send the hello, wait for the backend to hold all of it, close."""
    data = case["bin"]
    with lib.connect(port, timeout=IO_TIMEOUT) as s:
        lib.send_chunks(s, data, case["chunks"])
        conn = backend.conn(index)
        if conn is not None:
            lib.wait_until(lambda: len(conn.data) >= len(data) or
                           conn.eof.is_set(), IO_TIMEOUT, 0.01)
    got = bytes(conn.data) if conn else b""
    where = "R1" if case["sni"] else "R2 (default)"
    ok(got == data, "%s reaches %s byte for byte" % (case["name"], where),
       "connection at the backend: %s" % ("yes" if conn else "no"),
       "sent %d bytes, backend got %d, first difference at %d" %
       (len(data), len(got), first_difference(got, data)))
    if conn is not None:
        ok(conn.done.wait(IO_TIMEOUT),
           "%s: the backend sees EOF after the client closes" % case["name"])


def invalid_case(case, port, backends, mux):
    before = failures(mux)
    counts = [b.count() for b in backends]
    with lib.connect(port, timeout=IO_TIMEOUT) as s:
        lib.send_chunks(s, case["bin"], case["chunks"])
        truncated = "then EOF" in case["note"]
        if truncated:
            s.shutdown(socket.SHUT_WR)
        data, how = lib.read_to_end(s)
    ok(how in ("eof", "reset"),
       "%s: snimux closes the connection" % case["name"],
       "the client read %d bytes, then %s" % (len(data), how))
    if data:
        diag("%s: snimux answered %s" % (case["name"], data[:16].hex(" ")))
    after = {}

    def counted():
        after.update(failures(mux))
        return sum(after.values()) > sum(before.values())
    lib.wait_until(counted, 5, 0.1)
    grew = sorted(r for r in after if after[r] != before.get(r, 0))
    eq(sum(after.values()) - sum(before.values()), 1,
       "%s: hello_failures_total grows by 1" % case["name"],
       "counted as %s" % (grew or "nothing"))
    if case["name"] == "crafted_plain_http_get":
        eq(grew, ["not_tls"], "plain HTTP is counted as not_tls")
    elif not truncated:
        ok(grew and "timeout" not in grew and "refused" not in grew,
           "%s: a complete bad hello is rejected, not timed out" %
           case["name"], "counted as %s" % grew)
    eq([b.count() for b in backends], counts,
       "%s reaches no backend" % case["name"])
    return grew


def too_large(d, cases, r1):
    """A valid hello bigger than hello-max-size is closed and counted as
    too_large."""
    big = cases["crafted_hello_20k_spanning_records"]
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                         "route %s %s" % (lib.route_name(big["sni"]),
                                          r1.addr),
                         "hello-max-size 18k", "timeout hello 5s"],
                     tag="small").start()
    before = r1.count()
    with lib.connect(port, timeout=IO_TIMEOUT) as s:
        s.sendall(big["bin"])
        data, how = lib.read_to_end(s)
    ok(how in ("eof", "reset"),
       "hello-max-size 18k: a 20 KiB hello is closed", "then " + how)
    m = mux.wait_metrics(lambda m: m.get(
        "snimux_hello_failures_total", reason="too_large") == 1)
    eq(m.get("snimux_hello_failures_total", reason="too_large"), 1,
       "hello-max-size 18k: hello_failures_total{reason=\"too_large\"}")
    eq(r1.count(), before, "hello-max-size 18k: no backend reached")
    eq(mux.stop(), 0, "hello-max-size 18k: snimux exits 0 on SIGTERM")


def main():
    d = lib.workdir()
    cases = lib.corpus()
    ok(len(cases) > 0, "corpus found in %s (%d cases)" %
       (lib.CORPUS, len(cases)))
    r1 = lib.RawBackend()
    r2 = lib.RawBackend()
    port = lib.free_port()
    routes = sorted({lib.route_name(c["sni"]) for c in cases
                     if c["valid"] and c["sni"]})
    lines = ["listen 127.0.0.1:%d" % port, "default " + r2.addr,
             "timeout hello 5s", "hello-max-size 64k"]
    lines += ["route %s %s" % (r, r1.addr) for r in routes]
    mux = lib.Snimux(d, lines).start()

    total = collections.Counter()
    c2b = collections.Counter()
    seen = {r1: 0, r2: 0}
    reasons = collections.Counter()
    for case in cases:
        if case["valid"]:
            backend = r1 if case["sni"] else r2
            label = lib.route_name(case["sni"]) if case["sni"] else \
                "(no-sni)"
            valid_case(case, port, backend, seen[backend])
            seen[backend] += 1
            total[label] += 1
            c2b[label] += len(case["bin"])
        else:
            reasons.update(invalid_case(case, port, (r1, r2), mux))

    labels = routes + ["(no-sni)", "(unknown)"]

    def settled(m):
        return all(m.get("snimux_connections_active", route=r) == 0 and
                   m.get("snimux_bytes_total", route=r,
                         direction="client_to_backend") == c2b[r]
                   for r in labels)
    m = mux.wait_metrics(settled)
    bad = ["%s: total %s (want %d), c2b %s (want %d), b2c %s, active %s" %
           (r, m.get("snimux_connections_total", route=r), total[r],
            m.get("snimux_bytes_total", route=r,
                  direction="client_to_backend"), c2b[r],
            m.get("snimux_bytes_total", route=r,
                  direction="backend_to_client"),
            m.get("snimux_connections_active", route=r))
           for r in labels
           if (m.get("snimux_connections_total", route=r) != total[r] or
               m.get("snimux_bytes_total", route=r,
                     direction="client_to_backend") != c2b[r] or
               m.get("snimux_bytes_total", route=r,
                     direction="backend_to_client") != 0 or
               m.get("snimux_connections_active", route=r) != 0)]
    ok(not bad, "every route's connections and bytes counted exactly "
       "(%d routes)" % len(labels), *bad)
    ninvalid = len([c for c in cases if not c["valid"]])
    diag("invalid cases counted as: " + ", ".join(
        "%s %d" % kv for kv in sorted(reasons.items())))
    eq(m.sum("snimux_hello_failures_total"), ninvalid,
       "hello_failures_total sums to the %d invalid cases" % ninvalid)
    eq((r1.count(), r2.count()), (seen[r1], seen[r2]),
       "backends saw exactly the valid cases (R1, R2)")
    eq(mux.stop(), 0, "snimux exits 0 on SIGTERM")

    too_large(d, {c["name"]: c for c in cases}, r1)


lib.run(main, limit=150)
