# SPDX-License-Identifier: ISC
"""64 MiB each way through snimux on one connection, with a half-close
in the middle: the client sends a real ClientHello and 64 MiB, then shuts
its sending side down while the backend is still sending; the backend
sends the rest of its 64 MiB only after it has seen that EOF, then
closes.  Both sides compare SHA-256 digests, and the byte counters must
match to the byte."""

import hashlib
import random
import re
import socket
import threading

import lib
from lib import eq, ok

SIZE = 64 << 20
CHUNK = 1 << 20
IO_TIMEOUT = 60


def stream(seed):
    """SIZE pseudo-random bytes in CHUNK pieces, the same for a seed."""
    r = random.Random(seed)
    for _ in range(SIZE // CHUNK):
        yield r.randbytes(CHUNK)


class Backend:
    """Reads everything while it sends; the second half of what it sends
    waits for the client's EOF."""

    def __init__(self):
        self.got = hashlib.sha256()
        self.ngot = 0
        self.sent = hashlib.sha256()
        self.eof_mid = None
        self.reader_error = None

    def __call__(self, conn):
        def reader():
            try:
                while True:
                    b = conn.sock.recv(1 << 18)
                    if not b:
                        break
                    self.got.update(b)
                    self.ngot += len(b)
            except OSError as e:
                self.reader_error = e
            conn.eof.set()

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        for i, chunk in enumerate(stream(2)):
            if i == SIZE // CHUNK // 2:
                self.eof_mid = conn.eof.wait(IO_TIMEOUT)
            conn.sock.sendall(chunk)
            self.sent.update(chunk)
        conn.sock.shutdown(socket.SHUT_WR)
        t.join(IO_TIMEOUT)


def main():
    d = lib.workdir()
    hello_case = [c for c in lib.corpus()
                  if c["name"] == "crafted_baseline_tls13"][0]
    hello = hello_case["bin"]
    route = lib.route_name(hello_case["sni"])

    back = Backend()
    rb = lib.RawBackend(handler=back, io_timeout=IO_TIMEOUT)
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                         "route %s %s" % (route, rb.addr),
                         "timeout idle 60s"]).start()

    s = lib.connect(port, timeout=IO_TIMEOUT)
    lib.defer(s.close)
    sent = hashlib.sha256(hello)
    send_error = []

    def sender():
        try:
            s.sendall(hello)
            for chunk in stream(1):
                s.sendall(chunk)
                sent.update(chunk)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            send_error.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    got = hashlib.sha256()
    ngot, how = lib.digest_to_end(s, got)
    t.join(IO_TIMEOUT)
    conn = rb.conn(0)
    ok(conn is not None and conn.done.wait(IO_TIMEOUT),
       "the backend got the connection and finished")

    eq(send_error, [], "client sent hello + 64 MiB and shut down writing")
    eq(how, "eof", "client read until a clean EOF")
    eq(back.eof_mid, True,
       "backend saw the client's EOF while it still had 32 MiB to send")
    eq(back.reader_error, None, "backend read without error")
    eq(back.ngot, len(hello) + SIZE, "backend received hello + 64 MiB")
    eq(back.got.hexdigest(), sent.hexdigest(),
       "backend's SHA-256 of what it received = client's of what it sent")
    eq(ngot, SIZE, "client received 64 MiB")
    eq(got.hexdigest(), back.sent.hexdigest(),
       "client's SHA-256 of what it received = backend's of what it sent")
    s.close()

    def settled(m):
        return (m.get("snimux_connections_active", route=route) == 0 and
                m.get("snimux_bytes_total", route=route,
                      direction="backend_to_client") == SIZE)
    m = mux.wait_metrics(settled)
    eq(m.get("snimux_bytes_total", route=route,
             direction="client_to_backend"), len(hello) + SIZE,
       "bytes_total client_to_backend = hello + 64 MiB")
    eq(m.get("snimux_bytes_total", route=route,
             direction="backend_to_client"), SIZE,
       "bytes_total backend_to_client = 64 MiB")
    eq(m.get("snimux_connections_total", route=route), 1,
       "connections_total = 1")
    eq(m.get("snimux_connections_active", route=route), 0,
       "connections_active back to 0")

    eq(mux.stop(), 0, "snimux exits 0 on SIGTERM")
    lines = [ln for ln in mux.log().splitlines() if "conn=" in ln]
    want = r"sni=%s route=%s backend=%s c2b=%d b2c=%d ms=\d+ end=" % (
        re.escape(hello_case["sni"]), re.escape(route), re.escape(rb.addr),
        len(hello) + SIZE, SIZE)
    ok(any(re.search(want, ln) for ln in lines),
       "access log line shows both byte counts", "looked for: " + want,
       *lines[-3:])


lib.run(main, limit=180)
