"""Settings, process bookkeeping and test data for the end-to-end benchmark.

Part of bench/e2e (run by bench.py, see its docstring and bench/README.md):
the environment-driven settings (ORCHARD_BENCH_*, BUILD_DIR) and constants
every module shares, small helpers (log, free_port, wait_port, median), the
`Procs` registry of every process the benchmark starts (each in its own
process group, pids mirrored to ORCHARD_BENCH_PIDFILE for run.sh's trap),
/proc readers for RSS figures, and the generated files with their SHA-256.
"""

import hashlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD_DIR", "build"))
RESULTS = os.path.join(ROOT, "bench", "results")
DATA = os.path.join(RESULTS, "data")
QUICK = os.environ.get("ORCHARD_BENCH_QUICK", "") not in ("", "0")
RUNS = int(os.environ.get("ORCHARD_BENCH_RUNS", "1" if QUICK else "3"))
WRK_SECONDS = 3 if QUICK else 10
INDEX_N = int(os.environ.get("ORCHARD_BENCH_INDEX_N", "100000" if QUICK else "1000000"))
SCENARIOS = {int(s) for s in os.environ.get("ORCHARD_BENCH_SCENARIOS", "1,2,3,4,5,6,7,8,9,10,11").split(",") if s.strip()}
PIDFILE = os.environ.get("ORCHARD_BENCH_PIDFILE", "")

WAN_RATE = 100e6 / 8  # bytes/s
HOST = "swcdn.apple.com"         # -> origin directly
WAN_HOST = "updates.cdn-apple.com"  # -> origin through the WAN relay
FILES = {"f4k": 4096, "f1m": 1 << 20, "f100m": 100 << 20, "f1g": 1 << 30}
# Scenario 7 publishes this file to orchardd's catalog (and PUTs it to nginx
# dav), then downloads it: 1 GiB, or a 256 MiB file of its own in quick mode.
CATALOG_FILE = "f256m" if QUICK else "f1g"
FILES.setdefault(CATALOG_FILE, 256 << 20)
CATALOG_PACKAGE = "bench"                 # the package name every upload is a version of
CATALOG_BUNDLE_ID = "org.example.bench"   # a non-.pkg file needs one in the query
CATALOG_UPLOADS = 3                       # uploads per system per run (median taken)
ADMIN_TOKEN = "orchard-bench-admin-token"  # [admin] token in the bench's orchard.toml
RANGE_FIRST, RANGE_LEN = 500_000_000, 1_000_000
CLIENTS_COLD = 50
IDLE_CONNS = 10_000
MiB = 1 << 20

SYSTEMS = ("orchard", "nginx-cache", "nginx-direct")
# Scenario 2 also measures nginx direct with sendfile off: the reference is
# the faster of the two nginx direct configurations in the same run.
DIRECT_REFS = ("nginx-direct", "nginx-direct-copy")
# Scenario 2's many-clients case: this many simultaneous downloads of the
# 1 GiB object, each stopped after MANY_SECONDS (GB/s = bytes received / wall).
MANY_CLIENTS = 64
MANY_SECONDS = 4 if QUICK else 6


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------- processes

class Procs:
    """Every process this script starts, so that all of them are stopped."""

    def __init__(self):
        self.procs = {}

    def _record(self):
        if PIDFILE:
            with open(PIDFILE, "w") as f:
                for p in self.procs.values():
                    f.write(f"{p.pid}\n")

    def start(self, name, argv, log_path, nofile=None, **kw):
        def pre():
            os.setpgrp()  # own group: Ctrl-C reaches only this script, which stops them in order
            if nofile:  # as high as allowed (raising the hard limit needs CAP_SYS_RESOURCE)
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                want = nofile if hard == resource.RLIM_INFINITY else min(nofile, hard)
                try:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
                except (ValueError, OSError):
                    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        out = open(log_path, "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pre, **kw)
        out.close()
        self.procs[name] = p
        self._record()
        return p

    def stop(self, name, timeout=15.0):
        p = self.procs.pop(name, None)
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop within {timeout} s: SIGKILL")
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        self._record()

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name, timeout=10.0)


PROCS = Procs()


def proc_status(pid, field):
    """A VmRSS/VmHWM-style field of /proc/PID/status, in bytes."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def cpu_seconds(pid):
    """(user, system) CPU seconds of a process (all its threads) and its
    children (nginx master + workers), from /proc/PID/stat."""
    user = system = 0
    for p in [pid] + children(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime (fields 14, 15)
        except (OSError, IndexError, ValueError):
            pass
    hz = os.sysconf("SC_CLK_TCK")
    return user / hz, system / hz


def tree_sum(pid, field):
    """Sum of a status field over a process and its children (nginx master + workers)."""
    total = 0
    for p in [pid] + children(pid):
        v = proc_status(p, field)
        if v:
            total += v
    return total


# ---------------------------------------------------------------- data

def sha256_file(path, start=0, length=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = length if length is not None else 1 << 62
        while left > 0:
            b = f.read(min(left, 8 * MiB))
            if not b:
                break
            h.update(b)
            left -= len(b)
    return h.hexdigest()


def make_data():
    os.makedirs(os.path.join(DATA, "files"), exist_ok=True)
    sums_path = os.path.join(DATA, "sha256.json")
    sums = {}
    if os.path.exists(sums_path):
        with open(sums_path) as f:
            sums = json.load(f)
    changed = False
    for name, size in FILES.items():
        path = os.path.join(DATA, "files", name)
        if not os.path.exists(path) or os.path.getsize(path) != size or name not in sums:
            log(f"generating {name} ({size} bytes of random data)")
            with open(path + ".tmp", "wb") as out:
                left = size
                while left:
                    n = min(left, 16 * MiB)
                    out.write(os.urandom(n))
                    left -= n
            os.rename(path + ".tmp", path)
            sums[name] = sha256_file(path)
            changed = True
        # The origin answers without Cache-Control, so a cache's heuristic
        # freshness is 10 % of the file's age: a file made seconds ago would
        # go stale between the warm-up fetches. A day-old mtime keeps the
        # objects fresh for the whole run, for every system alike.
        day_ago = time.time() - 86400
        if os.path.getmtime(path) > day_ago:
            os.utime(path, (day_ago, day_ago))
    key = f"f1g@{RANGE_FIRST}+{RANGE_LEN}"
    if key not in sums:
        sums[key] = sha256_file(os.path.join(DATA, "files", "f1g"), RANGE_FIRST, RANGE_LEN)
        changed = True
    if changed:
        with open(sums_path, "w") as f:
            json.dump(sums, f, indent=1)
    return sums
