# SPDX-License-Identifier: ISC
"""Shared helpers for the snimux integration tests.

A test script imports this module, writes its checks as a main() function
and ends with lib.run(main).  Output follows tests/run.sh: one line
"ok - ..." or "not ok - ..." per check, "# ..." for diagnostics.

Everything a test starts (openssl s_server, backend threads, snimux
itself, temporary directories) is registered with defer() and torn down
in reverse order when main() returns, raises or runs out of time.  Every
socket and every subprocess call has a timeout; run() bounds the whole
test with SIGALRM.

Run as a program, the module serves tests/demo.sh:
    python3 tests/integ/lib.py pki DIR NAME...   throwaway CA + certificates
    python3 tests/integ/lib.py ports N           N free TCP ports on loopback
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
SNIMUX = os.path.abspath(os.environ.get("SNIMUX_BIN") or
                         os.path.join(TOP, "snimux"))
CORPUS = os.path.abspath(os.environ.get("SNIMUX_CORPUS") or
                         os.path.join(TOP, "tests", "corpus"))
LOGDIR = os.path.abspath(os.environ.get("TEST_LOGS") or
                         os.path.join(TOP, "tests", "logs"))
TEST = os.path.splitext(os.path.basename(sys.argv[0]))[0]

IO_TIMEOUT = 10          # seconds, any single socket operation
CMD_TIMEOUT = 20         # seconds, any single subprocess

# ---------------------------------------------------------------- output

_npass = 0
_nfail = 0


def _say(line):
    """Print a line of the test's output; a closed stdout must not stop
    the test from cleaning up."""
    try:
        print(line, flush=True)
    except OSError:
        pass


def diag(msg):
    """Print msg as "# " diagnostic lines."""
    for line in str(msg).splitlines() or [""]:
        _say("# " + line)


def ok(cond, desc, *why):
    """Print one check; on failure also print each item of why."""
    global _npass, _nfail
    if cond:
        _npass += 1
        _say("ok - " + desc)
    else:
        _nfail += 1
        _say("not ok - " + desc)
        for w in why:
            diag(w)
    return bool(cond)


def eq(got, want, desc, *why):
    """Check got == want, printing both values on failure."""
    return ok(got == want, desc, "got:  %r" % (got,), "want: %r" % (want,),
              *why)


def skip(desc, reason):
    """A check that cannot run here: counted as passed, says why."""
    global _npass
    _npass += 1
    _say("ok - %s # SKIP %s" % (desc, reason))


# --------------------------------------------------------------- cleanup

_cleanups = []
_snimuxes = []


def defer(fn, *args):
    """Run fn(*args) at the end of the test, last registered first."""
    _cleanups.append((fn, args))


def _run_cleanups():
    while _cleanups:
        fn, args = _cleanups.pop()
        try:
            fn(*args)
        except Exception as e:
            diag("cleanup %s: %s" % (getattr(fn, "__name__", fn), e))


class Deadline(Exception):
    pass


def run(main, limit=120):
    """Run main() bounded by limit seconds, clean up, exit 0 or 1."""
    def on_signal(signum, frame):
        if signum == signal.SIGALRM:
            raise Deadline("%s did not finish within %d s" % (TEST, limit))
        raise Deadline("%s stopped by signal %d" % (TEST, signum))

    signal.signal(signal.SIGALRM, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.alarm(limit)
    try:
        main()
    except BaseException:
        ok(False, "%s ran to its end" % TEST,
           *traceback.format_exc().splitlines())
    finally:
        signal.alarm(0)
        _run_cleanups()
    if _npass + _nfail == 0:
        ok(False, "%s made at least one check" % TEST)
    if _nfail:
        for s in _snimuxes:
            diag("last lines of %s:" % s.logpath)
            diag("".join(("    " + line) for line in s.log_tail(8)))
    sys.exit(1 if _nfail else 0)

# ---------------------------------------------------------------- basics


def wait_until(pred, timeout=5.0, step=0.05):
    """Poll pred() until it returns a true value or timeout passes.

    Returns the last value pred() gave."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


def workdir():
    """A fresh temporary directory, removed at the end of the test."""
    d = tempfile.mkdtemp(prefix="snimux-%s-" % TEST)
    defer(shutil.rmtree, d, True)
    return d


def logfile(tag):
    """Path of a log kept in tests/logs for this test."""
    os.makedirs(LOGDIR, exist_ok=True)
    return os.path.join(LOGDIR, "%s.%s.log" % (TEST, tag))


def have_ipv6():
    """True when a socket can bind ::1."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


_ports_given = set()


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on, below the kernel's ephemeral range
    so that it does not collide with the source ports of connections."""
    hosts = [host] if host != "*" else ["0.0.0.0"]
    if host == "*" and have_ipv6():
        hosts.append("::")
    for _ in range(200):
        port = random.randint(20000, 32000)
        if port in _ports_given:
            continue
        try:
            for h in hosts:
                fam = socket.AF_INET6 if ":" in h else socket.AF_INET
                with socket.socket(fam, socket.SOCK_STREAM) as s:
                    if fam == socket.AF_INET6:
                        s.setsockopt(socket.IPPROTO_IPV6,
                                     socket.IPV6_V6ONLY, 1)
                    s.bind((h, port))
        except OSError:
            continue
        _ports_given.add(port)
        return port
    raise RuntimeError("no free port found")


def hostport(host, port):
    """"127.0.0.1:443", "[::1]:443" or "*:443"."""
    if ":" in host:
        return "[%s]:%d" % (host, port)
    return "%s:%d" % (host, port)


def command(argv, timeout=CMD_TIMEOUT):
    """Run argv; returns (exit status, stdout text, stderr text).  A
    command still running after timeout seconds is killed and gives
    status -1."""
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return -1, "", "%s: still running after %d s, killed" % (
            " ".join(argv), timeout)
    return (p.returncode, p.stdout.decode(errors="replace"),
            p.stderr.decode(errors="replace"))


def spawn(argv, tag):
    """Start argv with stdout and stderr in tests/logs; stopped by PID
    at the end of the test."""
    path = logfile(tag)
    with open(path, "wb") as f:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT)
    proc.logpath = path
    defer(stop_process, proc)
    return proc


def stop_process(proc, sig=signal.SIGTERM, timeout=5):
    """Signal proc by its PID, wait, SIGKILL if it lingers; returns its
    exit status."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout=timeout)

# ------------------------------------------------------------- certificates

_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = snimux test CA
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = ${ENV::SNIMUX_SAN}
"""


class Pki:
    """A throwaway CA in directory d and one ECDSA P-256 certificate per
    name, made with the openssl command.  names maps the certificate's
    common name to its extra DNS names (the name itself is always in the
    subjectAltName)."""

    def __init__(self, d, names):
        self.dir = d
        self.ca = os.path.join(d, "ca.pem")
        cnf = os.path.join(d, "openssl.cnf")
        with open(cnf, "w") as f:
            f.write(_OPENSSL_CNF)
        ecargs = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes"]
        env = dict(os.environ, SNIMUX_SAN="DNS:unused")
        self._openssl(["req", "-x509", "-config", cnf, "-extensions",
                       "ca_ext", "-days", "2", "-keyout",
                       os.path.join(d, "ca.key"), "-out", self.ca] + ecargs,
                      env)
        for cn, extra in dict(names).items():
            sans = ",".join("DNS:" + n for n in [cn] + list(extra or []))
            env["SNIMUX_SAN"] = sans
            csr = os.path.join(d, cn + ".csr")
            self._openssl(["req", "-new", "-subj", "/CN=" + cn, "-keyout",
                           self.key(cn), "-out", csr] + ecargs, env)
            self._openssl(["x509", "-req", "-in", csr, "-CA", self.ca,
                           "-CAkey", os.path.join(d, "ca.key"),
                           "-set_serial", str(random.getrandbits(63)),
                           "-days", "2", "-extfile", cnf, "-extensions",
                           "leaf_ext", "-out", self.cert(cn)], env)

    @staticmethod
    def _openssl(args, env):
        p = subprocess.run(["openssl"] + args, capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=CMD_TIMEOUT,
                           env=env)
        if p.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" %
                               (args[0], p.stderr.decode(errors="replace")))

    def cert(self, cn):
        return os.path.join(self.dir, cn + ".pem")

    def key(self, cn):
        return os.path.join(self.dir, cn + ".key")

# ------------------------------------------------------------- backends


class TlsServer:
    """openssl s_server answering HTTP (-www) with the certificate of
    cn, on host:port (a free port when none is given)."""

    def __init__(self, pki, cn, host="127.0.0.1", port=None):
        self.cn = cn
        self.host = host
        self.port = port or free_port(host)
        self.addr = hostport(host, self.port)
        tag = "s_server-%s-%d" % (cn, self.port)
        self.proc = spawn(["openssl", "s_server", "-accept", self.addr,
                           "-cert", pki.cert(cn), "-key", pki.key(cn),
                           "-www"], tag)

        def ready():
            if self.proc.poll() is not None:
                return True
            with open(self.proc.logpath, "rb") as f:
                return b"ACCEPT" in f.read()
        wait_until(ready, timeout=10)
        if self.proc.poll() is not None or not ready():
            with open(self.proc.logpath, errors="replace") as f:
                raise RuntimeError("s_server on %s did not start: %s" %
                                   (self.addr, f.read()))


class Conn:
    """One connection accepted by a RawBackend: every byte received is
    appended to data; eof is set when the peer has finished sending."""

    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.data = bytearray()
        self.eof = threading.Event()
        self.done = threading.Event()
        self.error = None


def record_all(conn):
    """Default RawBackend handler: read until EOF, then close."""
    while True:
        b = conn.sock.recv(1 << 16)
        if not b:
            break
        conn.data += b


class RawBackend:
    """A plain TCP server in threads.  For each connection it calls
    handler(conn) in a thread of its own (record_all by default); the
    socket is closed when the handler returns.  conns lists every
    connection in accept order."""

    def __init__(self, host="127.0.0.1", handler=record_all,
                 io_timeout=IO_TIMEOUT):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.bind((host, 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.host = host
        self.port = self.lsock.getsockname()[1]
        self.addr = hostport(host, self.port)
        self.handler = handler
        self.io_timeout = io_timeout
        self.conns = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        defer(self.close)

    def _accept(self):
        while not self.stopping:
            try:
                s, peer = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            s.settimeout(self.io_timeout)
            c = Conn(s, peer)
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        try:
            self.handler(c)
        except Exception as e:
            c.error = e
        finally:
            c.eof.set()
            try:
                c.sock.close()
            except OSError:
                pass
            c.done.set()

    def count(self):
        with self.lock:
            return len(self.conns)

    def conn(self, i, timeout=IO_TIMEOUT):
        """The i-th connection, waiting for it to arrive; None if not."""
        if not wait_until(lambda: self.count() > i, timeout, 0.01):
            return None
        with self.lock:
            return self.conns[i]

    def close(self):
        self.stopping = True
        self.thread.join(timeout=2)
        self.lsock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.sock.close()
                except OSError:
                    pass

# ---------------------------------------------------------------- snimux


class Metrics(dict):
    """Prometheus text parsed into {(name, frozenset(labels)): value}."""

    LINE = re.compile(r'^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)')
    LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

    def __init__(self, text):
        super().__init__()
        self.text = text
        for line in text.splitlines():
            m = self.LINE.match(line)
            if not m or line.startswith("#"):
                continue
            labels = frozenset(self.LABEL.findall(m.group(2) or ""))
            v = float(m.group(3))
            self[(m.group(1), labels)] = int(v) if v.is_integer() else v

    def get(self, name, **labels):
        """Value of the series, or None when it is absent."""
        return dict.get(self, (name, frozenset(labels.items())))

    def sum(self, name):
        return sum(v for (n, _), v in self.items() if n == name)

    def series(self, name):
        """{frozenset(labels): value} for every series of name."""
        return {lab: v for (n, lab), v in self.items() if n == name}


class Snimux:
    """One snimux daemon: its config file and control socket live in the
    directory d, its stderr in tests/logs/TEST.TAG.snimux.log.  lines is
    the configuration without the stats line, which is added first."""

    def __init__(self, d, lines, tag="main", ctlsock=None):
        self.dir = d
        self.tag = tag
        self.conf = os.path.join(d, tag + ".conf")
        self.ctlsock = ctlsock or os.path.join(d, tag + ".sock")
        self.logpath = logfile(tag + ".snimux")
        open(self.logpath, "w").close()
        self.proc = None
        self.write_config(lines)
        _snimuxes.append(self)

    def write_config(self, lines):
        with open(self.conf, "w") as f:
            f.write("stats %s\n" % self.ctlsock)
            for line in lines:
                f.write(line + "\n")
            # Lines every test daemon gets, such as "relay copy".
            for line in os.environ.get("SNIMUX_EXTRA_CONF", "").split(";"):
                if line.strip():
                    f.write(line.strip() + "\n")

    def launch(self, nofile=None):
        """Start the daemon without waiting for it; returns the Popen.
        nofile: the descriptor limit (RLIMIT_NOFILE) it starts with."""
        def limit():
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        with open(self.logpath, "ab") as f:
            self.proc = subprocess.Popen([SNIMUX, "-c", self.conf],
                                         stdin=subprocess.DEVNULL,
                                         stdout=f, stderr=f,
                                         preexec_fn=limit if nofile
                                         else None)
        defer(self._reap)
        return self.proc

    def start(self, timeout=10, nofile=None):
        """Start the daemon and wait until the control socket answers."""
        self.launch(nofile=nofile)

        def ready():
            if self.proc.poll() is not None:
                return "exited"
            return "ready" if self.ctl("help")[0] == 0 else None
        state = wait_until(ready, timeout=timeout, step=0.1)
        if state != "ready":
            raise RuntimeError("snimux -c %s %s (status %s):\n%s" %
                               (self.conf, "exited before it was ready"
                                if state else "not ready in time",
                                self.proc.poll(), "".join(self.log_tail())))
        return self

    def _reap(self):
        if self.proc and self.proc.poll() is None:
            diag("snimux still running at the end: stopping it")
            stop_process(self.proc, timeout=10)

    def ctl(self, cmd, timeout=5):
        """Run "snimux -c CONF cmd": (status, stdout, stderr)."""
        return command([SNIMUX, "-c", self.conf, cmd], timeout=timeout)

    def metrics(self):
        rc, out, err = self.ctl("metrics")
        if rc != 0:
            raise RuntimeError("snimux metrics: status %d: %s" % (rc, err))
        return Metrics(out)

    def wait_metrics(self, pred, timeout=5):
        """Poll metrics until pred(m) holds or timeout; returns the last
        metrics read, so the caller asserts exact values on it."""
        box = []

        def check():
            box[:] = [self.metrics()]
            return pred(box[0])
        wait_until(check, timeout=timeout, step=0.1)
        return box[0]

    def reload(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit status.  When no client
        connection is open at that moment, first check that none has
        left anything behind: no TCP connection socket in the daemon and
        every connections_active row at 0."""
        self.check_settled()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return "still running %d s after SIGTERM" % timeout

    def check_settled(self):
        if self.proc.poll() is not None:
            return
        try:
            m = self.metrics()
        except (RuntimeError, OSError):
            return
        if m.get("snimux_open_connections") != 0:
            diag("%d connections open at stop: no leak check" %
                 (m.get("snimux_open_connections") or -1))
            return
        wait_until(lambda: proc_tcp_conns(self.proc.pid) == 0, 5)
        eq(proc_tcp_conns(self.proc.pid), 0, "no client is open and snimux "
           "holds no TCP connection socket")
        eq({dict(lab)["route"]: v for lab, v in
            m.series("snimux_connections_active").items() if v},
           {}, "every connections_active row is back to 0")

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def fds(self):
        """Descriptors the daemon holds now (None once it is gone)."""
        return proc_fds(self.proc.pid)

    def rss_kib(self):
        """The daemon's resident set (VmRSS) in KiB, or None."""
        return proc_rss_kib(self.proc.pid)

    def cpu_ticks(self):
        """utime + stime of the daemon, in clock ticks, or None."""
        return proc_cpu_ticks(self.proc.pid)

    def hello_failures(self):
        """{reason: count} of every hello_failures_total series."""
        found = self.metrics().series("snimux_hello_failures_total")
        return {dict(lab).get("reason"): v for lab, v in found.items()}

    def endings(self):
        """{end: count} of every connections_ended_total series."""
        found = self.metrics().series("snimux_connections_ended_total")
        return {dict(lab).get("end"): v for lab, v in found.items()}

    def log_tail(self, n=20):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.readlines()[-n:]
        except OSError:
            return []

# ------------------------------------------------------- process figures


def proc_fds(pid):
    """Number of descriptors process pid holds, from /proc; None when
    it is gone."""
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def proc_tcp_conns(pid):
    """TCP sockets of process pid that are not listening (connected,
    connecting or closing), from /proc/PID/fd and /proc/PID/net/tcp*;
    None when it is gone."""
    try:
        inodes = set()
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        found = 0
        for table in ("tcp", "tcp6"):
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                next(f)
                for line in f:
                    field = line.split()
                    # field 3 is the state (0A: listening), 9 the inode
                    if field[9] in inodes and field[3] != "0A":
                        found += 1
        return found
    except OSError:
        return None


def proc_rss_kib(pid):
    """VmRSS of process pid in KiB, from /proc/PID/status; None when it
    is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cpu_ticks(pid):
    """utime + stime of process pid (all its threads) in clock ticks;
    None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold blanks: fields start after the last ")".
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def cpu_share(pid, seconds):
    """Share of one core process pid used over the next seconds (0.0 to
    nproc); None when it went away meanwhile."""
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0 = time.monotonic(), proc_cpu_ticks(pid)
    time.sleep(seconds)
    t1, c1 = time.monotonic(), proc_cpu_ticks(pid)
    if c0 is None or c1 is None:
        return None
    return (c1 - c0) / hz / (t1 - t0)


def sanitized():
    """True when the snimux under test is built with AddressSanitizer
    (it then needs more memory and time)."""
    try:
        with open(SNIMUX, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False

# ---------------------------------------------------------------- clients


def connect(port, host="127.0.0.1", timeout=IO_TIMEOUT):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def send_chunks(sock, data, chunks=None, pause=0.05):
    """Send data as the writes listed in chunks (byte counts), pausing
    between them; in one write when chunks is None."""
    if not chunks:
        sock.sendall(data)
        return
    off = 0
    for i, n in enumerate(chunks):
        if i:
            time.sleep(pause)
        sock.sendall(data[off:off + n])
        off += n
    if off < len(data):
        time.sleep(pause)
        sock.sendall(data[off:])


def read_to_end(sock, limit=1 << 20):
    """Read until the peer closes.  Returns (bytes, how) where how is
    "eof", "reset" or "timeout"."""
    buf = bytearray()
    try:
        while len(buf) < limit:
            b = sock.recv(1 << 16)
            if not b:
                return bytes(buf), "eof"
            buf += b
        return bytes(buf), "limit"
    except socket.timeout:
        return bytes(buf), "timeout"
    except ConnectionResetError:
        return bytes(buf), "reset"


def digest_to_end(sock, digest, n=0):
    """Read until the peer closes, feeding each piece to digest (a
    hashlib object), so that a long stream is never held whole.  Returns
    (n, how): n plus the bytes read, and "eof" or the repr of the error
    that ended the reading."""
    try:
        while True:
            b = sock.recv(1 << 18)
            if not b:
                return n, "eof"
            digest.update(b)
            n += len(b)
    except OSError as e:
        return n, repr(e)


def closed_by_peer(s, timeout):
    """Read and drop what comes until the peer closes: "eof", "reset" or
    "open" (a read waited timeout seconds for nothing)."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(1 << 16):
                return "eof"
    except socket.timeout:
        return "open"
    except ConnectionResetError:
        return "reset"


ALERT_HANDSHAKE_FAILURE = 40
ALERT_UNRECOGNIZED_NAME = 112


def alert_of(data):
    """The description code of a fatal TLS alert record that data holds
    exactly, or None."""
    if (len(data) == 7 and data[0] == 0x15 and data[1] == 3 and
            data[2] <= 4 and data[3:5] == b"\x00\x02" and data[5] == 2):
        return data[6]
    return None


def s_client(port, name, ca, host="127.0.0.1"):
    """openssl s_client: (common name of the peer, verify result text,
    whole output).  name None means -noservername."""
    argv = ["openssl", "s_client", "-connect", hostport(host, port),
            "-CAfile", ca]
    argv += ["-noservername"] if name is None else ["-servername", name]
    rc, out, err = command(argv)
    cn = re.search(r"^subject=.*?CN\s*=\s*([^,/\n]+)", out, re.M)
    vr = re.search(r"^Verify return code: (.*)$", out, re.M)
    return (cn.group(1).strip() if cn else None,
            vr.group(1) if vr else None, "rc=%d\n%s%s" % (rc, out, err))


def curl(port, name, ca, host="127.0.0.1"):
    """curl https://name:port/ resolved to host, verifying against ca:
    (exit status, subject CN curl reports, stderr)."""
    addr = "[%s]" % host if ":" in host else host
    argv = ["curl", "-sS", "-v", "--max-time", "10", "--resolve",
            "%s:%d:%s" % (name, port, addr), "--cacert", ca,
            "-o", os.devnull, "https://%s:%d/" % (name, port)]
    rc, out, err = command(argv)
    cn = re.search(r"^\*\s+subject:.*?CN\s*=\s*([^,/\n]+)", err, re.M)
    return rc, cn.group(1).strip() if cn else None, err


def py_tls(port, name, ca, host="127.0.0.1", check=True):
    """Python ssl: handshake (SNI name, or none when name is None),
    verify the chain against ca (and the name when check), GET / and
    read the answer.  Returns (peer common name, answer bytes)."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = check and name is not None
    with connect(port, host) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            cert = s.getpeercert()
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            body, _ = read_to_end(s)
    cn = None
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                cn = v
    return cn, body

# ---------------------------------------------------------------- corpus


def corpus():
    """Every corpus case, sorted by name: dicts with the JSON fields plus
    "name" and "bin" (the raw bytes)."""
    cases = []
    for fn in sorted(os.listdir(CORPUS)):
        if not fn.endswith(".json"):
            continue
        base = fn[:-5]
        with open(os.path.join(CORPUS, fn)) as f:
            case = json.load(f)
        with open(os.path.join(CORPUS, base + ".bin"), "rb") as f:
            case["bin"] = f.read()
        case["name"] = base
        cases.append(case)
    return cases


def corpus_case(name):
    """The corpus case called name (see corpus())."""
    with open(os.path.join(CORPUS, name + ".json")) as f:
        case = json.load(f)
    with open(os.path.join(CORPUS, name + ".bin"), "rb") as f:
        case["bin"] = f.read()
    case["name"] = name
    return case


def route_name(sni):
    """The route pattern that matches sni exactly: lower case, one
    trailing dot dropped."""
    name = sni.lower()
    return name[:-1] if name.endswith(".") else name

# ------------------------------------------------------------- for demo.sh


def _cli(argv):
    if len(argv) >= 3 and argv[0] == "pki":
        os.makedirs(argv[1], exist_ok=True)
        Pki(argv[1], {n: () for n in argv[2:]})
        return 0
    if len(argv) == 2 and argv[0] == "ports":
        print(" ".join(str(free_port()) for _ in range(int(argv[1]))))
        return 0
    print("usage: lib.py pki DIR NAME... | lib.py ports N", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
