# SPDX-License-Identifier: ISC
"""Privileges and what strangers' names can do.

- `user nobody` (alone, with `group nogroup`, and with a group that is
  not nobody's primary one): once running, every thread of snimux has
  real, effective, saved and file-system uid and gid as configured, no
  other supplementary group (the test starts it with several) and no
  capability; a client that connects while snimux is starting is relayed
  only once that is so; its listener on a port below 1024 still accepts
  and relays a ClientHello byte for byte both ways, `snimux stats` still
  answers root, and SIGTERM still exits 0.
- The control socket: `stats PATH mode 0640 owner nobody group nogroup`
  gives a socket with exactly that mode, owner and group; without
  options it is 0660 and belongs to the user and group snimux started
  as (root); `owner` or `group` alone changes only that one.  Users are
  let in or kept out accordingly (`snimux stats` run as nobody and as
  daemon).
- 100,000 ClientHellos (fewer if the machine is slow, never under
  20,000) with random valid server names, some of them near misses of
  the one route or names of addresses, each on its own connection, 16
  at a time, from a client process of its own: every one reaches the
  default backend byte for byte, the route's backend sees none, no other
  backend appears in the log, the counters keep their three rows and
  (unknown) counts every one, memory stays within 2 MiB of its level
  after a warm-up of 2,000 and descriptors return to where they started.
- `unknown-sni refuse` with 10,000 random names: no backend sees a
  connection, each client gets the unrecognized_name alert, and
  hello_failures_total{reason="refused"} counts every one.

Run as "t_privileges.py --client PORT NAMES BUDGET MIN" the file is the
client of the last two parts (see client_main)."""

import collections
import grp
import json
import os
import pwd
import random
import re
import selectors
import socket
import stat
import string
import struct
import subprocess
import sys
import threading
import time

import lib
from lib import diag, eq, ok

IO_TIMEOUT = 30
BASE = lib.corpus_case("crafted_baseline_tls13")
ROUTE = lib.route_name(BASE["sni"])
WORKERS = 2
POOLED_PIPES = 16        # per worker: the relay keeps PIPES_PER_WORKER / 2

N_MAX = 100000           # names sent in the main run when time allows
N_MIN = 20000            # ... and never fewer
N_WARM = 2000            # warm-up before memory and descriptors are read
N_REFUSE = 10000
BUDGET = 100             # seconds of sending after which N_MIN is enough
CONCURRENCY = 16         # connections open at once by the client

# ------------------------------------------------------- hello rewriting


def _u16(b, o):
    return (b[o] << 8) | b[o + 1]


def _extensions(h):
    """Offset of the 2-byte extensions length of h, a ClientHello in
    exactly one TLS record."""
    if (len(h) < 9 or h[0] != 22 or 5 + _u16(h, 3) != len(h) or
            h[5] != 1 or int.from_bytes(h[6:9], "big") != len(h) - 9):
        raise ValueError("not one handshake record holding a ClientHello")
    o = 9 + 2 + 32                    # version, random
    o += 1 + h[o]                     # session id
    o += 2 + _u16(h, o)               # cipher suites
    o += 1 + h[o]                     # compression methods
    if o + 2 > len(h) or o + 2 + _u16(h, o) != len(h):
        raise ValueError("the extensions do not end where the hello does")
    return o


def _server_name(h):
    """(extensions offset, offset of the server_name extension, its
    data length)."""
    eo = _extensions(h)
    p = eo + 2
    while p + 4 <= len(h):
        if _u16(h, p) == 0:
            return eo, p, _u16(h, p + 2)
        p += 4 + _u16(h, p + 2)
    raise ValueError("no server_name extension")


def with_name(h, name):
    """h with its server_name extension replaced by one host_name entry
    carrying name; the lengths of the record, the handshake message, the
    extensions block, the extension and the name list are fixed up."""
    eo, p, el = _server_name(h)
    n = name.encode("ascii")
    ext = struct.pack(">HHHBH", 0, len(n) + 5, len(n) + 3, 0, len(n)) + n
    out = bytearray(h[:p] + ext + h[p + 4 + el:])
    struct.pack_into(">H", out, 3, len(out) - 5)
    out[6:9] = (len(out) - 9).to_bytes(3, "big")
    struct.pack_into(">H", out, eo, len(out) - eo - 2)
    return bytes(out)


def name_of(h):
    """The single host_name of a hello made by with_name, or None."""
    try:
        _, p, el = _server_name(h)
    except ValueError:
        return None
    d = h[p + 4:p + 4 + el]
    if (len(d) < 5 or _u16(d, 0) != el - 2 or d[2] != 0 or
            _u16(d, 3) != el - 5):
        return None
    return d[5:].decode("ascii", "replace")

# ---------------------------------------------------------- random names


VALID = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$")
LABEL = string.ascii_letters + string.digits + "-_"


def _label(r, n):
    return "".join(r.choice(LABEL) for _ in range(n))


def random_name(r, avoid=(ROUTE,)):
    """A random host name that snimux must accept (README: 1 to 255
    letters, digits, '-', '_' and '.', no empty label but for one
    trailing dot) and that no pattern in avoid matches exactly."""
    while True:
        k = r.random()
        if k < 0.04:        # near misses of the route
            lab = _label(r, r.randint(1, 8))
            name = r.choice([lab + "." + ROUTE, ROUTE + "." + lab,
                             ROUTE[:-1] + lab, lab + ROUTE,
                             ROUTE.replace(".", "-"),
                             ROUTE.replace(".", "_", 1),
                             ROUTE.split(".", 1)[1],
                             ROUTE.upper() + "." + lab + "."])
        elif k < 0.07:      # addresses and local names
            name = r.choice([
                "localhost", "localhost.", "LOCALHOST", "127.0.0.1",
                "127.0.0.1.", "0.0.0.0", "0", "1", "443", "8080",
                "%d.%d.%d.%d" % tuple(r.randint(0, 255) for _ in range(4)),
                "127.%d.%d.%d" % tuple(r.randint(0, 255) for _ in range(3)),
                "%d" % r.randint(0, 65535), "ip6-localhost",
                "metadata.google.internal", "169.254.169.254"])
        elif k < 0.08:      # the longest name allowed
            labs = [_label(r, 63) for _ in range(3)] + [_label(r, 63)]
            name = ".".join(labs)[:255]
            if name.endswith("."):
                name = name[:-1] + "x"
        else:
            labs = [_label(r, r.choice((1, 2, 3, 5, 8, 13, 20, 40, 63)))
                    for _ in range(r.randint(1, 6))]
            name = ".".join(labs)
            if r.random() < 0.1:
                name += "."
        if (1 <= len(name) <= 255 and VALID.match(name) and
                lib.route_name(name) not in avoid):
            return name

# ---------------------------------------------------------------- client


def client_main(argv):
    """--client PORT NAMES BUDGET MIN: send the hello of each name of
    file NAMES (one a line) on its own connection to 127.0.0.1:PORT,
    CONCURRENCY at a time; each client sends its hello, shuts its sending
    side and reads until the connection ends.  Once BUDGET seconds have
    passed and at least MIN were started, no more are started.  Prints
    one JSON object: {"started": N, "outcomes": {"eof:HEX": count, ...}}
    where HEX is what the client received (at most 64 bytes shown)."""
    port, path, budget, least = (int(argv[0]), argv[1], float(argv[2]),
                                 int(argv[3]))
    with open(path) as f:
        names = f.read().split()
    sel = selectors.DefaultSelector()
    outcomes = collections.Counter()
    t0 = time.monotonic()
    state = {"next": 0, "open": 0}

    def start():
        i = state["next"]
        if i >= len(names) or (i >= least and
                               time.monotonic() - t0 > budget):
            return
        state["next"] += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        st = {"hello": with_name(BASE["bin"], names[i]), "sent": 0,
              "got": bytearray(), "t": time.monotonic()}
        sel.register(s, selectors.EVENT_WRITE, st)
        state["open"] += 1

    def finish(s, how, st):
        sel.unregister(s)
        s.close()
        outcomes["%s:%s" % (how, bytes(st["got"][:64]).hex())] += 1
        state["open"] -= 1
        start()

    for _ in range(CONCURRENCY):
        start()
    while state["open"]:
        for key, ev in sel.select(1.0):
            s, st = key.fileobj, key.data
            try:
                if ev & selectors.EVENT_WRITE:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        finish(s, "error-" + os.strerror(err), st)
                        continue
                    st["sent"] += s.send(st["hello"][st["sent"]:])
                    if st["sent"] == len(st["hello"]):
                        s.shutdown(socket.SHUT_WR)
                        sel.modify(s, selectors.EVENT_READ, st)
                else:
                    b = s.recv(1 << 16)
                    if not b:
                        finish(s, "eof", st)
                    else:
                        st["got"] += b
            except BlockingIOError:
                pass
            except OSError as e:
                finish(s, "error-" + (e.strerror or str(e)), st)
        now = time.monotonic()
        for key in list(sel.get_map().values()):
            if now - key.data["t"] > IO_TIMEOUT:
                finish(key.fileobj, "stuck", key.data)
    print(json.dumps({"started": state["next"], "outcomes": outcomes}))
    return 0


def blast(d, port, names, tag, budget=600, least=None):
    """Run the client in a process of its own (so that it has a core of
    its own while the backends run in this one): (number started,
    Counter of outcomes, seconds)."""
    path = os.path.join(d, "names-%s.txt" % tag)
    with open(path, "w") as f:
        f.write("\n".join(names) + "\n")
    least = len(names) if least is None else least
    t0 = time.monotonic()
    rc, out, err = lib.command([sys.executable, os.path.abspath(__file__),
                                "--client", str(port), path, str(budget),
                                str(least)],
                               timeout=int(budget) + 300)
    secs = time.monotonic() - t0
    try:
        res = json.loads(out)
    except ValueError:
        raise RuntimeError("client: status %d: %s%s" % (rc, out, err))
    return res["started"], collections.Counter(res["outcomes"]), secs

# --------------------------------------------------------------- helpers


def status_ids(pid):
    """{"Uid": [real, eff, saved, fs], "Gid": [...], "Groups": [...],
    "CapEff": int, "CapPrm": int} of every thread of pid: {tid: dict}."""
    found = {}
    for tid in sorted(os.listdir("/proc/%d/task" % pid)):
        info = {}
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Uid", "Gid", "Groups"):
                    info[k] = [int(x) for x in v.split()]
                elif k in ("CapEff", "CapPrm"):
                    info[k] = int(v, 16)
        found[int(tid)] = info
    return found


def low_port():
    """A free TCP port below 1024 on 127.0.0.1, bind-tested."""
    ports = list(range(600, 1024))
    random.shuffle(ports)
    for port in ports:
        if port in lib._ports_given:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        lib._ports_given.add(port)
        return port
    raise RuntimeError("no free port below 1024")


def echo(conn):
    """Backend: send back every byte received, until EOF."""
    while True:
        b = conn.sock.recv(1 << 16)
        if not b:
            break
        conn.data += b
        conn.sock.sendall(b)


class Echo:
    """Backend handler: notes the credentials of every thread of snimux
    (process pid) when a connection arrives, then echoes."""

    def __init__(self):
        self.pid = None
        self.seen = []

    def __call__(self, conn):
        try:
            self.seen.append(status_ids(self.pid) if self.pid else {})
        except OSError as e:
            self.seen.append({"error": str(e)})
        echo(conn)


def start_racing(mux, port, backend):
    """Launch mux and connect a client to port as soon as the kernel
    takes it, racing the start-up; the client sends the hello and more,
    then shuts its sending side.  Waits until the control socket answers
    and returns the client's socket (None if it never connected)."""
    payload = BASE["bin"] + b"early bytes after the hello"
    proc = mux.launch()
    backend.handler.pid = proc.pid
    s = None
    refused = 0
    end = time.monotonic() + 10
    while s is None and time.monotonic() < end and proc.poll() is None:
        try:
            s = lib.connect(port, timeout=IO_TIMEOUT)
        except ConnectionRefusedError:
            refused += 1
            time.sleep(0.001)
    if s is not None:
        lib.defer(s.close)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
    ready = mux.ctl("help")[0] == 0
    diag("%s: early client connected after %d refused attempts; control "
         "socket %s once its hello was sent" % (
             mux.tag, refused, "answering" if ready else "not answering"))
    state = lib.wait_until(lambda: "exited" if proc.poll() is not None
                           else mux.ctl("help")[0] == 0, 10, 0.05)
    if state is not True:
        raise RuntimeError("snimux -c %s did not start: %s" % (
            mux.conf, "".join(mux.log_tail())))
    return s


def fd_kinds(pid):
    """{"socket": n, "pipe": n, other target: n} for the descriptors of
    pid."""
    kinds = collections.Counter()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        kinds[t.split(":", 1)[0] if t.startswith(("socket:", "pipe:",
                                                  "anon_inode:")) else t] += 1
    return dict(kinds)


def without_pipes(k):
    return {n: v for n, v in k.items() if n != "pipe"}


class StatsMux(lib.Snimux):
    """A Snimux whose stats line carries options ("mode 0640 ...")."""

    def __init__(self, d, lines, tag, opts):
        self.opts = opts
        super().__init__(d, lines, tag=tag)

    def write_config(self, lines):
        super().write_config(lines)
        with open(self.conf) as f:
            first, rest = f.read().split("\n", 1)
        if first != "stats " + self.ctlsock:
            raise RuntimeError("lib.Snimux wrote %r first" % first)
        with open(self.conf, "w") as f:
            f.write("%s %s\n%s" % (first, self.opts, rest))


def ctl_as(d, sock, user, group):
    """`snimux stats` run as user and group (no other group) against
    control socket sock: its exit status and stderr."""
    conf = os.path.join(d, "client-%s.conf" % os.path.basename(sock))
    with open(conf, "w") as f:
        f.write("stats %s\n" % sock)
    os.chmod(conf, 0o644)
    try:
        p = subprocess.run([lib.SNIMUX, "-c", conf, "stats"], user=user,
                           group=group, extra_groups=[],
                           capture_output=True, stdin=subprocess.DEVNULL,
                           timeout=lib.CMD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return -1, "timed out"
    return p.returncode, p.stderr.decode(errors="replace").strip()


def route_labels(m):
    return sorted({dict(lab).get("route") for (_, lab) in m
                   if "route" in dict(lab)})


def stats_rows(mux):
    """First column of the route table printed by `snimux stats`."""
    rc, out, err = mux.ctl("stats")
    rows = []
    for line in out.splitlines()[1:]:
        if not line.strip():
            break
        rows.append(line.split()[0])
    return rc, rows, out + err

# ----------------------------------------------------------------- parts


def part_drop(d, nobody):
    """user nobody [+ group]: the ids of every thread, a relayed hello on
    a port below 1024, stats as root."""
    extra = [g.gr_gid for g in grp.getgrall()
             if g.gr_name in ("adm", "daemon", "sys", "staff", "users")]
    old = os.getgroups()
    os.setgroups(sorted(set(old + [0] + extra)))
    lib.defer(os.setgroups, old)
    mine = status_ids(os.getpid())[os.getpid()]["Groups"]
    diag("snimux starts with supplementary groups %s" % mine)
    ok(len(mine) > 1, "the test runs snimux with several supplementary "
       "groups", mine)

    variants = [("user", ["user nobody"], nobody.pw_gid,
                 "its primary group %d" % nobody.pw_gid)]
    try:
        ng = grp.getgrnam("nogroup")
        variants.append(("user-nogroup", ["user nobody", "group nogroup"],
                         ng.gr_gid, "nogroup (%d)" % ng.gr_gid))
    except KeyError:
        lib.skip("user nobody + group nogroup", "no group nogroup here")
    other = [g for g in grp.getgrall()
             if g.gr_gid not in (0, nobody.pw_gid)]
    other.sort(key=lambda g: (g.gr_name != "daemon", g.gr_gid))
    if other:
        g = other[0]
        variants.append(("user-group", ["user nobody",
                                        "group %s" % g.gr_name],
                         g.gr_gid, "%s (%d), not nobody's primary group"
                         % (g.gr_name, g.gr_gid)))
    muxes = []
    for tag, lines, gid, what in variants:
        port = low_port()
        backend = lib.RawBackend(handler=Echo())
        mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                             "route %s %s" % (ROUTE, backend.addr),
                             "workers %d" % WORKERS] + lines, tag=tag)
        early = start_racing(mux, port, backend)
        muxes.append((tag, lines, gid, what, port, mux, backend, early))
    os.setgroups(old)

    payload = BASE["bin"] + b"early bytes after the hello"
    for tag, lines, gid, what, port, mux, backend, early in muxes:
        conf = " + ".join(lines)
        ids = status_ids(mux.proc.pid)
        diag("%s: %d threads, thread %d: %s" % (
            conf, len(ids), mux.proc.pid, ids.get(mux.proc.pid)))
        ok(len(ids) >= 1 + WORKERS, "%s: main thread and %d workers seen "
           "in /proc" % (conf, WORKERS), ids)
        eq({t: i.get("Uid") for t, i in ids.items()},
           {t: [nobody.pw_uid] * 4 for t in ids},
           "%s: every thread's real, effective, saved and fs uid are "
           "nobody's (%d)" % (conf, nobody.pw_uid))
        eq({t: i.get("Gid") for t, i in ids.items()},
           {t: [gid] * 4 for t in ids},
           "%s: every thread's real, effective, saved and fs gid are %s"
           % (conf, what))
        bad = {t: i.get("Groups") for t, i in ids.items()
               if set(i.get("Groups", [])) - {gid}}
        eq(bad, {}, "%s: no supplementary group left but %d" % (conf, gid))
        eq({t: (i.get("CapEff"), i.get("CapPrm")) for t, i in ids.items()},
           {t: (0, 0) for t in ids},
           "%s: no capability left (CapEff, CapPrm 0)" % conf)

        # The client that connected while snimux was starting.
        s = early
        got, how = lib.read_to_end(s) if s else (None, "never connected")
        if s:
            s.close()
        c = backend.conn(0)
        eq((got, how), (payload, "eof"), "%s: a client connecting during "
           "start-up is relayed both ways byte for byte" % conf)
        first = backend.handler.seen[0] if backend.handler.seen else {}
        eq(sorted({tuple(i.get("Uid", ())) for i in first.values()}),
           [(nobody.pw_uid,) * 4], "%s: when that first client reaches "
           "the backend, snimux already runs as nobody" % conf, first)

        # A client once it is up.
        with lib.connect(port, timeout=IO_TIMEOUT) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            got, how = lib.read_to_end(s)
        c = backend.conn(1)
        ok(c is not None and c.done.wait(IO_TIMEOUT),
           "%s: listener on port %d (below 1024) accepts and relays %s"
           % (conf, port, BASE["sni"]))
        eq(bytes(c.data) if c else None, payload,
           "%s: the backend gets the hello byte for byte" % conf)
        eq((got, how), (payload, "eof"),
           "%s: the client gets the backend's answer byte for byte, then "
           "EOF" % conf)

        def relayed(m):
            return (m.get("snimux_connections_total", route=ROUTE) == 2 and
                    m.get("snimux_open_connections") == 0)
        mux.wait_metrics(relayed, timeout=IO_TIMEOUT)
        rc, out, err = mux.ctl("stats")
        row = [ln.split() for ln in out.splitlines()
               if ln.split()[:1] == [ROUTE]]
        ok(rc == 0 and row and row[0][2] == "2",
           "%s: `snimux stats` run as root answers: %s total 2"
           % (conf, ROUTE), "rc=%d" % rc, out, err)
    for tag, lines, gid, what, port, mux, backend, early in muxes:
        eq(mux.stop(), 0, "%s: SIGTERM: exits 0" % " + ".join(lines))


def part_socket(d, nobody):
    """The control socket's mode, owner and group, and who gets in."""
    os.chmod(d, 0o755)      # so that nobody and daemon reach the sockets
    try:
        ng = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        lib.skip("stats ... group nogroup", "no group nogroup here")
        return
    try:
        dm = pwd.getpwnam("daemon")
    except KeyError:
        dm = None
    cases = [
        ("sock-full", "mode 0640 owner nobody group nogroup",
         0o640, nobody.pw_uid, ng),
        ("sock-default", "", 0o660, os.geteuid(), os.getegid()),
        ("sock-owner", "owner nobody", 0o660, nobody.pw_uid, os.getegid()),
        ("sock-group", "group nogroup", 0o660, os.geteuid(), ng),
        ("sock-mode", "mode 0600", 0o600, os.geteuid(), os.getegid()),
    ]
    muxes = []
    for tag, opts, mode, uid, gid in cases:
        mux = StatsMux(d, ["listen 127.0.0.1:%d" % lib.free_port(),
                           "route %s 127.0.0.1:%d" % (ROUTE,
                                                      lib.free_port())],
                       tag, opts).start()
        muxes.append((tag, opts, mode, uid, gid, mux))
    for tag, opts, mode, uid, gid, mux in muxes:
        line = "stats PATH" + (" " + opts if opts else "")
        st = os.stat(mux.ctlsock)
        eq((stat.S_ISSOCK(st.st_mode), oct(stat.S_IMODE(st.st_mode)),
            st.st_uid, st.st_gid), (True, oct(mode), uid, gid),
           "%s: a socket, mode %s, owner %d, group %d" % (
               line, oct(mode), uid, gid))
        rc, _, err = mux.ctl("stats")
        eq(rc, 0, "%s: `snimux stats` as root answers" % line, err)

    def expect(tag, user, group, allowed, why):
        mux = [m for t, _, _, _, _, m in muxes if t == tag][0]
        opts = [o for t, o, _, _, _, _ in muxes if t == tag][0]
        rc, err = ctl_as(d, mux.ctlsock, user, group)
        ok((rc == 0) == allowed, "stats PATH %s: `snimux stats` as %s:%s "
           "is %s (%s)" % (opts or "(no options)", user, group,
                          "answered" if allowed else "refused", why),
           "rc=%d %s" % (rc, err))

    expect("sock-full", "nobody", "nogroup", True, "owner, rw")
    expect("sock-default", "nobody", "nogroup", False, "others, no rights")
    expect("sock-owner", "nobody", "nogroup", True, "owner, rw")
    expect("sock-mode", "nobody", "nogroup", False, "others, no rights")
    if dm is not None:
        expect("sock-full", "daemon", "nogroup", False,
               "group, read only")
        expect("sock-full", "daemon", "daemon", False, "others, no rights")
        expect("sock-group", "daemon", "nogroup", True, "group, rw")
        expect("sock-group", "daemon", "daemon", False,
               "others, no rights")
    else:
        lib.skip("stats socket group rights", "no user daemon here")
    for tag, opts, mode, uid, gid, mux in muxes:
        eq(mux.stop(), 0, "stats PATH%s: SIGTERM: exits 0" %
           (" " + opts if opts else ""))


class Sink:
    """Default backend handler: reads to EOF, counts the name of each
    hello that is exactly the one the client built for it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.names = collections.Counter()
        self.nbad = 0
        self.bad = []

    def __call__(self, conn):
        buf = bytearray()
        while True:
            b = conn.sock.recv(1 << 16)
            if not b:
                break
            buf += b
        buf = bytes(buf)
        name = name_of(buf)
        good = name is not None and buf == with_name(BASE["bin"], name)
        with self.lock:
            if good:
                self.names[name] += 1
            else:
                self.nbad += 1
                if len(self.bad) < 5:
                    self.bad.append(buf[:80].hex())


def part_names(d):
    """Random names: only the default backend is ever dialled, counters
    and memory do not grow."""
    r = random.Random(os.environ.get("SNIMUX_SEED") or None)
    sink = Sink()
    dflt = lib.RawBackend(handler=sink)
    routed = lib.RawBackend()
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                         "route %s %s" % (ROUTE, routed.addr),
                         "default %s" % dflt.addr,
                         "workers %d" % WORKERS], tag="names").start()
    pid = mux.proc.pid
    fds0 = fd_kinds(pid)
    diag("descriptors at start: %s" % fds0)

    def settled(m):
        return m.get("snimux_open_connections") == 0

    warm = [random_name(r) for _ in range(N_WARM)]
    n, outcomes, secs = blast(d, port, warm, "warm")
    eq((n, dict(outcomes)), (N_WARM, {"eof:": N_WARM}),
       "warm-up: %d clients, each relayed to a backend that closes "
       "(EOF, nothing received)" % N_WARM)
    mux.wait_metrics(settled, timeout=IO_TIMEOUT)
    rss_warm = mux.rss_kib()
    diag("warm-up: %d connections in %.1f s; RSS %s KiB; descriptors %s"
         % (N_WARM, secs, rss_warm, fd_kinds(pid)))

    names = [random_name(r) for _ in range(N_MAX)]
    hello_bytes = sum(len(with_name(BASE["bin"], x)) for x in warm)
    n, outcomes, secs = blast(d, port, names, "main", budget=BUDGET,
                              least=N_MIN)
    sent = names[:n]
    hello_bytes += sum(len(with_name(BASE["bin"], x)) for x in sent)
    diag("sent %d ClientHellos with random names in %.1f s (%.0f/s), %d "
         "at a time%s" % (n, secs, n / secs, CONCURRENCY,
                          "" if n == N_MAX else
                          "; stopped short of %d: the machine is slow"
                          % N_MAX))
    ok(n >= N_MIN, "at least %d names sent" % N_MIN, n)
    eq(dict(outcomes), {"eof:": n},
       "every client relayed to the default backend, which closes "
       "(EOF, nothing received)")
    m = mux.wait_metrics(settled, timeout=IO_TIMEOUT)
    total = N_WARM + n
    want = collections.Counter(warm + sent)
    lib.wait_until(lambda: sum(sink.names.values()) + sink.nbad >= total,
                   IO_TIMEOUT)
    with sink.lock:
        eq((sink.nbad, sink.bad), (0, []),
           "the default backend got each hello byte for byte")
        missing = want - sink.names
        extra = sink.names - want
    eq((sum(missing.values()), sum(extra.values())), (0, 0),
       "the default backend got exactly the %d names sent, each once"
       % total, "missing: %r" % list(missing.items())[:5],
       "extra: %r" % list(extra.items())[:5])
    eq(dflt.count(), total, "the default backend accepted %d connections"
       % total)
    eq(routed.count(), 0, "the route's backend accepted none")

    labels = route_labels(m)
    eq(labels, sorted([ROUTE, "(no-sni)", "(unknown)"]),
       "metrics: route labels are the route, (no-sni) and (unknown), "
       "nothing else")
    rc, rows, text = stats_rows(mux)
    eq((rc, rows), (0, [ROUTE, "(no-sni)", "(unknown)"]),
       "stats: three rows, in the order configured", text)
    eq({k: m.get(k, route="(unknown)") for k in (
        "snimux_connections_total", "snimux_connections_active",
        "snimux_backend_failures_total")},
       {"snimux_connections_total": total, "snimux_connections_active": 0,
        "snimux_backend_failures_total": 0},
       "(unknown): connections_total = %d sent, 0 active, 0 failures"
       % total)
    eq((m.get("snimux_bytes_total", route="(unknown)",
              direction="client_to_backend"),
        m.get("snimux_bytes_total", route="(unknown)",
              direction="backend_to_client")), (hello_bytes, 0),
       "(unknown): bytes client_to_backend = the %d hello bytes sent, "
       "0 back" % hello_bytes)
    eq((m.get("snimux_connections_total", route=ROUTE),
        m.get("snimux_connections_total", route="(no-sni)")), (0, 0),
       "the route's and (no-sni)'s rows count 0 connections")
    eq({k: v for k, v in mux.hello_failures().items() if v},
       {}, "no hello failure: every random name is valid")

    log = mux.log()
    dialled = collections.Counter(re.findall(r" backend=(\S+)", log))
    dialled.pop("-", None)
    eq(sorted(dialled), [dflt.addr], "log: no backend but the default's "
       "%s ever appears" % dflt.addr, dict(dialled.most_common(5)))
    eq(dialled[dflt.addr], total, "log: one access line per connection "
       "to the default")

    rss = mux.rss_kib()
    diag("RSS after the warm-up %s KiB, after %d more %s KiB" % (
        rss_warm, n, rss))
    if lib.sanitized():
        lib.skip("RSS within 2 MiB of the warm-up's",
                 "AddressSanitizer build (its quarantine grows memory)")
    else:
        ok(rss is not None and rss <= rss_warm + 2048,
           "RSS within 2 MiB of its level after the warm-up: names do "
           "not grow memory", "warm-up %s KiB, now %s KiB" % (rss_warm,
                                                             rss))
    cap = fds0.get("pipe", 0)
    if "relay copy" not in os.environ.get("SNIMUX_EXTRA_CONF", ""):
        cap += 2 * WORKERS * POOLED_PIPES     # splice: pooled pipes stay

    def fds_back():
        k = fd_kinds(pid)
        return (k if without_pipes(k) == without_pipes(fds0) and
                k.get("pipe", 0) <= cap else None)
    fds1 = lib.wait_until(fds_back, timeout=IO_TIMEOUT, step=0.2) or \
        fd_kinds(pid)
    diag("descriptors at the end: %s" % fds1)
    eq(without_pipes(fds1), without_pipes(fds0),
       "descriptors other than pipes back to where they started")
    ok(fds1.get("pipe", 0) <= cap, "pipe descriptors at most the relay "
       "pool's (%d)" % cap, fds1)
    eq(mux.stop(), 0, "random names: SIGTERM: exits 0")


def part_refuse(d):
    """unknown-sni refuse: random names get unrecognized_name, no
    backend is dialled."""
    r = random.Random(os.environ.get("SNIMUX_SEED") or None)
    dflt = lib.RawBackend()
    routed = lib.RawBackend()
    port = lib.free_port()
    mux = lib.Snimux(d, ["listen 127.0.0.1:%d" % port,
                         "route %s %s" % (ROUTE, routed.addr),
                         "default %s" % dflt.addr, "unknown-sni refuse",
                         "workers %d" % WORKERS], tag="refuse").start()
    names = [random_name(r) for _ in range(N_REFUSE)]
    n, outcomes, secs = blast(d, port, names, "refuse")
    diag("refuse: %d clients in %.1f s: %s" % (
        n, secs, dict(outcomes.most_common(4))))
    alerts = collections.Counter()
    for k, v in outcomes.items():
        how, _, hexed = k.partition(":")
        alerts[(how, lib.alert_of(bytes.fromhex(hexed)))] += v
    eq(dict(alerts), {("eof", lib.ALERT_UNRECOGNIZED_NAME): N_REFUSE},
       "unknown-sni refuse: each of %d clients gets exactly the "
       "unrecognized_name alert, then EOF" % N_REFUSE)
    m = mux.wait_metrics(
        lambda m: m.get("snimux_open_connections") == 0 and
        m.get("snimux_hello_failures_total", reason="refused") ==
        N_REFUSE, timeout=IO_TIMEOUT)
    eq(m.get("snimux_hello_failures_total", reason="refused"), N_REFUSE,
       'hello_failures_total{reason="refused"} = %d' % N_REFUSE)
    eq({k: v for k, v in mux.hello_failures().items()
        if v and k != "refused"}, {}, "no other hello failure")
    eq((m.get("snimux_connections_total", route="(unknown)"),
        m.get("snimux_connections_active", route="(unknown)")),
       (N_REFUSE, 0), "(unknown): connections_total = %d (refused ones "
       "included), 0 active" % N_REFUSE)
    eq(route_labels(m), sorted([ROUTE, "(no-sni)", "(unknown)"]),
       "metrics: still only the route, (no-sni) and (unknown)")
    eq((dflt.count(), routed.count()), (0, 0),
       "neither the default nor the route's backend accepted a "
       "connection")
    dialled = set(re.findall(r" backend=(\S+)", mux.log())) - {"-"}
    eq(sorted(dialled), [], "log: no backend dialled")
    eq(mux.stop(), 0, "unknown-sni refuse: SIGTERM: exits 0")


def main():
    eq(with_name(BASE["bin"], BASE["sni"]), BASE["bin"],
       "the hello rewriter gives back %s unchanged for its own name"
       % BASE["name"])
    longest = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 63
    eq(name_of(with_name(BASE["bin"], longest)), longest,
       "a hello rewritten for a 255-byte name carries it")
    if os.geteuid() != 0:
        lib.skip("privilege drop, socket owner", "not running as root")
    else:
        nobody = pwd.getpwnam("nobody")
        part_drop(lib.workdir(), nobody)
        part_socket(lib.workdir(), nobody)
    part_names(lib.workdir())
    part_refuse(lib.workdir())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        sys.exit(client_main(sys.argv[2:]))
    lib.run(main, limit=240)
