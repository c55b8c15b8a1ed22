# SPDX-License-Identifier: ISC
"""Reloads and stops under load.  Twenty connections stream a few MiB
each way, slowly, while the configuration is rewritten and SIGHUP'd 50
times (routes added, removed and changed, a listener added and one
removed): every stream ends with equal SHA-256 digests on both sides,
new connections follow the newest routes, a file with an error is
reported as FILE:LINE: message and the running configuration stays, and
the counters of an unchanged route pattern survive every reload.  Then
SIGTERM: streams in flight finish within "timeout drain" and the process
exits 0; with "timeout drain 2s" a stream that never ends is cut
(end=drain) and the exit status is still 0."""

import hashlib
import random
import re
import socket
import threading
import time

import lib
from lib import diag, eq, ok

IO_TIMEOUT = 60
STREAM = 3 << 20
CHUNK = 64 << 10
PAUSE = 0.15

BASE = lib.corpus_case("crafted_baseline_tls13")     # base.example.com
DAVE = lib.corpus_case("python_ssl_sni")             # dave.example.com
BOB = lib.corpus_case("curl_default")                # bob.example.org


def chunks(seed, size=STREAM, chunk=CHUNK):
    r = random.Random(seed)
    for _ in range(size // chunk):
        yield r.randbytes(chunk)


def pump_out(sock, seed, digest, size, pause, errors):
    """Send size pseudo-random bytes slowly, then shut the sending side."""
    try:
        for c in chunks(seed, size):
            sock.sendall(c)
            digest.update(c)
            if pause:
                time.sleep(pause)
        sock.shutdown(socket.SHUT_WR)
    except OSError as e:
        errors.append("send: %r" % e)


def pump_in(sock, digest, counter, errors):
    """Read to EOF; counter[0] counts the bytes."""
    try:
        while True:
            b = sock.recv(1 << 16)
            if not b:
                return
            digest.update(b)
            counter[0] += len(b)
    except OSError as e:
        errors.append("recv: %r" % e)


class StreamBackend:
    """For each connection: send STREAM bytes slowly (seeded by the
    connection's hello + index) while reading to EOF."""

    def __init__(self, size=STREAM, pause=PAUSE):
        self.size = size
        self.pause = pause
        # digest of what arrived -> (that digest, n, sent digest, errors)
        self.results = {}
        self.lock = threading.Lock()

    def __call__(self, conn):
        got, sent, n, errs = hashlib.sha256(), hashlib.sha256(), [0], []
        seed = conn.peer[1]
        t = threading.Thread(target=pump_out, daemon=True,
                             args=(conn.sock, seed, sent, self.size,
                                   self.pause, errs))
        t.start()
        pump_in(conn.sock, got, n, errs)
        t.join(IO_TIMEOUT * 2)
        # snimux's port towards the backend is not the client's: a
        # stream is known by the digest of what it carried.
        with self.lock:
            self.results[got.hexdigest()] = (got.hexdigest(), n[0],
                                             sent.hexdigest(), errs)


class StreamClient:
    """Hello, then STREAM bytes slowly while reading to EOF."""

    def __init__(self, port, hello, seed, size=STREAM, pause=PAUSE):
        self.sock = lib.connect(port, timeout=IO_TIMEOUT)
        lib.defer(self.sock.close)
        self.lport = self.sock.getsockname()[1]
        self.hello = hello
        self.seed = seed
        self.size = size
        self.pause = pause
        self.sent = hashlib.sha256(hello)
        self.got = hashlib.sha256()
        self.n = [0]
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.sock.sendall(self.hello)
        except OSError as e:
            self.errors.append("hello: %r" % e)
            return
        t = threading.Thread(target=pump_out, daemon=True,
                             args=(self.sock, self.seed, self.sent,
                                   self.size, self.pause, self.errors))
        t.start()
        pump_in(self.sock, self.got, self.n, self.errors)
        t.join(IO_TIMEOUT * 2)

    def wait(self, timeout):
        self.thread.join(timeout)
        return not self.thread.is_alive()


def check_streams(clients, back, what):
    """Every client finished, both digests agree both ways."""
    done = [c.wait(IO_TIMEOUT * 2) for c in clients]
    eq(sum(done), len(clients), "%s: every stream finished" % what)
    bad = []
    lib.wait_until(lambda: len(back.results) >= len(clients), 20)
    for c in clients:
        r = back.results.get(c.sent.hexdigest())
        if r is None:
            bad.append("client %d: no backend connection received "
                       "exactly its bytes" % c.seed)
            continue
        got_b, n_b, sent_b, errs_b = r
        if c.errors or errs_b:
            bad.append("client %d: errors %s %s" % (c.seed, c.errors,
                                                    errs_b))
        if got_b != c.sent.hexdigest() or n_b != len(c.hello) + c.size:
            bad.append("client %d: backend got %d bytes, digest %s" %
                       (c.seed, n_b, "equal" if got_b == c.sent.hexdigest()
                        else "different"))
        if c.got.hexdigest() != sent_b or c.n[0] != c.size:
            bad.append("client %d: got %d bytes, digest %s" %
                       (c.seed, c.n[0], "equal" if c.got.hexdigest() ==
                        sent_b else "different"))
    eq(bad, [], "%s: SHA-256 equal both ways on every stream" % what)


def lands_at(port, hello, backend, index, timeout=10):
    """Send hello to port; True when backend's index-th connection gets
    it byte for byte."""
    try:
        with lib.connect(port, timeout=IO_TIMEOUT) as s:
            s.sendall(hello)
            c = backend.conn(index, timeout)
            if c is None:
                return False
            lib.wait_until(lambda: len(c.data) >= len(hello), timeout)
            return bytes(c.data) == hello
    except OSError:
        return False


def loaded_count(mux):
    """Configurations taken: the first ("loaded") and each reload."""
    return len(re.findall(r": info: (?:re)?loaded ", mux.log()))


def refused(port):
    try:
        with lib.connect(port, timeout=2):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def reloads(d):
    back = StreamBackend()
    sb = lib.RawBackend(handler=back, io_timeout=IO_TIMEOUT)
    a, b, c = lib.RawBackend(), lib.RawBackend(), lib.RawBackend()
    p1, p2, p3 = lib.free_port(), lib.free_port(), lib.free_port()
    base = lib.route_name(BASE["sni"])
    dave = lib.route_name(DAVE["sni"])
    bob = lib.route_name(BOB["sni"])

    def config(i):
        """The i-th configuration; i = 0 first, 50 last."""
        last = i == 50
        lines = ["listen 127.0.0.1:%d" % p1,
                 "listen 127.0.0.1:%d" % (p3 if last else p2),
                 "route %s %s" % (base, sb.addr),
                 "route %s %s" % (dave, (b if last or i % 2 else a).addr),
                 "default %s" % c.addr,
                 "timeout idle 60s"]
        if not last:
            lines.append("route %s %s" % (bob, a.addr))
        if i % 3 == 1:
            lines.append("listen 127.0.0.1:%d" % p3)
        for k in range(i % 7):
            lines.append("route r%d-%d.example.com %s" % (i, k, a.addr))
        if i % 5 == 2:
            lines.append("route .example.net 127.0.0.1:%d" % lib.free_port())
        return lines

    mux = lib.Snimux(d, config(0), tag="reload").start()
    clients = [StreamClient(p1 if i % 4 else p2, BASE["bin"], i + 1)
               for i in range(20)]
    ok(lib.wait_until(lambda: sb.count() == 20, 20),
       "20 streams are relayed", "backend has %d" % sb.count())
    n0 = loaded_count(mux)
    applied = 0
    for i in range(1, 51):
        mux.write_config(config(i))
        mux.reload()
        if lib.wait_until(lambda: loaded_count(mux) >= n0 + i, 10, 0.05):
            applied += 1
        time.sleep(0.05)
    eq(applied, 50, "50 reloads, each logged as loaded")
    ok(mux.proc.poll() is None, "snimux still runs after 50 reloads")
    check_streams(clients, back, "20 streams across 50 reloads")

    # The newest routes and listeners.
    ok(lands_at(p1, DAVE["bin"], b, 0),
       "after the last reload, a changed route goes to its new backend")
    ok(lands_at(p1, BOB["bin"], c, 0),
       "a removed route's name goes to the default")
    ok(lands_at(p3, DAVE["bin"], b, 1),
       "the listener added by the last reload relays")
    ok(lib.wait_until(lambda: refused(p2), 10),
       "the listener removed by the last reload is closed")

    # Counters of an unchanged pattern survive every reload.
    m = mux.wait_metrics(lambda m: m.get("snimux_connections_active",
                                         route=base) == 0, 15)
    eq(m.get("snimux_connections_total", route=base), 20,
       "connections_total of the unchanged route counts all 20, across "
       "50 reloads")
    eq(m.get("snimux_bytes_total", route=base,
             direction="client_to_backend"),
       20 * (len(BASE["bin"]) + STREAM),
       "its client_to_backend bytes count every byte of the 20 streams")
    eq(m.get("snimux_bytes_total", route=base,
             direction="backend_to_client"), 20 * STREAM,
       "its backend_to_client bytes count every byte")

    # A configuration with errors: reported, the running one stays.
    bad = config(50)
    bad.insert(3, "route nobackend.example.com")
    bad.insert(5, "frobnicate yes")
    mux.write_config(bad)
    before = mux.log()
    mux.reload()
    conf = re.escape(mux.conf)
    new = lib.wait_until(
        lambda: re.findall(r"%s:\d+: .*" % conf, mux.log()[len(before):])
        if len(re.findall(r"%s:\d+: " % conf, mux.log()[len(before):])) >= 2
        else None, 10)
    diag("reload errors: %s" % new)
    # write_config puts "stats" first: list index k is line k + 2.
    ok(new and any(e.startswith("%s:5: " % mux.conf) for e in new) and
       any(e.startswith("%s:7: " % mux.conf) for e in new),
       "a reload with errors logs FILE:LINE: message for each (lines 5 "
       "and 7)", new)
    time.sleep(0.5)
    eq(loaded_count(mux), n0 + 50, "and does not load it")
    ok(mux.proc.poll() is None, "snimux keeps running")
    ok(lands_at(p1, DAVE["bin"], b, 2),
       "the running configuration stays in force")
    ok(lands_at(p3, DAVE["bin"], b, 3), "its listeners stay open")
    m = mux.metrics()
    eq(m.get("snimux_connections_total", route=base), 20,
       "counters survive the failed reload")
    eq(mux.stop(), 0, "snimux exits 0")
    lines = [ln for ln in mux.log().splitlines() if " end=" in ln and
             "route=%s " % base in ln]
    eq(sorted(set(re.findall(r" end=(\w+)", "\n".join(lines)))), ["eof"],
       "every stream's access line says end=eof")


def stopping(d):
    """SIGTERM with streams in flight, then a stream that never ends."""
    back = StreamBackend(size=2 << 20, pause=0.1)
    sb = lib.RawBackend(handler=back, io_timeout=IO_TIMEOUT)
    port = lib.free_port()
    base = lib.route_name(BASE["sni"])
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                         "route %s %s" % (base, sb.addr),
                         "timeout drain 60s"], tag="drain").start()
    clients = [StreamClient(port, BASE["bin"], 100 + i, size=2 << 20,
                            pause=0.1) for i in range(4)]
    ok(lib.wait_until(lambda: sb.count() == 4, 20), "4 streams relayed")
    time.sleep(0.5)
    mux.proc.send_signal(lib.signal.SIGTERM)
    ok(lib.wait_until(lambda: refused(port), 10),
       "on SIGTERM the listener closes at once")
    ok(mux.proc.poll() is None and all(c.thread.is_alive()
                                       for c in clients),
       "snimux waits while the streams are still in flight")
    check_streams(clients, back, "SIGTERM with 4 streams in flight")
    try:
        rc = mux.proc.wait(timeout=60)
    except lib.subprocess.TimeoutExpired:
        rc = "still running"
    eq(rc, 0, "snimux exits 0 once they are done")
    ok("drain time is up" not in mux.log(), "no stream was cut")

    # A stream that never ends, with a 2 s drain.
    rb = lib.RawBackend()
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                         "route %s %s" % (base, rb.addr),
                         "timeout drain 2s"], tag="cut").start()
    s = lib.connect(port, timeout=IO_TIMEOUT)
    lib.defer(s.close)
    s.sendall(BASE["bin"])
    ok(rb.conn(0) is not None, "an endless stream is relayed")
    stop = threading.Event()

    def trickle():
        try:
            while not stop.is_set():
                s.sendall(b"." * 100)
                time.sleep(0.1)
        except OSError:
            pass
    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    time.sleep(0.3)
    mux.proc.send_signal(lib.signal.SIGTERM)
    try:
        rc = mux.proc.wait(timeout=30)
    except lib.subprocess.TimeoutExpired:
        rc = "still running 30 s after SIGTERM"
    eq(rc, 0, "with timeout drain 2s, snimux exits 0 though the stream "
       "never ends")
    s.settimeout(10)
    try:
        while s.recv(1 << 16):
            pass
        how = "eof"
    except socket.timeout:
        how = "open"
    except OSError:
        how = "reset"
    stop.set()
    ok(how in ("eof", "reset"), "the endless stream's client is closed",
       "still %s" % how)
    log = mux.log()
    ok(re.search(r"drain time is up: closing 1 connection", log),
       "the log says drain time is up: closing 1 connection(s)",
       *mux.log_tail(5))
    ok(re.search(r"route=%s .* end=drain" % re.escape(base), log),
       "its access line says end=drain", *mux.log_tail(5))


def main():
    d = lib.workdir()
    reloads(d)
    stopping(d)


lib.run(main, limit=240)
