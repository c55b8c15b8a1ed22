# SPDX-License-Identifier: ISC
"""Clients that do not play along: a hello trickling one byte a second,
a client that connects and says nothing, one that resets mid-hello, a
hello over hello-max-size, input that is not TLS at all (with and
without a not-tls backend), a client that stops reading while its
backend streams 200+ MiB (snimux must not buffer it: its RSS stays flat
and the backend's send blocks), and 1,000 clients connecting and
aborting at once.  Each one is closed and counted for what it is, no
backend sees what it should not, and the daemon keeps serving with its
descriptors and open-connection count back where they started."""

import hashlib
import random
import select
import socket
import struct
import threading
import time

import lib
from lib import diag, eq, ok

IO_TIMEOUT = 30
HELLO = lib.corpus_case("crafted_baseline_tls13")
ROUTE = lib.route_name(HELLO["sni"])


def closed_by_peer(s, timeout):
    """Wait up to timeout for the peer to close s: "eof", "reset" or
    "open" (still open at the end).  Unlike lib.closed_by_peer, the
    timeout bounds the whole wait, s keeps its own timeout, and another
    error gives "error ..." instead of raising."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            continue
        try:
            b = s.recv(1 << 16)
        except ConnectionResetError:
            return "reset"
        except OSError as e:
            return "error %s" % e
        if not b:
            return "eof"
    return "open"


def closed_after(port, data, timeout):
    """Connect, send data (nothing when empty; a send that fails because
    snimux closed first is fine) and wait up to timeout for snimux to
    close: what closed_by_peer says."""
    s = lib.connect(port, timeout=IO_TIMEOUT)
    if data:
        try:
            s.sendall(data)
        except OSError:
            pass
    how = closed_by_peer(s, timeout)
    s.close()
    return how


def counted(mux, reason, before, timeout=10):
    """Wait until hello failure reason grew past before[reason]; returns
    the growth of every reason that grew."""
    after = {}

    def grew():
        after.clear()
        after.update(mux.hello_failures())
        return after.get(reason, 0) > before.get(reason, 0)
    lib.wait_until(grew, timeout, 0.1)
    return {r: after[r] - before.get(r, 0) for r in after
            if after[r] != before.get(r, 0)}


def rst_close(s):
    """Close s with a TCP reset (SO_LINGER 0)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def bad_clients(d):
    """One daemon with a 2 s hello timeout and an 18k hello cap."""
    rb = lib.RawBackend()
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                         "route %s %s" % (ROUTE, rb.addr),
                         "default %s" % rb.addr,
                         "timeout hello 2s",
                         "hello-max-size 18k"], tag="bad").start()
    hello = HELLO["bin"]

    # A hello one byte a second: never complete within 2 s.
    before = mux.hello_failures()
    s = lib.connect(port, timeout=IO_TIMEOUT)
    how = "open"
    for i in range(20):
        try:
            s.sendall(hello[i:i + 1])
        except OSError as e:
            how = "send failed: %s" % e
            break
        how = closed_by_peer(s, 1.0)
        if how != "open":
            break
    s.close()
    ok(how in ("eof", "reset") or how.startswith("send failed"),
       "hello at one byte a second: closed (timeout hello 2s)",
       "the connection was still %s after 20 bytes" % how)
    eq(counted(mux, "timeout", before), {"timeout": 1},
       "the trickling hello is counted as timeout, and only that")

    # Connect and send nothing.
    before = mux.hello_failures()
    how = closed_after(port, b"", 20)
    ok(how in ("eof", "reset"), "a client that sends nothing is closed",
       "still %s after 20 s" % how)
    eq(counted(mux, "timeout", before), {"timeout": 1},
       "the silent client is counted as timeout")

    # Half a hello, then a reset.
    before = mux.hello_failures()
    s = lib.connect(port, timeout=IO_TIMEOUT)
    s.sendall(hello[:len(hello) // 2])
    time.sleep(0.3)
    rst_close(s)
    eq(counted(mux, "aborted", before), {"aborted": 1},
       "a client reset mid-hello is counted as aborted")

    # A 20 KiB hello over an 18k cap.
    case = lib.corpus_case("crafted_hello_20k_spanning_records")
    before = mux.hello_failures()
    how = closed_after(port, case["bin"], 15)
    ok(how in ("eof", "reset"), "a 20 KiB hello over an 18k cap is closed",
       "still %s" % how)
    eq(counted(mux, "too_large", before), {"too_large": 1},
       "the oversized hello is counted as too_large")

    # Not TLS at all.
    rnd = random.Random(7)
    junk = bytes([0x5a]) + rnd.randbytes(511)
    for what, data in (("plain HTTP", b"GET / HTTP/1.1\r\nHost: a.example"
                        b"\r\nUser-Agent: t\r\n\r\n"),
                       ("an SSH banner", b"SSH-2.0-OpenSSH_9.6p1 Debian\r\n"),
                       ("random bytes", junk)):
        before = mux.hello_failures()
        how = closed_after(port, data, 15)
        ok(how in ("eof", "reset"), "%s: closed" % what, "still %s" % how)
        eq(counted(mux, "not_tls", before), {"not_tls": 1},
           "%s: counted as not_tls" % what)
    eq(rb.count(), 0, "no backend saw any of these clients")
    m = mux.metrics()
    ok(not any(dict(lab).get("route") == "(not-tls)"
               for lab in m.series("snimux_connections_total")),
       "no (not-tls) row without a not-tls line")
    eq(m.get("snimux_open_connections"), 0, "snimux_open_connections = 0")
    eq(mux.stop(), 0, "snimux exits 0")


def replying(conn):
    """Backend: read one HTTP request, answer it, read to EOF."""
    while b"\r\n\r\n" not in conn.data:
        b = conn.sock.recv(1 << 16)
        if not b:
            return
        conn.data += b
    conn.sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    conn.sock.shutdown(socket.SHUT_WR)
    while True:
        b = conn.sock.recv(1 << 16)
        if not b:
            return
        conn.data += b


def not_tls_backend(d):
    """With "not-tls BACKEND", plain HTTP goes there as sent."""
    rb = lib.RawBackend()
    web = lib.RawBackend(handler=replying)
    port = lib.free_port()
    lines = ["listen 127.0.0.1:%d" % port,
             "route %s %s" % (ROUTE, rb.addr),
             "default %s" % rb.addr,
             "not-tls %s" % web.addr]
    conf = lib.os.path.join(d, "nottls-check.conf")
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    rc, _, err = lib.command([lib.SNIMUX, "-t", "-c", conf])
    if not eq(rc, 0, "snimux -t accepts a not-tls line", err):
        return
    mux = lib.Snimux(d, lines, tag="nottls").start()
    req = (b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\n"
           b"Accept: */*\r\n\r\n")
    s = lib.connect(port, timeout=IO_TIMEOUT)
    s.sendall(req)
    s.shutdown(socket.SHUT_WR)
    answer, how = lib.read_to_end(s)
    s.close()
    eq(answer, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
       "plain HTTP: the client gets the not-tls backend's answer",
       "ended by %s" % how)
    conn = web.conn(0)
    ok(conn is not None and conn.done.wait(IO_TIMEOUT),
       "the not-tls backend got the connection and saw its end")
    eq(bytes(conn.data) if conn else None, req,
       "plain HTTP reaches the not-tls backend byte for byte")
    ssh = b"SSH-2.0-OpenSSH_9.6p1 Debian\r\n"
    with lib.connect(port, timeout=IO_TIMEOUT) as s:
        s.sendall(ssh)
        c2 = web.conn(1)
        if c2 is not None:
            lib.wait_until(lambda: len(c2.data) >= len(ssh), IO_TIMEOUT)
    eq(bytes(c2.data) if c2 else None, ssh,
       "an SSH banner reaches the not-tls backend byte for byte")
    eq(rb.count(), 0, "the TLS backend saw none of it")

    def settled(m):
        return (m.get("snimux_connections_total", route="(not-tls)") == 2 and
                m.get("snimux_connections_active", route="(not-tls)") == 0)
    m = mux.wait_metrics(settled, timeout=10)
    eq(m.get("snimux_connections_total", route="(not-tls)"), 2,
       "row (not-tls) counts both connections")
    eq(m.get("snimux_bytes_total", route="(not-tls)",
             direction="client_to_backend"), len(req) + len(ssh),
       "row (not-tls) counts the bytes the clients sent")
    eq(m.get("snimux_bytes_total", route="(not-tls)",
             direction="backend_to_client"), 40,
       "row (not-tls) counts the bytes the backend answered")
    eq(m.get("snimux_hello_failures_total", reason="not_tls"), 0,
       "nothing is counted as a not_tls failure")
    eq(mux.stop(), 0, "snimux exits 0")


SLOW_SIZE = 224 << 20
BLOCK = 1 << 20


class Streamer:
    """Backend: sends SLOW_SIZE bytes, counting what the kernel took."""

    def __init__(self):
        self.sent = 0
        self.digest = hashlib.sha256()
        self.error = None
        self.finished = threading.Event()

    def __call__(self, conn):
        base = random.Random(3).randbytes(BLOCK)
        try:
            conn.data += conn.sock.recv(1 << 16)   # the hello
            for i in range(SLOW_SIZE // BLOCK):
                chunk = struct.pack(">Q", i) + base[8:]
                self.digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    n = conn.sock.send(view)
                    view = view[n:]
                    self.sent += n
            conn.sock.shutdown(socket.SHUT_WR)
            while conn.sock.recv(1 << 16):
                pass
        except OSError as e:
            self.error = e
        self.finished.set()


def slow_reader(d):
    st = Streamer()
    rb = lib.RawBackend(handler=st, io_timeout=300)
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                         "route %s %s" % (ROUTE, rb.addr)],
                     tag="slow").start()
    s = lib.connect(port, timeout=120)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.sendall(HELLO["bin"])
    got = hashlib.sha256()
    n = 0
    while n < 4 << 20:
        b = s.recv(1 << 18)
        if not b:
            break
        got.update(b)
        n += len(b)
    rss0 = mux.rss_kib()
    diag("client read %d bytes, then stops reading; snimux VmRSS %d KiB" %
         (n, rss0))

    # Wait until the backend's sending stalls for 3 s in a row.
    last, since, end = -1, time.monotonic(), time.monotonic() + 90
    while time.monotonic() < end:
        cur = st.sent
        if cur != last:
            last, since = cur, time.monotonic()
        elif time.monotonic() - since >= 3:
            break
        time.sleep(0.2)
    stalled = st.sent
    rss1 = mux.rss_kib()
    diag("backend stalled after %d MiB sent; snimux VmRSS %d KiB" %
         (stalled >> 20, rss1))
    ok(stalled < SLOW_SIZE and not st.finished.is_set(),
       "the backend's send blocks while the client does not read",
       "sent %d of %d" % (stalled, SLOW_SIZE))
    bound = (64 if lib.sanitized() else 16) << 10
    ok(rss1 - rss0 <= bound,
       "snimux RSS stays flat while it holds a stalled stream (+%d KiB)" %
       (rss1 - rss0), "before %d KiB, after %d KiB, bound +%d KiB" %
       (rss0, rss1, bound))

    n, how = lib.digest_to_end(s, got, n)
    s.close()
    ok(st.finished.wait(60), "the backend finished")
    eq(st.error, None, "the backend sent without error")
    eq((n, how), (SLOW_SIZE, "eof"),
       "after resuming, the client reads all %d MiB and EOF" %
       (SLOW_SIZE >> 20))
    eq(got.hexdigest(), st.digest.hexdigest(),
       "SHA-256 of what the client got = of what the backend sent")
    rss2 = mux.rss_kib()
    ok(rss2 - rss0 <= bound, "snimux RSS still flat after the stream",
       "before %d KiB, after %d KiB" % (rss0, rss2))
    eq(mux.stop(), 0, "snimux exits 0")


def storm(d, pki):
    """1,000 clients connect at once and abort; a real TLS client is
    served afterwards."""
    srv = lib.TlsServer(pki, "base.example.com")
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                         "route %s %s" % (ROUTE, srv.addr),
                         "timeout hello 3s"], tag="storm").start()
    cn, _ = lib.py_tls(port, "base.example.com", pki.ca)
    eq(cn, "base.example.com", "a TLS client is served before the storm")
    fds0 = mux.fds()
    before = mux.hello_failures()
    socks = []
    try:
        for _ in range(1000):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        # Let the handshakes finish (bounded), then abort each one.
        poller = select.poll()
        pending = {s.fileno(): s for s in socks}
        for fd in pending:
            poller.register(fd, select.POLLOUT)
        end = time.monotonic() + 10
        while pending and time.monotonic() < end:
            for fd, _ in poller.poll(500):
                poller.unregister(fd)
                del pending[fd]
        diag("%d of 1000 connects still pending when aborting" %
             len(pending))
        for i, s in enumerate(socks):
            try:
                if i % 3 == 1:
                    s.send(HELLO["bin"][:i % 100 + 1])
            except OSError:
                pass
            if i % 3 == 2:
                s.close()            # a plain FIN
            else:
                rst_close(s)
    finally:
        for s in socks:
            s.close()
    m = mux.wait_metrics(lambda m: m.get("snimux_open_connections") == 0,
                         timeout=30)
    eq(m.get("snimux_open_connections"), 0,
       "snimux_open_connections back to 0 after the storm")
    after = mux.hello_failures()
    grew = {r: after[r] - before.get(r, 0) for r in after
            if after[r] != before.get(r, 0)}
    diag("hello failures counted for the storm: %s" % grew)
    ok(0 < sum(grew.values()) <= 1000 and
       set(grew) <= {"aborted", "invalid", "timeout"},
       "the storm is counted as aborted (or cut-short) hellos", grew)
    fds = lib.wait_until(lambda: mux.fds() <= fds0 and mux.fds(), 20)
    ok(fds and fds <= fds0, "snimux's descriptors back to %d" % fds0,
       "now %s" % mux.fds())
    cn, body = lib.py_tls(port, "base.example.com", pki.ca)
    eq(cn, "base.example.com", "a TLS client is served after the storm")
    ok(b"200 ok" in body.lower(), "and gets its answer")
    m = mux.wait_metrics(lambda m: m.get("snimux_open_connections") == 0,
                         timeout=10)
    eq(m.get("snimux_open_connections"), 0, "snimux_open_connections = 0")
    eq(mux.stop(), 0, "snimux exits 0")


def main():
    d = lib.workdir()
    pki = lib.Pki(d, {"base.example.com": ()})
    bad_clients(d)
    not_tls_backend(d)
    slow_reader(d)
    storm(d, pki)


lib.run(main, limit=300)
