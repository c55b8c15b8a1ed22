# SPDX-License-Identifier: ISC
"""Backends that misbehave: one that refuses (the next one is tried, the
client does not notice), all refusing (the client is closed), one that
never answers the SYN (a listener whose accept queue is full: Linux
drops the SYN; with "timeout connect 1s" the next backend is tried, or
the client is closed with err="connect: ... timed out"), one that resets
mid-stream (the client is closed promptly, end=reset), and one that
shuts its sending side down at once while the client still sends 16 MiB
(every byte still reaches it, and the client sees EOF).  Each failed
attempt is counted in snimux_backend_failures_total."""

import hashlib
import random
import re
import socket
import struct
import threading
import time

import lib
from lib import diag, eq, ok

IO_TIMEOUT = 30

CASES = {k: lib.corpus_case(v) for k, v in (
    ("failover", "crafted_baseline_tls13"),
    ("dead", "python_ssl_sni"),
    ("silent-next", "curl_default"),
    ("silent", "go_crypto_tls_sni"),
    ("reset", "mbedtls_sni"),
    ("halfclose", "wolfssl_sni"))}
ROUTES = {k: lib.route_name(c["sni"]) for k, c in CASES.items()}


class Silent:
    """A listening socket that never answers a SYN: backlog 0 and its
    accept queue filled by connections nobody accepts."""

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(0)
        self.port = self.lsock.getsockname()[1]
        self.addr = lib.hostport("127.0.0.1", self.port)
        self.fill = []
        for _ in range(3):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self.fill.append(s)
        time.sleep(0.3)
        lib.defer(self.close)

    def silent(self):
        """True when a connect to it gets no answer within 1 s."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", self.port))
            return False
        except socket.timeout:
            return True
        except OSError:
            return False
        finally:
            s.close()

    def close(self):
        for s in self.fill:
            s.close()
        self.lsock.close()


def access_line(mux, route, timeout=10):
    """The access log line of the (last) connection on route."""
    pat = re.compile(r"conn=\d+ .*route=%s .*end=" % re.escape(route))
    box = []

    def find():
        box[:] = [ln for ln in mux.log().splitlines() if pat.search(ln)]
        return box
    lib.wait_until(find, timeout, 0.1)
    return box[-1] if box else ""


def resetting(conn):
    """Backend: read the hello, send 64 KiB, then reset."""
    conn.data += conn.sock.recv(1 << 16)
    conn.sock.sendall(b"r" * 65536)
    time.sleep(0.3)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
    conn.sock.close()


HALF_SIZE = 16 << 20


class HalfCloser:
    """Backend: shut its sending side at once, then read everything."""

    def __init__(self):
        self.digest = hashlib.sha256()
        self.n = 0

    def __call__(self, conn):
        conn.sock.shutdown(socket.SHUT_WR)
        while True:
            b = conn.sock.recv(1 << 18)
            if not b:
                break
            self.digest.update(b)
            self.n += len(b)


def main():
    d = lib.workdir()
    good = lib.RawBackend()
    reset = lib.RawBackend(handler=resetting)
    half = HalfCloser()
    halfb = lib.RawBackend(handler=half, io_timeout=120)
    dead1, dead2 = lib.free_port(), lib.free_port()
    sil = Silent()
    ok(sil.silent(), "a listener with a full accept queue does not answer "
       "a SYN (the silent backend works here)")
    port = lib.free_port()
    mux = lib.Snimux(d, [
        "listen 127.0.0.1:%d" % port,
        "route %s 127.0.0.1:%d %s" % (ROUTES["failover"], dead1, good.addr),
        "route %s 127.0.0.1:%d 127.0.0.1:%d" % (ROUTES["dead"], dead1,
                                                dead2),
        "route %s %s %s" % (ROUTES["silent-next"], sil.addr, good.addr),
        "route %s %s" % (ROUTES["silent"], sil.addr),
        "route %s %s" % (ROUTES["reset"], reset.addr),
        "route %s %s" % (ROUTES["halfclose"], halfb.addr),
        "timeout connect 1s"]).start()

    # A refused backend, then one that accepts.
    hello = CASES["failover"]["bin"]
    with lib.connect(port, timeout=IO_TIMEOUT) as s:
        s.sendall(hello + b"after")
        c = good.conn(0)
        if c is not None:
            lib.wait_until(lambda: len(c.data) >= len(hello) + 5, IO_TIMEOUT)
    eq(bytes(c.data) if c else None, hello + b"after",
       "first backend refuses: the second gets the hello byte for byte")
    ok(c is not None and c.done.wait(IO_TIMEOUT),
       "the second backend sees the client's EOF")
    ok(" end=eof" in access_line(mux, ROUTES["failover"]),
       "failover connection ends with end=eof",
       access_line(mux, ROUTES["failover"]))

    # Every backend refuses.
    with lib.connect(port, timeout=IO_TIMEOUT) as s:
        s.sendall(CASES["dead"]["bin"])
        how = lib.closed_by_peer(s, 15)
    ok(how in ("eof", "reset"), "all backends refuse: the client is closed",
       "still %s" % how)
    line = access_line(mux, ROUTES["dead"])
    ok(" end=connect" in line and "err=" in line,
       "all refused: access log says end=connect with an err", line)

    # A silent backend, then one that accepts.
    hello = CASES["silent-next"]["bin"]
    with lib.connect(port, timeout=IO_TIMEOUT) as s:
        s.sendall(hello)
        c = good.conn(1, timeout=15)
        if c is not None:
            lib.wait_until(lambda: len(c.data) >= len(hello), IO_TIMEOUT)
    eq(bytes(c.data) if c else None, hello,
       "first backend silent: after timeout connect 1s the second gets "
       "the hello")

    # Only a silent backend.
    with lib.connect(port, timeout=IO_TIMEOUT) as s:
        s.sendall(CASES["silent"]["bin"])
        how = lib.closed_by_peer(s, 15)
    ok(how in ("eof", "reset"), "only a silent backend: the client is "
       "closed", "still %s" % how)
    line = access_line(mux, ROUTES["silent"])
    ok(" end=connect" in line and re.search(r'err="connect[^"]*timed out',
                                            line, re.I),
       'silent backend: end=connect err="connect: ... timed out"', line)

    # The backend resets mid-stream.
    with lib.connect(port, timeout=IO_TIMEOUT) as s:
        s.sendall(CASES["reset"]["bin"])
        got = bytearray()
        how = "open"
        s.settimeout(10)
        try:
            while True:
                b = s.recv(1 << 16)
                if not b:
                    how = "eof"
                    break
                got += b
        except socket.timeout:
            how = "open"
        except ConnectionResetError:
            how = "reset"
    diag("client got %d bytes, then %s" % (len(got), how))
    ok(how in ("eof", "reset"),
       "backend resets mid-stream: the client is closed within 10 s",
       "still %s" % how)
    line = access_line(mux, ROUTES["reset"])
    ok(" end=reset" in line, "backend reset: access log says end=reset",
       line)

    # The backend shuts its sending side; the client sends 16 MiB.
    hello = CASES["halfclose"]["bin"]
    s = lib.connect(port, timeout=120)
    lib.defer(s.close)
    sent = hashlib.sha256(hello)
    errs = []

    def sender():
        try:
            s.sendall(hello)
            r = random.Random(5)
            for _ in range(HALF_SIZE >> 20):
                chunk = r.randbytes(1 << 20)
                s.sendall(chunk)
                sent.update(chunk)
                time.sleep(0.01)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            errs.append(e)
    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        first = s.recv(1 << 16)
        how = "eof" if first == b"" else "data %r" % first[:16]
    except OSError as e:
        how = repr(e)
    eq(how, "eof", "backend shut its sending side: the client sees EOF")
    t.join(120)
    eq(errs, [], "the client still sends hello + 16 MiB after that EOF")
    c = halfb.conn(0)
    ok(c is not None and c.done.wait(60),
       "the half-closing backend reads to the client's EOF")
    eq(half.n, len(hello) + HALF_SIZE, "it received hello + 16 MiB")
    eq(half.digest.hexdigest(), sent.hexdigest(),
       "SHA-256 of what it received = of what the client sent")
    s.close()
    line = access_line(mux, ROUTES["halfclose"])
    ok(" end=eof" in line and "c2b=%d " % (len(hello) + HALF_SIZE) in line,
       "half-close: end=eof with every byte counted", line)

    def settled(m):
        return m.get("snimux_open_connections") == 0
    m = mux.wait_metrics(settled, timeout=15)
    fails = {k: m.get("snimux_backend_failures_total", route=r)
             for k, r in ROUTES.items()}
    eq(fails, {"failover": 1, "dead": 2, "silent-next": 1, "silent": 1,
               "reset": 0, "halfclose": 0},
       "backend_failures_total counts each failed attempt per route")
    tot = {k: m.get("snimux_connections_total", route=r)
           for k, r in ROUTES.items()}
    eq(tot, {k: 1 for k in ROUTES}, "connections_total is 1 per route")
    eq(m.get("snimux_open_connections"), 0, "snimux_open_connections = 0")
    eq(mux.stop(), 0, "snimux exits 0")


lib.run(main, limit=240)
