# SPDX-License-Identifier: ISC
"""Soak: one snimux daemon ("workers 2") under a mix of clients for
SOAK_SECONDS (default 600; make check runs 30 s of it through
tests/t_soak.sh).

Backends (lib.RawBackend with handlers of their own):
  echo      sends back every byte it receives, half-close passed on
  sum       reads to EOF, then answers the SHA-256 of what it read and a
            random body of its own (with its SHA-256)
  flaky     closes some connections at once, or after one read, with a
            FIN or a reset (SO_LINGER 0); echoes the rest
  midreset  echoes, and resets half of its connections after a random
            number of bytes
Routes: some name the echo backend, two put closed ports in front of it
(each connection costs one or two refused attempts, and the client does
not notice), one each for flaky, midreset and sum; clients without a
name go to the default (echo); unknown names are refused with a TLS
alert ("unknown-sni refuse"); "hello-max-size 18k" makes the 20 KiB
corpus hello too large.

Clients, each kind in threads of its own, send real ClientHellos from the
shared corpus (the routes are the names those hellos carry):
  good      hello + random payload, read the whole echo, check SHA-256
  slow      hello trickled in small writes, then a trickled payload
  half      hello + payload, shutdown(SHUT_WR), read the echo (or the sum
            backend's answer) to EOF, check SHA-256
  flaky     to flaky and midreset: what comes back must be a prefix of
            what was sent
  abort     connect and close or reset at once, mid-hello, or mid-stream
  junk      invalid hellos, plain HTTP, a too-large hello, unknown names

At the end: every completed stream matched; open connections and every
route's active count return to 0; the counters account for every
connection the clients opened; descriptors and memory are back where they
started; SIGTERM exits 0.  No assertion depends on timing: time only
bounds the loops (SOAK_SECONDS, and a stall bound on every socket)."""

import collections
import hashlib
import os
import random
import re
import select
import socket
import struct
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "integ"))
import lib  # noqa: E402
from lib import diag, eq, ok  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS") or 600)
SEED = int(os.environ.get("SOAK_SEED") or random.randrange(1 << 32))
STALL = 60          # seconds without progress before a socket gives up
WORKERS = 2
POOLED_PIPES = 16   # per worker, PIPES_PER_WORKER / 2 (conn.c pipe_give)

# Client threads per kind.
THREADS = {"good": 4, "slow": 2, "half": 2, "flaky": 2, "abort": 2,
           "junk": 1}
# Longest pause between two sessions of a client, in seconds: the quick
# kinds are slowed down so that the log stays a reasonable size.
PAUSE = {"abort": 0.02, "junk": 0.02}

# ---------------------------------------------------------------- routes

ECHO_ROUTES = ["*.example.net", "base.example.com", "early.example.org",
               "last.example.org", "big.example.com"]
FAILOVER1 = "alice.example.com"   # a closed port, then echo
FAILOVER2 = "bob.example.org"     # two closed ports, then echo
ABORT_ROUTE = "dave.example.com"  # echo; only aborting clients use it
FLAKY_ROUTE = "grace.example.com"
MIDRESET_ROUTE = "erin.example.org"
SUM_ROUTE = "heidi.example.org"
EXACT = set(ECHO_ROUTES[1:]) | {FAILOVER1, FAILOVER2, ABORT_ROUTE,
                                FLAKY_ROUTE, MIDRESET_ROUTE, SUM_ROUTE}
HELLO_MAX = 18 << 10


def route_of(sni):
    """The row snimux counts a hello with this name in."""
    if sni is None:
        return "(no-sni)"
    name = lib.route_name(sni)
    if name in EXACT:
        return name
    if name.endswith(".example.net") and name.count(".") == 2:
        return "*.example.net"
    return "(unknown)"


def pools():
    """Corpus cases by what the soak does with them."""
    p = collections.defaultdict(list)
    for case in lib.corpus():
        if not case["valid"]:
            p["invalid"].append(case)
            continue
        if len(case["bin"]) > HELLO_MAX:
            p["too_large"].append(case)
            continue
        r = route_of(case["sni"])
        case["route"] = r
        if r == "(unknown)":
            p["unknown"].append(case)
        elif r == ABORT_ROUTE:
            p["abort"].append(case)
        elif r == FLAKY_ROUTE or r == MIDRESET_ROUTE:
            p["flaky"].append(case)
        elif r == SUM_ROUTE:
            p["sum"].append(case)
        else:
            p["good"].append(case)
    return p

# ------------------------------------------------------------- the tally


class Tally:
    """What the clients did, shared by every thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.opened = 0                         # connect() succeeded
        self.connect_errors = []
        self.hello_sent = collections.Counter()  # route: full hellos sent
        self.outcome = collections.Counter()     # (kind, outcome)
        self.streams = collections.Counter()     # kind: checked streams
        self.bytes = collections.Counter()       # kind: bytes checked
        self.bad = []                            # descriptions of failures
        self.nbad = 0

    def add(self, counter, key, n=1):
        with self.lock:
            getattr(self, counter)[key] += n

    def fail(self, what):
        with self.lock:
            self.nbad += 1
            if len(self.bad) < 20:
                self.bad.append(what)


T = Tally()


def rst(s):
    """Close s with a TCP reset (SO_LINGER 0)."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def open_conn(port):
    """A connection to snimux, counted once connect() succeeded; None
    (and the error recorded) when it failed."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(STALL)
    try:
        s.connect(("127.0.0.1", port))
    except OSError as e:
        s.close()
        with T.lock:
            if len(T.connect_errors) < 10:
                T.connect_errors.append(repr(e))
            else:
                T.connect_errors.append("...")
        return None
    with T.lock:
        T.opened += 1
    return s


def pump(s, out, want=None, shut=False, keep=False):
    """Send out while reading what comes back, until want bytes came
    (when want is set) or the peer closed.  shut: shutdown(SHUT_WR) once
    everything is sent.  Returns (how, received count, SHA-256 object,
    received bytes when keep)."""
    view = memoryview(out)
    sent = got = 0
    digest = hashlib.sha256()
    kept = bytearray()
    s.setblocking(False)
    poller = select.poll()
    last = time.monotonic()
    how = None
    if shut and not out:
        s.shutdown(socket.SHUT_WR)
    while how is None:
        if want is not None and got >= want:
            how = "done"
            break
        mask = select.POLLIN
        if sent < len(out):
            mask |= select.POLLOUT
        poller.register(s, mask)
        ev = poller.poll(500)
        poller.unregister(s)
        if not ev:
            if time.monotonic() - last > STALL:
                how = "stall"
            continue
        flags = ev[0][1]
        if flags & select.POLLOUT and sent < len(out):
            try:
                n = s.send(view[sent:sent + (1 << 16)])
                sent += n
                last = time.monotonic()
                if sent == len(out) and shut:
                    s.shutdown(socket.SHUT_WR)
            except BlockingIOError:
                pass
            except OSError as e:
                how = "send %s" % e.__class__.__name__
                break
        if flags & (select.POLLIN | select.POLLHUP | select.POLLERR):
            try:
                b = s.recv(1 << 16)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                how = "reset"
                break
            except OSError as e:
                how = "recv %s" % e.__class__.__name__
                break
            if not b:
                how = "eof"
                break
            digest.update(b)
            got += len(b)
            if keep:
                kept += b
            last = time.monotonic()
    return how, got, digest, kept


def payload(rng, small=False):
    """Random bytes of a random size: mostly small, some large."""
    x = rng.random()
    if small or x < 0.5:
        n = rng.randrange(0, 16 << 10)
    elif x < 0.9:
        n = rng.randrange(16 << 10, 512 << 10)
    else:
        n = rng.randrange(512 << 10, 4 << 20)
    return rng.randbytes(n)


def send_hello(s, case, what):
    """Send the whole hello; counted in hello_sent for its route."""
    try:
        s.sendall(case["bin"])
    except OSError as e:
        T.fail("%s %s: hello not sent: %r" % (what, case["name"], e))
        return False
    T.add("hello_sent", case["route"])
    return True

# ---------------------------------------------------------------- clients


def c_good(rng, port, P):
    case = rng.choice(P["good"])
    data = payload(rng)
    s = open_conn(port)
    if s is None:
        return
    try:
        if not send_hello(s, case, "good"):
            return
        want = len(case["bin"]) + len(data)
        how, got, dg, _ = pump(s, data, want=want)
        if how == "done" and got == want and dg.digest() == \
                hashlib.sha256(case["bin"] + data).digest():
            T.add("streams", "good")
            T.add("bytes", "good", want)
        else:
            T.fail("good %s: %d+%d bytes sent, %d back, %s, sha %s" %
                   (case["name"], len(case["bin"]), len(data), got, how,
                    "ok" if got == want else "-"))
    finally:
        s.close()


def c_slow(rng, port, P):
    case = rng.choice(P["good"])
    hello = case["bin"]
    data = payload(rng, small=True)
    s = open_conn(port)
    if s is None:
        return
    try:
        # The hello in up to 40 small writes, 2 to 30 ms apart.
        step = max(1, len(hello) // 40)
        off = 0
        try:
            while off < len(hello):
                n = rng.randint(1, 2 * step)
                s.sendall(hello[off:off + n])
                off += n
                time.sleep(rng.uniform(0.002, 0.03))
        except OSError as e:
            T.fail("slow %s: hello cut at byte %d: %r" %
                   (case["name"], off, e))
            return
        T.add("hello_sent", case["route"])
        # The payload in a few writes, then the whole echo.
        cuts = sorted(rng.randrange(0, len(data) + 1) for _ in range(4))
        prev = 0
        try:
            for c in cuts + [len(data)]:
                s.sendall(data[prev:c])
                prev = c
                time.sleep(rng.uniform(0.002, 0.03))
        except OSError as e:
            T.fail("slow %s: payload cut: %r" % (case["name"], e))
            return
        want = len(hello) + len(data)
        how, got, dg, _ = pump(s, b"", want=want)
        if how == "done" and dg.digest() == \
                hashlib.sha256(hello + data).digest():
            T.add("streams", "slow")
            T.add("bytes", "slow", want)
        else:
            T.fail("slow %s: %d bytes sent, %d back, %s" %
                   (case["name"], want, got, how))
    finally:
        s.close()


def c_half(rng, port, P):
    to_sum = rng.random() < 0.5
    case = rng.choice(P["sum"] if to_sum else P["good"])
    data = payload(rng)
    s = open_conn(port)
    if s is None:
        return
    try:
        if not send_hello(s, case, "half"):
            return
        sent = case["bin"] + data
        how, got, dg, kept = pump(s, data, shut=True, keep=to_sum)
        if not to_sum:
            if how == "eof" and got == len(sent) and \
                    dg.digest() == hashlib.sha256(sent).digest():
                T.add("streams", "half-echo")
                T.add("bytes", "half-echo", len(sent))
            else:
                T.fail("half-echo %s: %d bytes sent, %d back, %s" %
                       (case["name"], len(sent), got, how))
            return
        # The sum backend: SHA-256 of what it got, length, body, its SHA.
        good = how == "eof" and len(kept) >= 72
        if good:
            m = struct.unpack(">Q", kept[32:40])[0]
            body = bytes(kept[40:40 + m])
            good = (len(kept) == 72 + m and
                    bytes(kept[:32]) == hashlib.sha256(sent).digest() and
                    bytes(kept[40 + m:]) == hashlib.sha256(body).digest())
        if good:
            T.add("streams", "half-sum")
            T.add("bytes", "half-sum", len(sent) + len(kept))
        else:
            T.fail("half-sum %s: %d bytes sent, %d back, %s, answer "
                   "does not match" % (case["name"], len(sent), got, how))
    finally:
        s.close()


def c_flaky(rng, port, P):
    case = rng.choice(P["flaky"])
    data = payload(rng, small=rng.random() < 0.5)
    s = open_conn(port)
    if s is None:
        return
    try:
        if not send_hello(s, case, "flaky"):
            return
        sent = case["bin"] + data
        how, got, dg, kept = pump(s, data, want=len(sent), keep=True)
        if bytes(kept) != sent[:len(kept)]:
            T.fail("flaky %s: the %d bytes back are not a prefix of the "
                   "%d sent (%s)" % (case["name"], len(kept), len(sent),
                                     how))
        elif how == "done":
            T.add("streams", "flaky-whole")
            T.add("bytes", "flaky-whole", len(sent))
        elif how == "stall":
            T.fail("flaky %s: stalled after %d of %d bytes" %
                   (case["name"], got, len(sent)))
        else:
            T.add("streams", "flaky-cut")
            T.add("outcome", ("flaky-cut", how.split()[0]))
    finally:
        s.close()


ABORTS = ("close-at-once", "reset-at-once", "close-mid-hello",
          "reset-mid-hello", "reset-mid-stream", "close-mid-stream")


def c_abort(rng, port, P):
    case = rng.choice(P["abort"])
    mode = rng.choice(ABORTS)
    T.add("outcome", ("abort", mode))
    s = open_conn(port)
    if s is None:
        return
    hello = case["bin"]
    try:
        if mode.endswith("mid-hello"):
            s.sendall(hello[:rng.randrange(1, len(hello))])
            time.sleep(rng.uniform(0, 0.05))
        elif mode.endswith("mid-stream"):
            s.sendall(hello)
            # Less than the socket buffers hold: the echo is not read.
            s.settimeout(5)
            s.sendall(rng.randbytes(rng.randrange(0, 256 << 10)))
            # Read a little of the echo, or nothing.
            if rng.random() < 0.5:
                s.settimeout(0.2)
                try:
                    s.recv(rng.randrange(1, 1 << 16))
                except OSError:
                    pass
            time.sleep(rng.uniform(0, 0.05))
    except OSError:
        pass
    if mode.startswith("reset"):
        rst(s)
    else:
        s.close()


HTTP = (b"GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: soak\r\n"
        b"\r\n")


def c_junk(rng, port, P):
    x = rng.random()
    if x < 0.4:
        case = rng.choice(P["unknown"])
        kind = "unknown"
    elif x < 0.8:
        case = rng.choice(P["invalid"])
        kind = "invalid"
    elif x < 0.9:
        case = rng.choice(P["too_large"])
        kind = "too_large"
    else:
        case = {"name": "plain-http", "bin": HTTP}
        kind = "not_tls"
    s = open_conn(port)
    if s is None:
        return
    try:
        try:
            s.sendall(case["bin"])
            if kind == "unknown":
                T.add("hello_sent", "(unknown)")
            else:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass    # snimux may close a bad hello before all of it is in
        data, how = lib.read_to_end(s)
        if kind == "unknown":
            if lib.alert_of(data) == lib.ALERT_UNRECOGNIZED_NAME and \
                    how == "eof":
                T.add("streams", "junk-refused")
            else:
                T.fail("unknown name %s: got %r then %s, not an "
                       "unrecognized_name alert" %
                       (case["name"], data[:16], how))
        elif data or how not in ("eof", "reset"):
            T.fail("%s %s: got %d bytes then %s, want a plain close" %
                   (kind, case["name"], len(data), how))
        else:
            T.add("streams", "junk-" + kind)
    finally:
        s.close()


KINDS = {"good": c_good, "slow": c_slow, "half": c_half, "flaky": c_flaky,
         "abort": c_abort, "junk": c_junk}


def client_loop(kind, idx, port, P, stop):
    rng = random.Random("%d-%s-%d" % (SEED, kind, idx))
    n = 0
    while not stop.is_set():
        try:
            KINDS[kind](rng, port, P)
        except Exception:
            T.fail("%s client %d raised:\n%s" % (kind, idx,
                                                 traceback.format_exc()))
        n += 1
        if PAUSE.get(kind):
            stop.wait(rng.uniform(0, PAUSE[kind]))
    T.add("outcome", (kind, "sessions"), n)

# --------------------------------------------------------------- backends


def echo(conn):
    """Backend: send back every byte, then pass the half-close on."""
    s = conn.sock
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        s.sendall(b)
    s.shutdown(socket.SHUT_WR)


def summing(conn):
    """Backend: read to EOF, answer the SHA-256 of it, then a random body
    of its own with the body's SHA-256."""
    s = conn.sock
    h = hashlib.sha256()
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        h.update(b)
    rng = random.Random()
    body = rng.randbytes(rng.randrange(0, 1 << 20))
    s.sendall(h.digest() + struct.pack(">Q", len(body)) + body +
              hashlib.sha256(body).digest())
    s.shutdown(socket.SHUT_WR)


def flaky(conn):
    """Backend: a fifth closed at once, a fifth reset after one read, a
    fifth closed after one read; the rest echoed."""
    x = random.random()
    if x < 0.2:
        return
    if x < 0.6:
        conn.sock.recv(1 << 16)
        if x < 0.4:
            rst(conn.sock)
        return
    echo(conn)


def midreset(conn):
    """Backend: echo; half of the connections are reset once a random
    number of bytes went back."""
    s = conn.sock
    limit = random.randrange(0, 256 << 10) if random.random() < 0.5 \
        else None
    n = 0
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        if limit is not None and n + len(b) >= limit:
            s.sendall(b[:limit - n])
            rst(s)
            return
        s.sendall(b)
        n += len(b)
    s.shutdown(socket.SHUT_WR)


def prune(backends):
    """Forget the finished connections the backends keep (a soak makes
    tens of thousands); each backend's seen and errors add them up."""
    for b in backends:
        with b.lock:
            done = [c for c in b.conns if c.done.is_set()]
            b.conns[:] = [c for c in b.conns if not c.done.is_set()]
        b.seen = getattr(b, "seen", 0) + len(done)
        b.errors = getattr(b, "errors", 0) + sum(
            1 for c in done if c.error is not None)

# ------------------------------------------------------------ the daemon


def fd_kinds(pid):
    """{kind: count} of the descriptors of pid: socket, pipe, or what
    the link names (anon_inode:[eventpoll], a file)."""
    kinds = collections.Counter()
    d = "/proc/%d/fd" % pid
    try:
        names = os.listdir(d)
    except OSError:
        return None
    for n in names:
        try:
            link = os.readlink(os.path.join(d, n))
        except OSError:
            continue
        kinds[re.sub(r":\[\d+\]$", "", link)] += 1
    return dict(kinds)


def route_rows(m, name):
    return {dict(lab).get("route"): v for lab, v in m.series(name).items()}


def main():
    P = pools()
    for k in ("good", "abort", "flaky", "sum", "unknown", "invalid",
              "too_large"):
        if not ok(P[k], "corpus has cases for the %s clients" % k,
                  "corpus: %s" % lib.CORPUS):
            return
    diag("soak: %d s, seed %d (SOAK_SEED=%d repeats the choices), %s" %
         (SECONDS, SEED, SEED, "AddressSanitizer build" if lib.sanitized()
          else "plain build"))

    d = lib.workdir()
    be = {"echo": lib.RawBackend(handler=echo, io_timeout=STALL * 2),
          "sum": lib.RawBackend(handler=summing, io_timeout=STALL * 2),
          "flaky": lib.RawBackend(handler=flaky, io_timeout=STALL * 2),
          "midreset": lib.RawBackend(handler=midreset,
                                     io_timeout=STALL * 2)}
    for b in be.values():
        b.lsock.listen(256)
    dead1, dead2 = lib.free_port(), lib.free_port()
    port = lib.free_port()
    e = be["echo"].addr
    lines = ["listen 127.0.0.1:%d" % port, "workers %d" % WORKERS,
             "timeout hello 30s", "hello-max-size 18k",
             "default " + e, "unknown-sni refuse"]
    lines += ["route %s %s" % (r, e) for r in ECHO_ROUTES + [ABORT_ROUTE]]
    lines += ["route %s 127.0.0.1:%d %s" % (FAILOVER1, dead1, e),
              "route %s 127.0.0.1:%d 127.0.0.1:%d %s" % (FAILOVER2, dead1,
                                                         dead2, e),
              "route %s %s" % (FLAKY_ROUTE, be["flaky"].addr),
              "route %s %s" % (MIDRESET_ROUTE, be["midreset"].addr),
              "route %s %s" % (SUM_ROUTE, be["sum"].addr)]
    mux = lib.Snimux(d, lines, tag="main").start()
    pid = mux.proc.pid
    time.sleep(0.5)     # let the control client of start() go
    fds0 = fd_kinds(pid)
    diag("descriptors at start: %s" % fds0)

    stop = threading.Event()
    threads = []
    for kind, n in THREADS.items():
        for i in range(n):
            t = threading.Thread(target=client_loop, daemon=True,
                                 args=(kind, i, port, P, stop),
                                 name="%s-%d" % (kind, i))
            t.start()
            threads.append(t)

    t0 = time.monotonic()
    warm = min(60, max(5, SECONDS // 5))
    rss_warm = None
    rss_max = 0
    next_report = t0 + 60
    while True:
        now = time.monotonic()
        if now - t0 >= SECONDS:
            break
        time.sleep(min(1.0, SECONDS - (now - t0)))
        prune(be.values())
        rss = mux.rss_kib()
        if rss is None:
            break
        rss_max = max(rss_max, rss)
        if rss_warm is None and time.monotonic() - t0 >= warm:
            rss_warm = rss
            diag("after %d s of warm-up: VmRSS %d KiB, %d connections "
                 "opened" % (warm, rss, T.opened))
        if time.monotonic() >= next_report:
            next_report += 60
            diag("%d s: %d connections opened, %d streams checked, %d "
                 "failures, VmRSS %d KiB" %
                 (time.monotonic() - t0, T.opened,
                  sum(T.streams.values()), T.nbad, rss))
    stop.set()
    for t in threads:
        t.join(STALL * 3)
    alive = [t.name for t in threads if t.is_alive()]
    eq(alive, [], "every client thread stops by itself")
    ok(mux.proc.poll() is None, "snimux is still running after %d s" %
       SECONDS, "exit status %s" % mux.proc.poll())
    if mux.proc.poll() is not None:
        return

    # What the clients saw.
    diag("connections opened: %d" % T.opened)
    diag("checked streams: " + ", ".join(
        "%s %d (%.1f MiB)" % (k, v, T.bytes[k] / 1048576.0)
        for k, v in sorted(T.streams.items())))
    diag("outcomes: " + ", ".join(
        "%s/%s %d" % (k[0], k[1], v) for k, v in sorted(T.outcome.items())))
    eq(T.connect_errors, [], "every connect to snimux succeeded")
    ok(T.nbad == 0, "every completed stream's SHA-256 matched, every cut "
       "stream was a prefix, every bad client was closed (%d streams)" %
       sum(T.streams.values()), "%d failures; the first ones:" % T.nbad,
       *T.bad)
    for k in ("good", "slow", "half-echo", "half-sum", "junk-refused"):
        ok(T.streams[k] > 0, "at least one %s stream was checked" % k)

    # Back to idle.
    def idle(m):
        return (m.get("snimux_open_connections") == 0 and
                not any(route_rows(m, "snimux_connections_active")
                        .values()))
    m = mux.wait_metrics(idle, timeout=60)
    eq(m.get("snimux_open_connections"), 0, "snimux_open_connections = 0")
    active = {r: v for r, v in
              route_rows(m, "snimux_connections_active").items() if v}
    eq(active, {}, "snimux_connections_active is 0 on every route")

    # The counters.  Every accepted connection ends in exactly one of:
    # a route's total (conn_route() counts it as soon as the hello is
    # complete, including the refused ones, which are also counted as the
    # hello failure "refused"), or one hello failure (timeout, invalid,
    # not_tls, too_large, aborted; limit is counted for clients closed at
    # accept).  So
    #     sum(connections_total) + sum(hello_failures) - refused
    # is the number of connections snimux accepted.  A client that resets
    # before the accept is still accepted on Linux (the socket stays in
    # the accept queue, and the first read says ECONNRESET); none is lost
    # to a full backlog, since the listeners' SOMAXCONN backlog is far
    # above the number of client threads.  So it equals the number of
    # connect()s that succeeded.
    tot = route_rows(m, "snimux_connections_total")
    fails = mux.hello_failures()
    diag("connections_total: " + ", ".join(
        "%s %d" % kv for kv in sorted(tot.items())))
    diag("hello failures: " + ", ".join(
        "%s %d" % kv for kv in sorted(fails.items())))
    accounted = sum(tot.values()) + sum(fails.values()) - \
        fails.get("refused", 0)
    eq(accounted, T.opened, "sum of connections_total + hello failures - "
       "refused = the %d connections the clients opened" % T.opened)
    eq(fails.get("refused", 0), tot.get("(unknown)"),
       "every (unknown) connection was refused, and only those")
    eq(fails.get("limit", 0), 0, "no client hit a limit")
    # Every hello sent whole on a route other than the aborting clients'
    # one is counted there exactly; the aborting clients' route can only
    # count fewer than they sent (a reset may beat the hello's reading).
    want = {r: T.hello_sent.get(r, 0) for r in tot if r != ABORT_ROUTE}
    eq({r: tot[r] for r in want}, want,
       "every route's connections_total = the hellos sent to it whole")
    diag("%s: %d connections_total, from %d aborting clients" %
         (ABORT_ROUTE, tot.get(ABORT_ROUTE, 0),
          T.outcome[("abort", "sessions")]))
    bf = route_rows(m, "snimux_backend_failures_total")
    want_bf = {r: 0 for r in bf}
    want_bf[FAILOVER1] = tot.get(FAILOVER1, 0)
    want_bf[FAILOVER2] = 2 * tot.get(FAILOVER2, 0)
    eq(bf, want_bf, "backend failures: one per connection behind one "
       "closed port, two behind two, none elsewhere")
    moved = collections.Counter()
    for lab, v in m.series("snimux_bytes_total").items():
        moved[dict(lab).get("direction")] += v
    diag("bytes relayed: %d client to backend, %d backend to client" %
         (moved["client_to_backend"], moved["backend_to_client"]))

    # The access log: one line per accepted connection.
    ends = collections.Counter()
    for line in mux.log().splitlines():
        mt = re.search(r"^snimux: info: conn=\d+ .* end=(\S+)", line)
        if mt:
            ends[mt.group(1)] += 1
    diag("access log ends: " + ", ".join("%s %d" % kv
                                         for kv in sorted(ends.items())))
    eq(sum(ends.values()), T.opened,
       "one access log line per connection opened")
    # Each access line's end= is counted once: in hello_failures_total
    # for the hello failures (the reason is the end), in
    # connections_ended_total for the others.
    counted = dict(mux.endings())
    for why, v in fails.items():
        counted[why] = counted.get(why, 0) + v
    eq({k: v for k, v in counted.items() if v},
       {k: v for k, v in ends.items() if v},
       "hello_failures_total + connections_ended_total = the access "
       "log's end= counts, reason by reason")
    eq({k: ends[k] for k in ("error", "idle", "connect", "drain")
        if ends[k]}, {}, "no connection ended with error, idle, connect "
       "or drain")
    warnings = [ln for ln in mux.log().splitlines() if ": warning: " in ln]
    eq(warnings[:5], [], "no warning in the daemon's log")

    # Descriptors: the sockets and everything else exactly as at the
    # start; pipes may stay in the relay pool (at most POOLED_PIPES per
    # worker, two descriptors each).
    prune(be.values())
    cap = fds0.get("pipe", 0) + 2 * WORKERS * POOLED_PIPES

    def fds_back():
        k = fd_kinds(pid)
        if k is None:
            return None
        rest = {n: v for n, v in k.items() if n != "pipe"}
        want = {n: v for n, v in fds0.items() if n != "pipe"}
        return k if rest == want and k.get("pipe", 0) <= cap else None
    fds1 = lib.wait_until(fds_back, timeout=30, step=0.2) or fd_kinds(pid)
    diag("descriptors at the end: %s" % fds1)
    eq({n: v for n, v in fds1.items() if n != "pipe"},
       {n: v for n, v in fds0.items() if n != "pipe"},
       "descriptors other than pipes back to where they started")
    ok(fds1.get("pipe", 0) <= cap, "pipe descriptors at most the relay "
       "pool's (%d at start, %d now, cap %d)" %
       (fds0.get("pipe", 0), fds1.get("pipe", 0), cap))

    # Memory: back within 2 MiB of its level after the warm-up.
    rss_end = mux.rss_kib()
    diag("VmRSS: %s KiB after warm-up, %d KiB at most, %s KiB at the end" %
         (rss_warm, rss_max, rss_end))
    if rss_warm is None:
        lib.skip("memory back to its level after warm-up",
                 "the soak was shorter than its warm-up")
    elif lib.sanitized():
        lib.skip("memory back to its level after warm-up (+%d KiB)" %
                 (rss_end - rss_warm), "AddressSanitizer's quarantine "
                 "holds freed memory")
    else:
        ok(rss_end - rss_warm <= 2048, "memory back within 2 MiB of its "
           "level after warm-up (%+d KiB)" % (rss_end - rss_warm),
           "after warm-up %d KiB, at the end %d KiB" % (rss_warm, rss_end))

    eq(mux.stop(), 0, "snimux exits 0 on SIGTERM")
    for b in be.values():
        lib.wait_until(lambda: all(c.done.is_set() for c in list(b.conns)),
                       timeout=10)
    prune(be.values())
    for name, b in sorted(be.items()):
        diag("backend %s: %d connections, %d ended in an error on its "
             "side" % (name, getattr(b, "seen", 0), getattr(b, "errors", 0)))


lib.run(main, limit=SECONDS + 600)
