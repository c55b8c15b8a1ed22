#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
# Copyright (c) 2026 The snimux authors
#
# snimux's own benchmark: a backend sink and a load generator (loadgen)
# measure DIRECT, snimux and, when installed, HAProxy and nginx stream side
# by side on loopback, in interleaved rounds; writes bench/RESULTS.md.
"""Usage: bench/bench.py [--quick] [--rounds N] [--out FILE] [--targets LIST]

Starts a loadgen sink backend, snimux (./snimux), and haproxy and nginx
(stream + ssl_preread) when they are installed, all routing the ClientHello's
name to the sink; then measures, in rounds with the target order rotated:
new connections per second (real ClientHello, 100-byte answer), bulk
throughput with 1 and 16 streams, added latency of a new connection
(sequential), proxy CPU per 1,000 connections and per GB, and RSS per idle
relayed connection.  Every load step is bounded in count and time.
"""

import argparse
import atexit
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS_HELLO = os.path.join(ROOT, 'tests', 'corpus',
                            'python_ssl_sni.bin')
NAME = 'alice.example.com'
CLK_TCK = os.sysconf('SC_CLK_TCK')
NCPU = os.cpu_count() or 1

PROFILES = {
    'quick': dict(rounds=3, conn_secs=2.0, conn_conc=32, bulk1=512 << 20,
                  bulk16=32 << 20, lat_n=300, idle=[1000], budget=170),
    'full': dict(rounds=7, conn_secs=5.0, conn_conc=32, bulk1=2048 << 20,
                 bulk16=128 << 20, lat_n=1000, idle=[1000, 9000],
                 budget=690),
}

started = []            # Popen of everything this run started
sink_pids = []
workdir = None
keep_workdir = False


def log(msg):
    print('[%s] %s' % (time.strftime('%H:%M:%S'), msg), flush=True)


# ---- processes -------------------------------------------------------------

def spawn(argv, out, **kw):
    """Start a process in its own session; remember its PID to stop it."""
    f = open(out, 'w')
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f,
                         stderr=subprocess.STDOUT, start_new_session=True,
                         **kw)
    f.close()
    started.append(p)
    return p


def stop(p, wait=5.0):
    """Stop one process this run started: SIGTERM, then SIGKILL."""
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(wait)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        except ProcessLookupError:
            pass
    if p in started:
        started.remove(p)


def cleanup():
    for p in list(started):
        stop(p)
    if workdir and not keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def on_signal(signum, frame):
    cleanup()
    sys.exit(128 + signum)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listen(port, proc, secs=10.0):
    """Wait until something accepts on 127.0.0.1:port."""
    end = time.time() + secs
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(('127.0.0.1', port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def children(pid):
    """PIDs of the direct children of <pid> (nginx workers)."""
    out = []
    try:
        for tid in os.listdir('/proc/%d/task' % pid):
            with open('/proc/%d/task/%s/children' % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def proc_tree(pid):
    return [pid] + children(pid)


def cpu_seconds(pids):
    """utime+stime of the processes (every thread of each), in seconds."""
    total = 0
    for pid in pids:
        try:
            with open('/proc/%d/stat' % pid) as f:
                fields = f.read().rsplit(')', 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / CLK_TCK


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open('/proc/%d/status' % pid) as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---- targets ---------------------------------------------------------------

class Target:
    """A proxy (or DIRECT) that routes NAME to the sink."""

    def __init__(self, name, port):
        self.name = name
        self.port = port
        self.proc = None
        self.version = '-'
        self.settings = ''

    def pids(self):
        return proc_tree(self.proc.pid) if self.proc else []

    def start(self, sink, dead):
        raise NotImplementedError

    def stop(self):
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


class Direct(Target):
    def __init__(self, sink_port):
        super().__init__('DIRECT', sink_port)
        self.settings = 'client straight to the sink'

    def pids(self):
        return []

    def start(self, sink, dead):
        return True


class Snimux(Target):
    def __init__(self, port, binary):
        super().__init__('snimux', port)
        self.binary = binary
        out = subprocess.run([binary, '-V'], capture_output=True,
                             text=True, timeout=10)
        self.version = (out.stdout + out.stderr).strip().splitlines()[0]
        self.settings = ('workers auto (%d), relay splice (default), '
                         'access log to a file' % NCPU)

    def start(self, sink, dead):
        d = os.path.join(workdir, 'snimux')
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, 'snimux.conf')
        with open(conf, 'w') as f:
            f.write('listen 127.0.0.1:%d\n' % self.port)
            f.write('route %s 127.0.0.1:%d\n' % (NAME, sink))
            f.write('default 127.0.0.1:%d\n' % dead)
            f.write('timeout idle 10m\n')
        self.proc = spawn([self.binary, '-c', conf],
                          os.path.join(d, 'snimux.log'))
        return wait_listen(self.port, self.proc)


class Haproxy(Target):
    def __init__(self, port):
        super().__init__('haproxy', port)
        out = subprocess.run(['haproxy', '-v'], capture_output=True,
                             text=True, timeout=10)
        self.version = out.stdout.strip().splitlines()[0]
        self.settings = ('mode tcp, nbthread %d, inspect-delay 5s, '
                         'req.ssl_sni, no splice, no logs' % NCPU)

    def start(self, sink, dead):
        d = os.path.join(workdir, 'haproxy')
        os.makedirs(d, exist_ok=True)
        cfg = os.path.join(d, 'haproxy.cfg')
        with open(cfg, 'w') as f:
            f.write('''global
    nbthread %d
    maxconn 9500

defaults
    mode tcp
    maxconn 9500
    timeout connect 5s
    timeout client 10m
    timeout server 10m

frontend fe
    bind 127.0.0.1:%d
    tcp-request inspect-delay 5s
    tcp-request content accept if { req_ssl_hello_type 1 }
    use_backend alice if { req.ssl_sni -i %s }
    default_backend other

backend alice
    server sink 127.0.0.1:%d

backend other
    server dead 127.0.0.1:%d
''' % (NCPU, self.port, NAME, sink, dead))
        self.proc = spawn(['haproxy', '-db', '-f', cfg],
                          os.path.join(d, 'haproxy.log'))
        return wait_listen(self.port, self.proc)


NGINX_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so'


class Nginx(Target):
    def __init__(self, port):
        super().__init__('nginx', port)
        out = subprocess.run(['nginx', '-v'], capture_output=True,
                             text=True, timeout=10)
        self.version = out.stderr.strip().splitlines()[0]
        self.settings = ('stream, ssl_preread + map, worker_processes %d, '
                         'no access log' % NCPU)

    def start(self, sink, dead):
        d = os.path.join(workdir, 'nginx')
        os.makedirs(d, exist_ok=True)
        cfg = os.path.join(d, 'nginx.conf')
        load = ''
        if os.path.exists(NGINX_MODULE):
            load = 'load_module %s;' % NGINX_MODULE
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        with open(cfg, 'w') as f:
            f.write('''%s
worker_processes %d;
worker_rlimit_nofile %d;
daemon off;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections %d; }
stream {
    map $ssl_preread_server_name $to {
        %s 127.0.0.1:%d;
        default 127.0.0.1:%d;
    }
    server {
        listen 127.0.0.1:%d;
        ssl_preread on;
        preread_timeout 5s;
        proxy_connect_timeout 5s;
        proxy_timeout 10m;
        proxy_pass $to;
    }
}
''' % (load, NCPU, nofile, d, d, nofile - 200, NAME, sink, dead,
                self.port))
        self.proc = spawn(['nginx', '-p', d, '-c', cfg, '-e',
                           os.path.join(d, 'error.log')],
                          os.path.join(d, 'nginx.log'))
        return wait_listen(self.port, self.proc)


def nginx_usable():
    if shutil.which('nginx') is None:
        return 'nginx not installed'
    if os.path.exists(NGINX_MODULE):
        return None
    out = subprocess.run(['nginx', '-V'], capture_output=True, text=True)
    if '--with-stream ' in out.stderr + ' ':
        return None
    return 'nginx stream module missing (libnginx-mod-stream)'


# ---- load ------------------------------------------------------------------

class Load:
    def __init__(self, loadgen, hello):
        self.loadgen = loadgen
        self.hello = hello

    def run(self, args, timeout):
        argv = [self.loadgen] + args + ['-H', self.hello, '-N', NAME]
        out = subprocess.run(argv, capture_output=True, text=True,
                             timeout=timeout)
        res = dict(re.findall(r'(\w+)=([\d.]+)', out.stdout))
        if 'done' not in res:
            raise RuntimeError('loadgen %s: %s' % (' '.join(args),
                                                  out.stderr.strip()))
        return {k: float(v) for k, v in res.items()}


def machine_busy():
    """Busy seconds of the whole machine, all CPUs, from /proc/stat."""
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure(target, fn):
    """
    Run fn(), adding the target's CPU seconds (cpu) and the machine's CPU
    used by none of proxy, sink and client (other, in cores: a noise
    indicator for foreign load).
    """
    pids = target.pids()
    c0, s0, l0 = cpu_seconds(pids), cpu_seconds(sink_pids), children_cpu()
    b0, t0 = machine_busy(), time.time()
    res = fn()
    wall = time.time() - t0
    cpu = cpu_seconds(pids) - c0 if pids else 0.0
    ours = cpu + cpu_seconds(sink_pids) - s0 + children_cpu() - l0
    res['other'] = (machine_busy() - b0 - ours) / wall
    res['cpu'] = cpu if pids else None
    return res


def scenario_conn(load, t, p):
    return measure(t, lambda: load.run(
        ['conn', '-p', str(t.port), '-c', str(p['conn_conc']),
         '-n', '10000000', '-d', str(p['conn_secs']), '-b', '100'],
        p['conn_secs'] + 20))


def scenario_bulk(load, t, n, size):
    return measure(t, lambda: load.run(
        ['bulk', '-p', str(t.port), '-n', str(n), '-b', str(size),
         '-d', '20'], 40))


def scenario_lat(load, t, p):
    return measure(t, lambda: load.run(
        ['conn', '-p', str(t.port), '-c', '1', '-n', str(p['lat_n']),
         '-d', '10', '-b', '100'], 30))


def idle_step(load, t, k):
    """Open k idle relayed connections; (RSS KiB per conn, held, base)."""
    for _ in range(3):
        load.run(['conn', '-p', str(t.port), '-c', '4', '-n', '200',
                  '-d', '5'], 20)
    time.sleep(0.3)
    pids = t.pids()
    base = rss_kib(pids)
    argv = [load.loadgen, 'idle', '-p', str(t.port), '-n', str(k),
            '-c', '128', '-d', '30', '-H', load.hello, '-N', NAME]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    started.append(p)
    try:
        line = p.stdout.readline()
        res = dict(re.findall(r'(\w+)=([\d.]+)', line))
        held = int(res.get('held', 0))
        time.sleep(0.5)
        rss = rss_kib(pids)
        p.stdin.write('\n')
        p.stdin.flush()
        p.wait(30)
    finally:
        stop(p)
    return ((rss - base) / held if held else None, held, base)


# ---- statistics and tables -------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=2):
    if x is None:
        return '–'
    if abs(x) >= 100:
        return '%.0f' % x
    if abs(x) >= 10:
        return '%.1f' % x
    return '%.*f' % (nd, x)


def cell(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return '–'
    return '%s [%s–%s]' % (fmt(med(xs)), fmt(min(xs)), fmt(max(xs)))


def cell_other(xs):
    v = [x['other'] for x in xs]
    return '%.2f [%.2f–%.2f]' % (med(v), min(v), max(v)) if v else '–'


def ratio(a, b):
    if a is None or b is None or b == 0:
        return '–'
    return '%.2f×' % (a / b)


def summarize(samples, names):
    """Medians and pooled CPU per target."""
    s = {}
    for n in names:
        c = samples['conn'].get(n, [])
        b1 = samples['bulk1'].get(n, [])
        b16 = samples['bulk16'].get(n, [])
        lat = samples['lat'].get(n, [])
        row = dict(
            conn=med([x['rate'] for x in c]),
            bulk1=med([x['mbps'] for x in b1]),
            bulk16=med([x['mbps'] for x in b16]),
            p50=med([x['p50_us'] for x in lat]),
            p99=med([x['p99_us'] for x in lat]),
            cp50=med([x['p50_us'] for x in c]),
            cp99=med([x['p99_us'] for x in c]),
        )
        if c and c[0]['cpu'] is not None:
            row['cpu_kconn'] = (sum(x['cpu'] for x in c) /
                                sum(x['done'] for x in c) * 1e6)
            row['cpu_lat_us'] = (sum(x['cpu'] for x in lat) /
                                 sum(x['done'] for x in lat) * 1e6
                                 if lat else None)
            gb = sum(x['bytes'] for x in b1 + b16) / 1e9
            row['cpu_gb'] = sum(x['cpu'] for x in b1 + b16) / gb
            row['cpu_gb1'] = (sum(x['cpu'] for x in b1) /
                              (sum(x['bytes'] for x in b1) / 1e9))
            row['cpu_gb16'] = (sum(x['cpu'] for x in b16) /
                               (sum(x['bytes'] for x in b16) / 1e9))
            row['cores'] = (sum(x['cpu'] for x in c) /
                            sum(x['secs'] for x in c))
        s[n] = row
    return s


def render(meta, samples, idle, names, sm):
    L = []
    a = L.append
    a('# snimux benchmark results (`make bench`)')
    a('')
    a('Generated by `bench/bench.py%s` on %s; the run took %.0f s.' %
      (' --quick' if meta['profile'] == 'quick' else '', meta['date'],
       meta['elapsed']))
    a('')
    a('## Machine and versions')
    a('')
    for k in ('cpus', 'cpu', 'kernel', 'os', 'nofile', 'loadavg'):
        a('- %s: %s' % (k, meta[k]))
    for n in names:
        t = meta['targets'][n]
        a('- %s: %s; %s' % (n, t['version'], t['settings']))
    for n, why in meta['skipped'].items():
        a('- %s: skipped: %s (`apt-get install haproxy nginx-light '
          'libnginx-mod-stream` adds it)' % (n, why))
    a('')
    a('## How it was measured')
    a('')
    p = meta['params']
    a('Loopback only; one `loadgen sink` backend; every proxy routes %s '
      'to the sink and sends anything else to a closed port (a wrong '
      'route shows up as errors). The client sends the ClientHello of '
      '`%s` with its server_name rewritten to %s, then a 16-byte '
      'request. %d interleaved rounds, the order of targets rotated each '
      'round. Cells: median [min–max] over rounds. Ratios: median ÷ '
      'median. Proxy CPU: utime+stime from /proc/PID/stat of the proxy '
      'alone (all threads; nginx: master + workers), pooled over rounds; '
      'on loopback it includes the kernel TCP work done inside the '
      "proxy's system calls." %
      (NAME, os.path.basename(meta['hello']), NAME, meta['rounds']))
    a('')
    a('- new conn/s: `loadgen conn -c %d -d %g`: connect, send hello + '
      'request, read a 100-byte answer, close; latency under load is '
      'connect start to first answer byte.' %
      (p['conn_conc'], p['conn_secs']))
    a('- bulk: `loadgen bulk`: 1 stream of %d MiB, and 16 streams of %d '
      'MiB each, streamed by the sink; MB/s = bytes ÷ wall time.' %
      (p['bulk1'] >> 20, p['bulk16'] >> 20))
    a('- latency: %d sequential new connections (`-c 1`), connect start '
      'to first answer byte; added = target − DIRECT.' % p['lat_n'])
    a('- idle: each proxy restarted, warmed up, then K connections opened '
      '(hello relayed, backend answered one byte, then silence) and held; '
      'VmRSS delta ÷ K (sum over processes for nginx).')
    a('- other cores: machine CPU (from /proc/stat) used by none of the '
      'proxy, the sink and loadgen during a sample, in cores: foreign '
      'load on a shared machine. Near 0 means a clean sample.')
    a('')
    a('## Summary')
    a('')
    d = sm.get('DIRECT', {})
    a('| target | new conn/s | ×DIRECT | bulk 1 stream MB/s | ×DIRECT | '
      'bulk 16 streams MB/s | ×DIRECT | latency p50 added µs | '
      'p99 added µs | CPU ms / 1k conn | CPU s / GB | idle KiB/conn |')
    a('|---|---|---|---|---|---|---|---|---|---|---|---|')
    for n in names:
        r = sm[n]
        kib = ', '.join('%.2f @%d' % (v[0], k) for k, v in
                        sorted(idle.get(n, {}).items()) if v[0] is not None)
        dp50 = None if r['p50'] is None or d.get('p50') is None \
            else r['p50'] - d['p50']
        dp99 = None if r['p99'] is None or d.get('p99') is None \
            else r['p99'] - d['p99']
        a('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            n, fmt(r['conn']), ratio(r['conn'], d.get('conn')),
            fmt(r['bulk1']), ratio(r['bulk1'], d.get('bulk1')),
            fmt(r['bulk16']), ratio(r['bulk16'], d.get('bulk16')),
            '+0' if n == 'DIRECT' else ('%+.0f' % dp50 if dp50 is not None
                                        else '–'),
            '+0' if n == 'DIRECT' else ('%+.0f' % dp99 if dp99 is not None
                                        else '–'),
            fmt(r.get('cpu_kconn'), 1), fmt(r.get('cpu_gb'), 3),
            kib or '–'))
    a('')
    proxies = [n for n in names if n != 'DIRECT']
    if 'snimux' in proxies and len(proxies) > 1:
        a('### snimux against the other proxies')
        a('')
        a('Ratio = snimux ÷ other (for CPU and latency, below 1 means '
          'snimux is cheaper or faster).')
        a('')
        a('| metric | ' + ' | '.join('vs ' + n for n in proxies
                                     if n != 'snimux') + ' |')
        a('|---|' + '---|' * (len(proxies) - 1))
        s = sm['snimux']
        for key, label in (('conn', 'new conn/s'),
                           ('bulk1', 'bulk 1 stream MB/s'),
                           ('bulk16', 'bulk 16 streams MB/s'),
                           ('p50', 'latency p50 (absolute)'),
                           ('p99', 'latency p99 (absolute)'),
                           ('cpu_kconn', 'CPU per connection'),
                           ('cpu_gb', 'CPU per GB')):
            a('| %s | ' % label + ' | '.join(
                ratio(s.get(key), sm[n].get(key)) for n in proxies
                if n != 'snimux') + ' |')
        a('')
    a('## New connections per second (100-byte answer)')
    a('')
    a('| target | conn/s | ×DIRECT | p50 µs under load | p99 µs under '
      'load | errors | proxy cores | proxy CPU ms / 1k conn | '
      'other cores |')
    a('|---|---|---|---|---|---|---|---|---|')
    for n in names:
        c = samples['conn'][n]
        r = sm[n]
        a('| %s | %s | %s | %s | %s | %d | %s | %s | %s |' % (
            n, cell([x['rate'] for x in c]), ratio(r['conn'], d['conn']),
            cell([x['p50_us'] for x in c]), cell([x['p99_us'] for x in c]),
            sum(x['errors'] for x in c), fmt(r.get('cores'), 2),
            fmt(r.get('cpu_kconn'), 1), cell_other(c)))
    a('')
    a('## Bulk throughput')
    a('')
    a('| target | 1 stream MB/s | ×DIRECT | CPU s/GB | 16 streams MB/s | '
      '×DIRECT | CPU s/GB | other cores |')
    a('|---|---|---|---|---|---|---|---|')
    for n in names:
        r = sm[n]
        a('| %s | %s | %s | %s | %s | %s | %s | %s |' % (
            n, cell([x['mbps'] for x in samples['bulk1'][n]]),
            ratio(r['bulk1'], d['bulk1']), fmt(r.get('cpu_gb1'), 3),
            cell([x['mbps'] for x in samples['bulk16'][n]]),
            ratio(r['bulk16'], d['bulk16']), fmt(r.get('cpu_gb16'), 3),
            cell_other(samples['bulk1'][n] + samples['bulk16'][n])))
    a('')
    a('## Latency of a new connection (sequential, connect to first '
      'answer byte)')
    a('')
    a('| target | p50 µs | p50 added | p99 µs | p99 added | proxy CPU '
      'µs/conn | other cores |')
    a('|---|---|---|---|---|---|---|')
    for n in names:
        lat = samples['lat'][n]
        r = sm[n]
        a('| %s | %s | %s | %s | %s | %s | %s |' % (
            n, cell([x['p50_us'] for x in lat]),
            '%+.0f' % (r['p50'] - d['p50']),
            cell([x['p99_us'] for x in lat]),
            '%+.0f' % (r['p99'] - d['p99']), fmt(r.get('cpu_lat_us'), 1),
            cell_other(lat)))
    a('')
    if idle:
        a('## RSS per idle relayed connection')
        a('')
        a('| target | K | held | baseline RSS MiB | RSS KiB/conn |')
        a('|---|---|---|---|---|')
        for n in names:
            for k, v in sorted(idle.get(n, {}).items()):
                a('| %s | %d | %d | %.1f | %s |' % (
                    n, k, v[1], v[2] / 1024, fmt(v[0], 2)))
        a('')
    if meta['notes']:
        a('## Notes')
        a('')
        for x in meta['notes']:
            a('- ' + x)
        a('')
    return '\n'.join(L)


# ---- main ------------------------------------------------------------------

def machine():
    cpu = '?'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    osname = '?'
    try:
        with open('/etc/os-release') as f:
            m = re.search(r'PRETTY_NAME="([^"]*)"', f.read())
            osname = m.group(1) if m else '?'
    except OSError:
        pass
    return dict(cpus=NCPU, cpu=cpu, kernel=platform.release(), os=osname,
                loadavg=' '.join('%.2f' % x for x in os.getloadavg()),
                nofile=resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def check_route(load, t):
    """NAME must reach the sink; any other name must fail."""
    ok = load.run(['conn', '-p', str(t.port), '-c', '2', '-n', '20',
                   '-d', '5'], 20)
    if t.name == 'DIRECT':
        return ok['done'] == 20
    argv = [load.loadgen, 'conn', '-p', str(t.port), '-c', '1', '-n', '2',
            '-d', '5', '-H', load.hello, '-N', 'nobody.example.net']
    out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    bad = dict(re.findall(r'(\w+)=([\d.]+)', out.stdout))
    return ok['done'] == 20 and float(bad.get('done', 1)) == 0


def main():
    global workdir, keep_workdir
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--rounds', type=int)
    ap.add_argument('--out', default=os.path.join(HERE, 'RESULTS.md'))
    ap.add_argument('--targets', default='snimux,haproxy,nginx')
    ap.add_argument('--snimux', default=os.path.join(ROOT, 'snimux'))
    ap.add_argument('--loadgen', default=os.path.join(HERE, 'loadgen'))
    ap.add_argument('--hello', default=CORPUS_HELLO)
    ap.add_argument('--no-idle', action='store_true')
    ap.add_argument('--keep', action='store_true',
                    help='keep the work directory (configs, logs)')
    args = ap.parse_args()
    prof = 'quick' if args.quick else 'full'
    p = dict(PROFILES[prof])
    if args.rounds:
        p['rounds'] = args.rounds
    t_start = time.time()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    notes = []
    maxk = (nofile - 200) // 2
    if p['idle'] and max(p['idle']) > maxk:
        notes.append('idle steps capped to %d: descriptor limit %d, a '
                     'proxy needs 2 per connection' % (maxk, nofile))
        p['idle'] = sorted(set(min(k, maxk) for k in p['idle']))

    for path in (args.loadgen, args.snimux):
        if not os.access(path, os.X_OK):
            sys.exit('bench.py: %s missing: run make bench' % path)
    if not os.path.exists(args.hello):
        sys.exit('bench.py: %s: no such ClientHello file' % args.hello)

    workdir = tempfile.mkdtemp(prefix='snimux-bench-')
    keep_workdir = args.keep
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    sink_port, dead = free_port(), free_port()
    sink = spawn([args.loadgen, 'sink', '-p', str(sink_port), '-t', '1'],
                 os.path.join(workdir, 'sink.log'))
    if not wait_listen(sink_port, sink):
        sys.exit('bench.py: the sink did not start')
    sink_pids.append(sink.pid)
    load = Load(args.loadgen, args.hello)

    wanted = args.targets.split(',')
    targets, skipped = [Direct(sink_port)], {}
    if 'snimux' in wanted:
        targets.append(Snimux(free_port(), args.snimux))
    if 'haproxy' in wanted:
        if shutil.which('haproxy'):
            targets.append(Haproxy(free_port()))
        else:
            skipped['haproxy'] = 'haproxy not installed'
    if 'nginx' in wanted:
        why = nginx_usable()
        if why is None:
            targets.append(Nginx(free_port()))
        else:
            skipped['nginx'] = why
    for n, why in skipped.items():
        log('skipping %s: %s; `apt-get install haproxy nginx-light '
            'libnginx-mod-stream` to include it' % (n, why))

    live = []
    for t in targets:
        if not t.start(sink_port, dead):
            log('%s did not start; see %s' % (t.name, workdir))
            keep_workdir = True
            skipped[t.name] = 'did not start'
            continue
        if not check_route(load, t):
            log('%s: routing check failed' % t.name)
            skipped[t.name] = 'routing check failed'
            t.stop()
            continue
        live.append(t)
    names = [t.name for t in live]
    log('targets: %s (profile %s, %d rounds)' %
        (', '.join(names), prof, p['rounds']))

    for t in live:
        scenario_conn(load, t, dict(p, conn_secs=0.5))
        scenario_bulk(load, t, 4, 16 << 20)
    samples = {k: {n: [] for n in names}
               for k in ('conn', 'bulk1', 'bulk16', 'lat')}
    round_secs = None
    min_rounds = 2 if args.quick else 3
    for r in range(p['rounds']):
        r0 = time.time()
        spent = r0 - t_start
        if (r >= min_rounds and round_secs is not None and
                spent + round_secs * 1.1 > p['budget'] * 0.8):
            notes.append('rounds cut to %d to stay within the time budget'
                         % r)
            break
        order = live[r % len(live):] + live[:r % len(live)]
        log('round %d/%d: %s' % (r + 1, p['rounds'],
                                 ' '.join(t.name for t in order)))
        for t in order:
            samples['conn'][t.name].append(scenario_conn(load, t, p))
        for t in order:
            samples['bulk1'][t.name].append(
                scenario_bulk(load, t, 1, p['bulk1']))
        for t in order:
            samples['bulk16'][t.name].append(
                scenario_bulk(load, t, 16, p['bulk16']))
        for t in order:
            samples['lat'][t.name].append(scenario_lat(load, t, p))
        log('  conn/s ' + ' '.join('%s=%.0f' % (t.name,
            samples['conn'][t.name][-1]['rate']) for t in order))
        round_secs = time.time() - r0

    idle = {}
    if not args.no_idle:
        for t in live:
            if t.name == 'DIRECT':
                continue
            idle[t.name] = {}
            for k in p['idle']:
                t.stop()
                if not t.start(sink_port, dead):
                    notes.append('%s did not restart for idle' % t.name)
                    break
                v = idle_step(load, t, k)
                idle[t.name][k] = v
                log('idle %s K=%d held=%d: %s KiB/conn' %
                    (t.name, k, v[1], fmt(v[0], 2)))
                if v[1] < k:
                    notes.append('%s: only %d of %d idle connections '
                                 'were held' % (t.name, v[1], k))

    for t in live:
        t.stop()
    stop(sink)
    meta = machine()
    meta.update(profile=prof, params=p, hello=args.hello,
                date=time.strftime('%Y-%m-%d %H:%M:%S %Z'),
                elapsed=time.time() - t_start, notes=notes,
                skipped=skipped,
                rounds=len(samples['conn'][names[0]]),
                targets={t.name: dict(version=t.version,
                                      settings=t.settings) for t in live})
    sm = summarize(samples, names)
    text = render(meta, samples, idle, names, sm)
    with open(args.out, 'w') as f:
        f.write(text + '\n')
    print(text)
    log('wrote %s' % args.out)


if __name__ == '__main__':
    main()
