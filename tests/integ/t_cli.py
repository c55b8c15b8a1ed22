# SPDX-License-Identifier: ISC
"""The command line, the configuration check, the control socket, reload,
stop and the access log of snimux."""

import os
import re
import signal
import socket
import stat
import subprocess
import time

import lib
from lib import diag, eq, ok

HEAD = ["# a comment line", "", "listen 127.0.0.1:18443"]

# (what, lines after HEAD, 1-based line numbers that must be reported)
BAD = [
    ("unknown directive", ["frobnicate yes"], [4]),
    ("listen port out of range", ["listen 127.0.0.1:99999"], [4]),
    ("listen without port", ["listen 127.0.0.1"], [4]),
    ("listen on a bad IPv4 address", ["listen 256.0.0.1:443"], [4]),
    ("listen on an unclosed IPv6 bracket", ["listen [::1:443"], [4]),
    ("backend without port", ["route a.example.com 10.0.0.1"], [4]),
    ("default port out of range", ["default 127.0.0.1:70000"], [4]),
    ("duration without unit", ["timeout idle 5"], [4]),
    ("duration with unknown unit", ["timeout idle 5parsecs"], [4]),
    ("negative duration", ["timeout idle -1s"], [4]),
    ("unknown timeout", ["timeout forever 5s"], [4]),
    ("size that is no number", ["hello-max-size lots"], [4]),
    ("no-sni policy unknown", ["no-sni maybe"], [4]),
    ("pattern *.*.", ["route *.*.example.com 10.0.0.1:443"], [4]),
    ("pattern with empty label", ["route foo..example.com 10.0.0.1:443"],
     [4]),
    ("pattern with a bad character", ["route exa$mple.com 10.0.0.1:443"],
     [4]),
    ("pattern * without dot", ["route *example.com 10.0.0.1:443"], [4]),
    ("pattern with * inside", ["route a.*.example.com 10.0.0.1:443"], [4]),
    ("duplicate route", ["route a.example.com 10.0.0.1:443",
                         "route b.example.com 10.0.0.1:443",
                         "route a.example.com 10.0.0.2:443"], [6]),
    ("duplicate route differing in case",
     ["route a.example.com 10.0.0.1:443",
      "route A.Example.COM 10.0.0.2:443"], [5]),
    ("route without backend", ["route a.example.com"], [4]),
    ("listen without address", ["listen"], [4]),
    ("default without backend", ["default"], [4]),
    ("stats without path", ["stats"], [4]),
    ("timeout without duration", ["timeout idle"], [4]),
    ("two errors, both reported", ["frobnicate", "listen 127.0.0.1:18444",
                                   "timeout idle 5parsecs"], [4, 6]),
]

GOOD = HEAD + [
    "listen [::1]:18443",
    "listen *:18445     # every address",
    "route alice.example.com 127.0.0.1:9001",
    "route *.example.net 127.0.0.1:9002 [::1]:9002 localhost:9003",
    "route .example.org [::1]:9004",
    "default 127.0.0.1:9005",
    "timeout hello 5s",
    "timeout connect 500ms",
    "timeout idle 10m",
    "timeout drain 1h",
    "hello-max-size 64k",
    "no-sni default",
    "unknown-sni refuse",
]

REPLY = b"pong!"


def write(path, lines):
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


def config_check(d):
    rc, out, err = lib.command([lib.SNIMUX, "-V"])
    ok(rc == 0 and re.fullmatch(r"snimux \S+\n", out),
       "-V prints \"snimux VERSION\" and exits 0",
       "status %d, stdout %r, stderr %r" % (rc, out, err))

    path = os.path.join(d, "good.conf")
    write(path, GOOD + ["stats " + os.path.join(d, "good.sock")])
    rc, out, err = lib.command([lib.SNIMUX, "-t", "-c", path])
    eq(rc, 0, "-t accepts a config that uses every directive", err)

    for i, (what, lines, want) in enumerate(BAD):
        path = os.path.join(d, "bad%d.conf" % i)
        write(path, HEAD + lines)
        rc, out, err = lib.command([lib.SNIMUX, "-t", "-c", path])
        form = re.compile(re.escape(path) + r":(\d+): \S")
        errs = [ln for ln in err.splitlines() if ln.strip()]
        got = [int(m.group(1)) for m in map(form.match, errs) if m]
        ok(rc == 1 and errs and len(got) == len(errs) and
           sorted(set(got)) == want,
           "-t: %s: exit 1, error at %s" %
           (what, ", ".join("line %d" % n for n in want)),
           "status %d, stderr:" % rc, *(errs or ["(empty)"]))


def not_running(d):
    path = os.path.join(d, "idle.conf")
    write(path, ["listen 127.0.0.1:18446",
                 "stats " + os.path.join(d, "idle.sock")])
    for cmd in ("stats", "metrics", "help"):
        rc, out, err = lib.command([lib.SNIMUX, "-c", path, cmd],
                                   timeout=10)
        ok(rc == 1 and err.strip() and not out,
           "%s without a running daemon: exit 1 and a message" % cmd,
           "status %d, stdout %r, stderr %r" % (rc, out, err))
    diag("without a daemon: " + err.strip())


def replying(conn):
    """Backend handler: answer REPLY to the first bytes, record all."""
    replied = False
    while True:
        b = conn.sock.recv(1 << 16)
        if not b:
            break
        conn.data += b
        if not replied:
            conn.sock.sendall(REPLY)
            replied = True


def relay(port, hello, backend, index, extra=b""):
    """Open a connection with hello + extra; returns (socket, backend
    connection) once the backend holds them and its reply came back."""
    s = lib.connect(port)
    lib.defer(s.close)
    s.sendall(hello + extra)
    conn = backend.conn(index)
    if conn is not None:
        lib.wait_until(lambda: len(conn.data) >= len(hello + extra), 5)
        s.recv(len(REPLY))
    return s, conn


def daemon(d, cases):
    alice = cases["openssl_s_client_default"]["bin"]    # alice.example.com
    bob = cases["curl_default"]["bin"]                  # bob.example.org
    r1, r2, r3 = (lib.RawBackend(handler=replying) for _ in range(3))
    port = lib.free_port()
    base = ["listen 127.0.0.1:%d" % port,
            "route alice.example.com " + r1.addr,
            "default " + r2.addr,
            "timeout drain 2s"]
    mux = lib.Snimux(d, base, tag="cli")

    # A socket file left behind by a daemon that died.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(mux.ctlsock)
    stale.close()
    mux.start()
    ok(True, "snimux starts over a stale control socket file")
    st = os.stat(mux.ctlsock)
    ok(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660,
       "control socket is a socket with mode 0660",
       "mode %o" % st.st_mode)

    rc, out, err = mux.ctl("help")
    ok(rc == 0 and all(w in out for w in ("stats", "metrics", "help")),
       "help lists stats, metrics and help", out, err)
    rc, out, err = mux.ctl("stats")
    ok(rc == 0 and all(w in out for w in
                       ("alice.example.com", "(no-sni)", "(unknown)")),
       "stats shows the route, (no-sni) and (unknown)", out, err)
    m = mux.metrics()
    ok(all(m.get("snimux_connections_total", route=r) == 0 for r in
           ("alice.example.com", "(no-sni)", "(unknown)")),
       "metrics has zero rows for the route, (no-sni) and (unknown)",
       m.text)

    c1, k1 = relay(port, alice, r1, 0, b"ping")
    ok(k1 is not None and bytes(k1.data) == alice + b"ping",
       "alice.example.com reaches its route")
    c2, k2 = relay(port, bob, r2, 0)
    ok(k2 is not None and bytes(k2.data) == bob,
       "bob.example.org goes to the default before the reload")
    c2.close()

    mux.write_config(base + ["route bob.example.org " + r3.addr])
    mux.reload()
    m = mux.wait_metrics(lambda m: m.get(
        "snimux_connections_total", route="bob.example.org") is not None)
    ok(m.get("snimux_connections_total", route="bob.example.org") == 0,
       "SIGHUP: the new route has its counters", m.text)
    c3, k3 = relay(port, bob, r3, 0)
    ok(k3 is not None and bytes(k3.data) == bob,
       "SIGHUP: bob.example.org now follows the new route")
    c3.close()
    c1.sendall(b"after reload")
    lib.wait_until(lambda: k1.data.endswith(b"after reload"), 5)
    ok(k1 is not None and k1.data.endswith(b"after reload"),
       "SIGHUP: a connection relayed before the reload still relays")

    bad = base + ["route bob.example.org " + r3.addr, "frobnicate"]
    mux.write_config(bad)
    mux.reload()
    where = "%s:%d:" % (mux.conf, len(bad) + 1)
    ok(lib.wait_until(lambda: where in mux.log(), 5),
       "SIGHUP with a bad config logs %s" % os.path.basename(where),
       *mux.log_tail(5))
    c4, k4 = relay(port, bob, r3, 1)
    ok(k4 is not None and bytes(k4.data) == bob,
       "bad reload: the old config stays in force")
    c4.close()
    eq(mux.proc.poll(), None, "bad reload: the daemon keeps running")

    cport = c1.getsockname()[1]
    c1.close()
    line = r"conn=\d+ client=127\.0\.0\.1:%d sni=alice\.example\.com " \
        r"route=alice\.example\.com backend=%s c2b=%d b2c=%d ms=\d+ " \
        r"end=\w+" % (cport, re.escape(r1.addr),
                      len(alice) + len(b"ping") + len(b"after reload"),
                      len(REPLY))
    ok(lib.wait_until(lambda: re.search(line, mux.log()), 5),
       "access log line with client, sni, route, backend, bytes, ms, end",
       "looked for: " + line, *mux.log_tail(5))

    c5, k5 = relay(port, alice, r1, 1)
    eq(mux.stop(), 0, "SIGTERM with a connection open: exit 0 after drain")
    _, how = lib.read_to_end(c5)
    ok(how in ("eof", "reset"), "the open connection is closed at exit",
       how)
    eq(mux.ctl("help")[0], 1, "after exit, help exits 1")
    diag("control socket file after exit: %s" %
         ("still there" if os.path.exists(mux.ctlsock) else "removed"))


def timeouts(d, cases):
    """timeout hello closes a silent or slow client and counts it;
    timeout idle closes a relayed connection without traffic."""
    alice = cases["openssl_s_client_default"]["bin"]
    r1 = lib.RawBackend(handler=replying)
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                         "route alice.example.com " + r1.addr,
                         "timeout hello 500ms", "timeout idle 1s"],
                     tag="timeouts").start()
    for what, data in [("a client that sends nothing", b""),
                       ("a client that sends half a hello",
                        alice[:len(alice) // 2])]:
        with lib.connect(port) as s:
            s.sendall(data)
            _, how = lib.read_to_end(s)
        ok(how in ("eof", "reset"), "timeout hello: %s is closed" % what,
           how)
    m = mux.wait_metrics(lambda m: m.get(
        "snimux_hello_failures_total", reason="timeout") == 2)
    eq(m.get("snimux_hello_failures_total", reason="timeout"), 2,
       "timeout hello: hello_failures_total{reason=\"timeout\"} counts 2")
    eq(r1.count(), 0, "timeout hello: no backend reached")

    s, k = relay(port, alice, r1, 0)
    _, how = lib.read_to_end(s)
    ok(how in ("eof", "reset") and k is not None and k.done.wait(5),
       "timeout idle: a quiet relayed connection is closed at both ends",
       how)
    ok(lib.wait_until(lambda: re.search(
        r"sni=alice\.example\.com .* end=idle", mux.log()), 5),
       "timeout idle: the access log says end=idle", *mux.log_tail(3))
    eq(mux.stop(), 0, "timeouts: snimux exits 0 on SIGTERM")


def idle_order(d, cases):
    """timeout idle counts from the last byte moved, also for a
    connection whose traffic came after a later one was opened: A moves a
    byte, then B opens, so A's idle deadline is earlier than B's and A
    must be closed first (one worker: one timer queue for both)."""
    alice = cases["openssl_s_client_default"]["bin"]
    r1 = lib.RawBackend(handler=replying)
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port, "workers 1",
                         "route alice.example.com " + r1.addr,
                         "timeout idle 3s"], tag="idle-order").start()
    a, ka = relay(port, alice, r1, 0)
    time.sleep(1)
    a.sendall(b"ping")
    lib.wait_until(lambda: ka is not None and ka.data.endswith(b"ping"), 5)
    time.sleep(1.2)
    b, _ = relay(port, alice, r1, 1)
    ports = {a.getsockname()[1]: "A", b.getsockname()[1]: "B"}
    for s in (a, b):
        lib.read_to_end(s)

    def closed():
        return re.findall(r"client=127\.0\.0\.1:(\d+) .* end=idle",
                          mux.log())
    lib.wait_until(lambda: len(closed()) == 2, 10)
    eq([ports.get(int(p)) for p in closed()], ["A", "B"],
       "timeout idle: the connection quiet for longer is closed first, "
       "though it was queued before the other had traffic",
       *mux.log_tail(3))
    eq(mux.stop(), 0, "idle order: snimux exits 0 on SIGTERM")


def idle_after_reload(d, cases):
    """A reload that shortens timeout idle: a connection relayed before it
    keeps the timeout it started with, a new one gets the new timeout,
    and each is closed by its own deadline, the newer one first (one
    worker: both in its timers)."""
    alice = cases["openssl_s_client_default"]["bin"]
    r1 = lib.RawBackend(handler=replying)
    port = lib.free_port()
    lines = ["listen 127.0.0.1:%d" % port, "workers 1",
             "route alice.example.com " + r1.addr]
    mux = lib.Snimux(d, lines + ["timeout idle 6s"],
                     tag="idle-reload").start()
    a, _ = relay(port, alice, r1, 0)
    mux.write_config(lines + ["timeout idle 2s"])
    mux.reload()
    lib.wait_until(lambda: "reloaded" in mux.log(), 5)
    time.sleep(0.3)             # the worker takes the new configuration
    b, _ = relay(port, alice, r1, 1)
    ports = {a.getsockname()[1]: "A", b.getsockname()[1]: "B"}
    for s in (a, b):
        lib.read_to_end(s)

    def closed():
        return re.findall(r"client=127\.0\.0\.1:(\d+) .* ms=(\d+) end=idle",
                          mux.log())
    lib.wait_until(lambda: len(closed()) == 2, 15)
    eq([ports.get(int(p)) for p, _ in closed()], ["B", "A"],
       "after a reload to a shorter timeout idle, the new connection is "
       "closed first", *mux.log_tail(4))
    ms = {ports.get(int(p)): int(m) for p, m in closed()}
    ok(ms.get("A", 0) >= 6000,
       "the connection relayed before the reload keeps its 6 s timeout",
       "lived %s ms" % ms.get("A"))
    ok(ms.get("B", 0) >= 2000,
       "the new connection gets the full 2 s of the new timeout",
       "lived %s ms" % ms.get("B"))
    eq(mux.stop(), 0, "idle after reload: snimux exits 0 on SIGTERM")


def many_timeouts(d):
    """More timeout values alive at once than a worker has timer lists:
    after each of nine reloads, each shortening timeout hello by a
    second, one more silent client.  Every client still gets its whole
    timeout and they are closed in deadline order, the last first."""
    port = lib.free_port()
    lines = ["listen 127.0.0.1:%d" % port, "workers 1",
             "default 127.0.0.1:%d" % lib.free_port()]
    mux = lib.Snimux(d, lines + ["timeout hello 11s"],
                     tag="many-timeouts").start()
    clients = {}
    for i, secs in enumerate(range(10, 1, -1)):
        mux.write_config(lines + ["timeout hello %ds" % secs])
        mux.reload()
        lib.wait_until(lambda: mux.log().count("reloaded") == i + 1, 5)
        time.sleep(0.3)         # the worker takes the new configuration
        s = lib.connect(port)
        lib.defer(s.close)
        clients[s.getsockname()[1]] = secs

    def closed():
        return re.findall(r"client=127\.0\.0\.1:(\d+) .* ms=(\d+) ",
                          mux.log())
    lib.wait_until(lambda: len(closed()) == len(clients), 30)
    order = [clients.get(int(p)) for p, _ in closed()]
    eq(order, sorted(clients.values()),
       "nine timeouts alive at once: clients closed in deadline order",
       *mux.log_tail(4))
    short = [(clients.get(int(p)), int(m)) for p, m in closed()
             if int(m) < 1000 * clients.get(int(p), 0)]
    eq(short, [], "nine timeouts alive at once: each client gets its "
       "whole timeout hello (timeout, ms lived)")
    eq(mux.stop(), 0, "many timeouts: snimux exits 0 on SIGTERM")


def cannot_start(d):
    port = lib.free_port()
    first = lib.Snimux(d, ["listen 127.0.0.1:%d" % port],
                       tag="first").start()
    second = lib.Snimux(d, ["listen 127.0.0.1:%d" % port], tag="second")
    nodir = lib.Snimux(d, ["listen 127.0.0.1:%d" % lib.free_port()],
                       tag="nodir",
                       ctlsock=os.path.join(d, "missing", "ctl.sock"))
    for what, mux in [("listen address in use", second),
                      ("control socket directory missing", nodir)]:
        try:
            rc = mux.launch().wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = "still running"
        ok(isinstance(rc, int) and rc != 0 and mux.log().strip(),
           "%s: snimux exits non-zero with a message" % what,
           "status %s" % rc, *mux.log_tail(3))
        diag("%s: %s" % (what, "".join(mux.log_tail(1)).strip()))
    eq(first.ctl("help")[0], 0, "the first daemon still answers")
    first.proc.send_signal(signal.SIGINT)
    try:
        rc = first.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = "still running"
    eq(rc, 0, "SIGINT stops the daemon with exit 0")


def main():
    d = lib.workdir()
    config_check(d)
    not_running(d)
    cases = {c["name"]: c for c in lib.corpus()}
    daemon(d, cases)
    timeouts(d, cases)
    idle_order(d, cases)
    idle_after_reload(d, cases)
    many_timeouts(d)
    cannot_start(d)


lib.run(main, limit=120)
