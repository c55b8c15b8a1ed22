# SPDX-License-Identifier: ISC
"""Limits: with "max-connections 5", five idle relayed clients are kept
and a sixth is closed at once and counted as limit; once they leave, new
clients are relayed again.  With a descriptor limit of 128, one worker
and "max-connections 1000", clients are opened until accept(2) fails
with EMFILE and snimux logs that it pauses accepting: the relays already
established keep working, snimux does not spin (CPU well under one
core), and once some clients leave, new ones are accepted again."""

import time

import lib
from lib import diag, eq, ok

IO_TIMEOUT = 30
HELLO = lib.corpus_case("crafted_baseline_tls13")
ROUTE = lib.route_name(HELLO["sni"])


def echo(conn):
    """Backend: send back everything, until EOF."""
    while True:
        b = conn.sock.recv(1 << 16)
        if not b:
            return
        conn.sock.sendall(b)


def relayed(s, data=HELLO["bin"], timeout=10):
    """Send data (by default the hello) on s and wait for the echo
    backend to return it whole."""
    s.settimeout(timeout)
    try:
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            b = s.recv(1 << 16)
            if not b:
                return False
            got += b
        return got == data
    except OSError:
        return False


def clients(port, n):
    """n new connections to port, closed at the end of the test too."""
    socks = []
    for _ in range(n):
        s = lib.connect(port, timeout=IO_TIMEOUT)
        lib.defer(s.close)
        socks.append(s)
    return socks


def max_connections(d):
    rb = lib.RawBackend(handler=echo)
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                         "route %s %s" % (ROUTE, rb.addr),
                         "max-connections 5"], tag="max").start()
    socks = clients(port, 5)
    eq([relayed(s) for s in socks], [True] * 5,
       "max-connections 5: five clients are relayed")
    before = mux.hello_failures()
    s6 = lib.connect(port, timeout=IO_TIMEOUT)
    s6_port = s6.getsockname()[1]
    try:
        s6.sendall(HELLO["bin"])
    except OSError:
        pass
    how = lib.closed_by_peer(s6, 10)
    s6.close()
    ok(how in ("eof", "reset"), "the sixth is closed at once",
       "still %s after 10 s" % how)
    after = {}

    def limited():
        after.update(mux.hello_failures())
        return after.get("limit", 0) > before.get("limit", 0)
    lib.wait_until(limited, 10, 0.1)
    eq(after.get("limit", 0) - before.get("limit", 0), 1,
       "the sixth is counted as limit")
    lines = [l for l in mux.log().splitlines()
             if " end=limit" in l and "client=127.0.0.1:%d " % s6_port in l]
    eq(len(lines), 1, "the sixth has its access line, end=limit",
       "\n".join(lines) or mux.log_tail())
    eq(rb.count(), 5, "no backend saw the sixth")
    eq([relayed(s, b"still here", IO_TIMEOUT) for s in socks], [True] * 5,
       "the five relays still work")
    for s in socks:
        s.close()
    m = mux.wait_metrics(lambda m: m.get("snimux_open_connections") == 0, 15)
    eq(m.get("snimux_open_connections"), 0, "all five closed")
    fresh = clients(port, 5)
    eq([relayed(s) for s in fresh], [True] * 5,
       "after they left, five new clients are relayed")
    for s in fresh:
        s.close()
    eq(mux.stop(), 0, "snimux exits 0")


def emfile(d):
    rb = lib.RawBackend(handler=echo)
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                         "route %s %s" % (ROUTE, rb.addr),
                         "workers 1", "max-connections 1000",
                         "timeout hello 60s", "timeout connect 60s"],
                   tag="emfile")
    mux.start(nofile=128)
    ok("max-connections 1000" in mux.log(), "snimux starts with "
       "max-connections 1000 and a descriptor limit of 128",
       *mux.log_tail(5))
    diag("snimux holds %d descriptors at start" % mux.fds())
    live, stuck = [], []
    paused = False
    for _ in range(200):
        s = lib.connect(port, timeout=IO_TIMEOUT)
        lib.defer(s.close)
        if relayed(s, timeout=3):
            live.append(s)
            continue
        stuck.append(s)
        paused = lib.wait_until(lambda: "pausing" in mux.log(), 5)
        if paused:
            break
    diag("%d clients relayed, %d waiting; snimux holds %d descriptors" %
         (len(live), len(stuck), mux.fds()))
    ok(paused, "snimux logs that it pauses accepting when out of "
       "descriptors", *mux.log_tail(5))
    if not paused:
        return
    ok(len(live) > 10, "dozens of relays were established first",
       "only %d" % len(live))
    eq(sum(relayed(s, b"ping %d" % i, IO_TIMEOUT)
           for i, s in enumerate(live)), len(live),
       "every established relay still carries data while paused")
    share = lib.cpu_share(mux.proc.pid, 3)
    diag("snimux used %.1f%% of a core over 3 s while paused" %
         (100 * share))
    ok(share < 0.5, "snimux does not spin while out of descriptors",
       "used %.2f of a core" % share)
    # Clients that arrive while accepting is paused wait in the backlog.
    queued = []
    for _ in range(3):
        s = lib.connect(port, timeout=IO_TIMEOUT)
        lib.defer(s.close)
        s.sendall(HELLO["bin"])
        queued.append(s)
    for s in live[:20]:
        s.close()
    live = live[20:]

    def echoed(s):
        s.settimeout(20)
        got = b""
        try:
            while len(got) < len(HELLO["bin"]):
                b = s.recv(1 << 16)
                if not b:
                    break
                got += b
        except OSError:
            pass
        return got == HELLO["bin"]
    back = [echoed(s) for s in queued]
    ok(sum(back) >= len(queued) - 1, "after 20 clients left, clients "
       "waiting in the backlog are relayed", "relayed: %s" % back)
    # A client accepted with the last descriptor keeps its place: once
    # descriptors are free it is relayed, its hello intact.
    eq([echoed(s) for s in stuck], [True] * len(stuck),
       "the client caught by EMFILE is relayed once descriptors are free")
    dropped = [ln for ln in mux.log().splitlines() if "end=error" in ln]
    eq(dropped, [], "no client accepted while out of descriptors is "
       "dropped (end=error socket: Too many open files)")
    fresh = clients(port, 5)
    eq([relayed(s, timeout=20) for s in fresh], [True] * 5,
       "and new clients are accepted and relayed again")
    eq(sum(relayed(s, b"pong", IO_TIMEOUT) for s in live), len(live),
       "the older relays still work")
    for s in live + stuck + queued + fresh:
        s.close()
    m = mux.wait_metrics(lambda m: m.get("snimux_open_connections") == 0, 20)
    eq(m.get("snimux_open_connections"), 0, "snimux_open_connections = 0")
    eq(mux.stop(), 0, "snimux exits 0")


def main():
    d = lib.workdir()
    max_connections(d)
    emfile(d)


lib.run(main, limit=240)
