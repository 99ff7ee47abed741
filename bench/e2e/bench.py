#!/usr/bin/env python3
"""Orchard end-to-end benchmark against nginx, all on 127.0.0.1.

Started by bench/e2e/run.sh (which installs what is missing and kills
whatever this script started, also on failure or Ctrl-C). Systems:

  origin        nginx serving generated files, access log (request, status, bytes)
  relay         relay.py: 100 Mbit/s WAN link in front of the origin
  orchard       build/orchardd, fresh storage.dir
  nginx-cache   nginx proxy_cache configured as lancache runs it
  nginx-direct  nginx serving the same files directly (the physical reference)

Environment:
  ORCHARD_BENCH_QUICK=1        one run per scenario, 3 s wrk, 100k objects in scenario 6
  ORCHARD_BENCH_RUNS=N         runs per scenario (default 3; quick: 1)
  ORCHARD_BENCH_INDEX_N=N      objects for scenario 6 (default 1000000; quick: 100000)
  ORCHARD_BENCH_SCENARIOS=1,2  only these scenarios (default all: 1,2,3,4,5,6)
  BUILD_DIR                    build directory (default build)
"""
import hashlib
import json
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

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD_DIR", "build"))
RESULTS = os.path.join(ROOT, "bench", "results")
DATA = os.path.join(RESULTS, "data")
QUICK = os.environ.get("ORCHARD_BENCH_QUICK", "") not in ("", "0")
RUNS = int(os.environ.get("ORCHARD_BENCH_RUNS", "1" if QUICK else "3"))
WRK_SECONDS = 3 if QUICK else 10
INDEX_N = int(os.environ.get("ORCHARD_BENCH_INDEX_N", "100000" if QUICK else "1000000"))
SCENARIOS = {int(s) for s in os.environ.get("ORCHARD_BENCH_SCENARIOS", "1,2,3,4,5,6").split(",") if s.strip()}
PIDFILE = os.environ.get("ORCHARD_BENCH_PIDFILE", "")

WAN_RATE = 100e6 / 8  # bytes/s
HOST = "swcdn.apple.com"         # -> origin directly
WAN_HOST = "updates.cdn-apple.com"  # -> origin through the WAN relay
FILES = {"f4k": 4096, "f1m": 1 << 20, "f100m": 100 << 20, "f1g": 1 << 30}
RANGE_FIRST, RANGE_LEN = 500_000_000, 1_000_000
CLIENTS_COLD = 50
IDLE_CONNS = 10_000
MiB = 1 << 20

SYSTEMS = ("orchard", "nginx-cache", "nginx-direct")


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


# ---------------------------------------------------------------- systems

NGINX_COMMON = """
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 65536;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 20000; multi_accept on; }}
http {{
  default_type application/octet-stream;
  client_body_temp_path {prefix}/client_body;
  proxy_temp_path {prefix}/proxy_temp;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
  {http}
}}
"""


def write_nginx(prefix, http, workers="auto"):
    os.makedirs(prefix, exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_COMMON.format(prefix=prefix, http=http, workers=workers))
    return conf


def start_nginx(name, prefix, conf, port):
    PROCS.start(name, ["nginx", "-p", prefix, "-e", os.path.join(prefix, "error.log"), "-c", conf],
                os.path.join(prefix, "stdout.log"))
    wait_port(port)
    return PROCS.procs[name]


class Env:
    def __init__(self, work):
        self.work = work
        self.ports = {k: free_port() for k in ("origin", "relay", "orchard", "cache", "direct")}
        self.files = os.path.join(DATA, "files")
        self.origin_log = os.path.join(work, "origin", "access.log")
        self.orchard_state = None
        self.orchard_stderr = os.path.join(work, "orchardd.log")

    # --- origin, relay, direct: started once
    def start_origin(self):
        prefix = os.path.join(self.work, "origin")
        http = f"""
  log_format bench '$msec "$request" $status $body_bytes_sent "$http_range" $request_time';
  access_log {self.origin_log} bench;
  sendfile on;
  tcp_nopush on;
  server {{
    listen 127.0.0.1:{self.ports['origin']} reuseport backlog=4096;
    root {self.files};
    location / {{ }}
  }}"""
        start_nginx("origin", prefix, write_nginx(prefix, http), self.ports["origin"])

    def start_relay(self):
        p = PROCS.start("relay", [sys.executable, os.path.join(ROOT, "bench", "e2e", "relay.py"),
                                  "--listen-port", str(self.ports["relay"]), "--target-port", str(self.ports["origin"]),
                                  "--rate", str(WAN_RATE)], os.path.join(self.work, "relay.log"))
        wait_port(self.ports["relay"])
        return p

    def start_direct(self):
        prefix = os.path.join(self.work, "direct")
        http = f"""
  access_log off;
  sendfile on;
  tcp_nopush on;
  server {{
    listen 127.0.0.1:{self.ports['direct']} reuseport backlog=4096;
    root {self.files};
    location / {{ }}
  }}"""
        start_nginx("nginx-direct", prefix, write_nginx(prefix, http), self.ports["direct"])

    # --- nginx proxy_cache, as lancache runs it
    def start_cache(self, fresh):
        prefix = os.path.join(self.work, "nginx-cache")
        cache = os.path.join(prefix, "cache")
        if fresh and os.path.exists(cache):
            shutil.rmtree(cache)
        os.makedirs(cache, exist_ok=True)
        loc = """
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_cache generic;
      proxy_cache_key $host$uri;
      proxy_cache_valid 200 206 1y;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 1h;
      proxy_cache_lock_age 1h;
      proxy_buffering on;
      proxy_ignore_headers Expires Cache-Control;
      proxy_max_temp_file_size 40960m;
      proxy_read_timeout 300s;
      add_header X-Cache-Status $upstream_cache_status;"""
        http = f"""
  access_log off;
  sendfile on;
  tcp_nopush on;
  proxy_cache_path {cache} levels=2:2 keys_zone=generic:500m inactive=200d max_size=100g
                   loader_files=1000 loader_sleep=50ms loader_threshold=300ms use_temp_path=off;
  upstream origin {{ server 127.0.0.1:{self.ports['origin']}; keepalive 32; }}
  upstream wan {{ server 127.0.0.1:{self.ports['relay']}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{self.ports['cache']} reuseport backlog=4096 default_server;
    server_name {HOST};
    location / {{ proxy_pass http://origin; {loc}
    }}
  }}
  server {{
    listen 127.0.0.1:{self.ports['cache']};
    server_name {WAN_HOST};
    location / {{ proxy_pass http://wan; {loc}
    }}
  }}"""
        return start_nginx("nginx-cache", prefix, write_nginx(prefix, http), self.ports["cache"])

    def stop_cache(self):
        PROCS.stop("nginx-cache")

    # --- orchardd
    def start_orchard(self, fresh, state=None):
        state = state or os.path.join(self.work, "orchard-state")
        if fresh and os.path.exists(state):
            shutil.rmtree(state)
        os.makedirs(state, exist_ok=True)
        conf = os.path.join(self.work, "orchard.toml")
        with open(conf, "w") as f:
            f.write(f"""[server]
listen = ["127.0.0.1:{self.ports['orchard']}"]
workers = 0
drain_timeout = "1s"
idle_timeout = "300s"
max_connections = 20000
log_level = "warn"
access_log = false

[storage]
dir = "{state}"
cache_limit = "200GiB"

[upstream]
resolve = {{ "{HOST}" = "127.0.0.1:{self.ports['origin']}", "{WAN_HOST}" = "127.0.0.1:{self.ports['relay']}" }}
read_timeout = "300s"
""")
        t0 = time.monotonic()
        with open(self.orchard_stderr, "ab") as lf:
            lf.write(f"---- start {time.strftime('%H:%M:%S')} state={state}\n".encode())
        p = PROCS.start("orchard", [os.path.join(BUILD, "orchardd"), "--config", conf], self.orchard_stderr,
                        nofile=65536)
        # "orchardd ready" on stderr (which goes to the log file)
        deadline = t0 + 120
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"orchardd exited with {p.returncode}; see {self.orchard_stderr}")
            with open(self.orchard_stderr, "rb") as lf:
                txt = lf.read()
            if txt.rfind(b"orchardd ready") > txt.rfind(b"---- start"):
                return p, time.monotonic() - t0
            time.sleep(0.005)
        raise RuntimeError("orchardd not ready after 120 s")

    def stop_orchard(self):
        PROCS.stop("orchard")

    def port(self, system):
        return {"orchard": self.ports["orchard"], "nginx-cache": self.ports["cache"],
                "nginx-direct": self.ports["direct"], "origin": self.ports["origin"]}[system]

    def pid(self, system):
        p = PROCS.procs.get(system)
        return p.pid if p else None

    def origin_log_offset(self):
        try:
            return os.path.getsize(self.origin_log)
        except OSError:
            return 0

    def origin_requests(self, offset, path):
        """(requests, body bytes) the origin logged for `path` since `offset`."""
        reqs, sent = 0, 0
        with open(self.origin_log, "rb") as f:
            f.seek(offset)
            for line in f.read().decode(errors="replace").splitlines():
                m = re.match(r'^\S+ "(\S+) (\S+) [^"]*" (\d+) (\d+)', line)
                if m and m.group(2).split("?")[0] == path:
                    reqs += 1
                    sent += int(m.group(4))
        return reqs, sent


# ---------------------------------------------------------------- clients

def curl(port, path, host=HOST, extra=(), out="/dev/null", timeout=600):
    """One GET; returns dict(code, size, ttfb, total, headers)."""
    hdr = tempfile.NamedTemporaryFile(delete=False, dir=RESULTS, prefix="hdr.")
    hdr.close()
    try:
        r = subprocess.run(["curl", "-sS", "--max-time", str(timeout), "-H", f"Host: {host}", "-D", hdr.name,
                            "-o", out, "-w", "%{http_code} %{size_download} %{time_starttransfer} %{time_total}",
                            *extra, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True)
        with open(hdr.name, errors="replace") as f:
            headers = f.read()
    finally:
        os.unlink(hdr.name)
    parts = r.stdout.split()
    if len(parts) != 4:
        return {"code": 0, "size": 0, "ttfb": None, "total": None, "headers": headers, "error": r.stderr.strip()}
    return {"code": int(parts[0]), "size": int(parts[1]), "ttfb": float(parts[2]), "total": float(parts[3]),
            "headers": headers, "error": r.stderr.strip()}


def range_get(port, path, host, first, last, timeout=300):
    """GET with Range: bytes=first-last, timed at the byte level (curl's
    time_starttransfer would time the first byte of a 200 full answer, not of
    the bytes asked for). Returns dict(code, size, ttfb, total, sha, headers):
    ttfb = when the first byte of the requested range arrived (for a 200: when
    the body reached offset `first`), total = when its last byte arrived, size
    = bytes of the range received, sha = SHA-256 of those bytes."""
    want = last - first + 1
    t0 = time.monotonic()
    res = {"code": 0, "size": 0, "ttfb": None, "total": None, "sha": "", "headers": "", "error": ""}
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        res["error"] = str(e)
        return res
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nRange: bytes={first}-{last}\r\nUser-Agent: orchard-bench\r\n"
                  f"Accept: */*\r\nConnection: close\r\n\r\n".encode())
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        head = b""
        while b"\r\n\r\n" not in head:
            n = s.recv_into(buf)
            if n == 0:
                res["error"] = "closed before the head"
                return res
            head += bytes(view[:n])
        head, _, rest = head.partition(b"\r\n\r\n")
        res["headers"] = head.decode(errors="replace")
        res["code"] = int(head.split(b" ", 2)[1])
        skip = 0 if res["code"] == 206 else first  # body offset where the range starts
        h = hashlib.sha256()
        pos = 0  # body bytes seen

        def take(chunk):
            nonlocal pos
            a, b = pos, pos + len(chunk)
            lo, hi = max(a, skip), min(b, skip + want)
            if lo < hi:
                if res["ttfb"] is None:
                    res["ttfb"] = time.monotonic() - t0
                h.update(chunk[lo - a:hi - a])
                res["size"] += hi - lo
                if res["size"] == want:
                    res["total"] = time.monotonic() - t0
            pos = b

        take(rest)
        while res["size"] < want:
            n = s.recv_into(buf)
            if n == 0:
                break
            take(view[:n])
        res["sha"] = h.hexdigest()
        if res["total"] is None:
            res["error"] = f"ended after {pos} body bytes"
    except OSError as e:
        res["error"] = str(e)
    finally:
        s.close()
    return res


def cache_status(res):
    for line in res["headers"].splitlines():
        k, _, v = line.partition(":")
        if k.lower() in ("cache-status", "x-cache-status"):
            return v.strip()
    return ""


def warm(system, env, path, host=HOST):
    """Fetches until the system answers from its cache (max 3 tries)."""
    port = env.port(system)
    for _ in range(3):
        r = curl(port, path, host)
        if r["code"] != 200:
            raise RuntimeError(f"{system} {path}: HTTP {r['code']} {r['error']}")
        st = cache_status(r)
        if system == "nginx-direct" or "hit" in st.lower():
            return
        time.sleep(0.5)
    raise RuntimeError(f"{system} {path}: not a hit after 3 fetches (last Cache-Status: {st!r})")


def parse_wrk(out):
    res = {"rps": None, "p99_ms": None, "non2xx": 0, "errors": ""}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if m:
        res["p99_ms"] = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors:.*", out)
    if m:
        res["errors"] = m.group(0)
    return res


def parallel_curls(port, path, n, host=HOST, sha_dir=None, timeout=900):
    """n simultaneous GETs. Returns (wall seconds until the last is done, [results]).
    With sha_dir, each body is piped into `openssl dgst -sha256` (no disk
    write; OpenSSL uses the CPU's SHA extensions, coreutils' sha256sum is ~5x
    slower and would make the clients the bottleneck)."""
    procs = []
    t0 = time.monotonic()
    for i in range(n):
        url = f"http://127.0.0.1:{port}{path}"
        if sha_dir:
            cmd = (f"set -o pipefail; curl -sS --max-time {timeout} -H 'Host: {host}' -D {sha_dir}/{i}.h "
                   f"-w '%{{http_code}} %{{size_download}}' -o >(openssl dgst -sha256 -r > {sha_dir}/{i}.sha) {url} "
                   f"> {sha_dir}/{i}.w; rc=$?; wait $!; exit $rc")
            p = subprocess.Popen(["bash", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        else:
            p = subprocess.Popen(["curl", "-sS", "--max-time", str(timeout), "-H", f"Host: {host}", "-o", "/dev/null",
                                  "-w", "%{http_code} %{size_download}", url],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(p)
    done = [None] * n
    results = [None] * n
    while any(d is None for d in done):
        for i, p in enumerate(procs):
            if done[i] is None and p.poll() is not None:
                done[i] = time.monotonic() - t0
        time.sleep(0.002)
    wall = max(done)
    for i, p in enumerate(procs):
        out, err = p.communicate()
        if sha_dir:
            try:
                with open(f"{sha_dir}/{i}.w") as f:
                    out = f.read()
                with open(f"{sha_dir}/{i}.sha") as f:
                    sha = f.read().split()[0]
            except (OSError, IndexError):
                sha = ""
        parts = (out or "").split()
        results[i] = {"rc": p.returncode, "code": int(parts[0]) if len(parts) >= 1 else 0,
                      "size": int(parts[1]) if len(parts) >= 2 else 0, "time": done[i], "err": (err or "").strip()}
        if sha_dir:
            results[i]["sha"] = sha
    return wall, results


# ---------------------------------------------------------------- scenarios

class Results:
    def __init__(self):
        self.raw = {}
        self.notes = []

    def add(self, key, system, value):
        self.raw.setdefault(key, {}).setdefault(system, []).append(value)

    def med(self, key, system):
        return median(self.raw.get(key, {}).get(system, []))

    def note(self, msg):
        log("NOTE: " + msg)
        self.notes.append(msg)


def scenario_small_hit(env, R):
    log(f"scenario 1: small hit, wrk -t2 -c64 -d{WRK_SECONDS}s, {RUNS} run(s)")
    for s in SYSTEMS:
        warm(s, env, "/f4k")
    for run in range(RUNS):
        for s in SYSTEMS:
            out = subprocess.run(["wrk", "-t2", "-c64", f"-d{WRK_SECONDS}s", "--latency", "-H", f"Host: {HOST}",
                                  f"http://127.0.0.1:{env.port(s)}/f4k"], capture_output=True, text=True).stdout
            w = parse_wrk(out)
            log(f"  run {run + 1} {s}: {w['rps']} req/s, p99 {w['p99_ms']} ms {w['errors']}")
            if w["non2xx"] or w["errors"]:
                R.note(f"scenario 1 {s} run {run + 1}: non-2xx {w['non2xx']} {w['errors']}")
            R.add("s1.rps", s, w["rps"])
            R.add("s1.p99_ms", s, w["p99_ms"])


def scenario_large_hit(env, R):
    log(f"scenario 2: large hit (1 GiB), 1 and 8 concurrent downloads, {RUNS} run(s)")
    for s in SYSTEMS:
        warm(s, env, "/f1g")
    # Restart the caches (state kept) so that VmHWM covers this scenario only.
    env.stop_orchard()
    env.start_orchard(fresh=False)
    env.stop_cache()
    env.start_cache(fresh=False)
    R.add("s5.rss_base_mib", "orchard", proc_status(env.pid("orchard"), "VmRSS") / MiB)
    for s in ("orchard", "nginx-cache"):
        warm(s, env, "/f1g")  # a hit after the restart (also proves the store survived it)
    for run in range(RUNS):
        for conc in (1, 8):
            for s in SYSTEMS:
                wall, res = parallel_curls(env.port(s), "/f1g", conc)
                bad = [r for r in res if r["code"] != 200 or r["size"] != FILES["f1g"]]
                if bad:
                    R.note(f"scenario 2 {s} x{conc}: {len(bad)} bad downloads: {bad[0]}")
                gbs = conc * FILES["f1g"] / wall / 1e9
                log(f"  run {run + 1} {s} x{conc}: {gbs:.2f} GB/s ({wall:.2f} s)")
                R.add(f"s2.gbs_{conc}", s, gbs)
    R.add("s5.peak_s2_mib", "orchard", proc_status(env.pid("orchard"), "VmHWM") / MiB)
    R.add("s5.peak_s2_mib", "nginx-cache", tree_sum(env.pid("nginx-cache"), "VmHWM") / MiB)


def scenario_idle(env, R, run):
    log(f"scenario 5: {IDLE_CONNS} idle keep-alive connections (run {run + 1})")
    for s in ("orchard", "nginx-cache"):
        pid = env.pid(s)
        before = tree_sum(pid, "VmRSS") if s != "orchard" else proc_status(pid, "VmRSS")
        src = f"127.0.{10 + run}.{1 if s == 'orchard' else 2}"
        p = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "e2e", "idle_conns.py"),
                              str(env.port(s)), HOST, "/f4k", str(IDLE_CONNS), src],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline().strip()
        opened = int(line.split()[1]) if line.startswith("open") else 0
        time.sleep(1.0)
        after = tree_sum(pid, "VmRSS") if s != "orchard" else proc_status(pid, "VmRSS")
        p.stdin.write("\n")
        p.stdin.flush()
        line = p.stdout.readline().strip()
        still = int(line.split()[1]) if line.startswith("still_open") else 0
        p.stdin.close()
        err = p.stderr.read()
        p.wait()
        if opened != IDLE_CONNS or still != IDLE_CONNS:
            R.note(f"scenario 5 {s}: {opened}/{IDLE_CONNS} connections answered, {still} still open at measurement "
                   f"{err.strip()[:200]}")
        log(f"  {s}: RSS {before / MiB:.1f} MiB -> {after / MiB:.1f} MiB with {opened} connections ({still} still open)")
        R.add("s5.idle_rss_mib", s, after / MiB)
        R.add("s5.idle_conns_ok", s, min(opened, still))
        time.sleep(0.5)


def scenario_cold(env, R, sums):
    log(f"scenario 3: cold coalescing, {CLIENTS_COLD} clients, 100 MiB through the 100 Mbit/s relay, {RUNS} run(s)")
    shadir = os.path.join(env.work, "sha")
    for run in range(RUNS):
        # One client over the same link, no cache: the reference time.
        r = curl(env.ports["relay"], "/f100m", WAN_HOST)
        if r["code"] != 200 or r["size"] != FILES["f100m"]:
            R.note(f"scenario 3: direct download through the relay failed: {r}")
        R.add("s3.link_s", "link", r["total"])
        log(f"  run {run + 1} one client through the link: {r['total']:.2f} s")
        for s in ("orchard", "nginx-cache"):
            if s == "orchard":
                env.stop_orchard()
                env.start_orchard(fresh=True)
            else:
                env.stop_cache()
                env.start_cache(fresh=True)
            shutil.rmtree(shadir, ignore_errors=True)
            os.makedirs(shadir)
            off = env.origin_log_offset()
            wall, res = parallel_curls(env.port(s), "/f100m", CLIENTS_COLD, WAN_HOST, sha_dir=shadir)
            time.sleep(1.0)  # let the origin log its line
            reqs, sent = env.origin_requests(off, "/f100m")
            good = sum(1 for x in res if x["code"] == 200 and x.get("sha") == sums["f100m"])
            if good != CLIENTS_COLD:
                bad = [x for x in res if not (x["code"] == 200 and x.get("sha") == sums["f100m"])]
                R.note(f"scenario 3 {s} run {run + 1}: {CLIENTS_COLD - good} bodies wrong or incomplete, e.g. {bad[0]}")
            times = sorted(x["time"] for x in res)
            log(f"  run {run + 1} {s}: last done {wall:.2f} s (first {times[0]:.2f} s), origin {reqs} request(s) "
                f"{sent} bytes, {good}/{CLIENTS_COLD} verified")
            R.add("s3.last_s", s, wall)
            R.add("s3.first_s", s, times[0])
            R.add("s3.origin_reqs", s, reqs)
            R.add("s3.origin_bytes_ratio", s, sent / FILES["f100m"])
            R.add("s3.verified", s, good)
            if s == "orchard":
                R.add("s5.peak_s3_mib", s, proc_status(env.pid("orchard"), "VmHWM") / MiB)
            else:
                R.add("s5.peak_s3_mib", s, tree_sum(env.pid("nginx-cache"), "VmHWM") / MiB)
    shutil.rmtree(shadir, ignore_errors=True)


def scenario_range(env, R, sums):
    log(f"scenario 4: range on a miss, bytes={RANGE_FIRST}-{RANGE_FIRST + RANGE_LEN - 1} of the 1 GiB object, "
        f"{RUNS} run(s)")
    for run in range(RUNS):
        for s in ("origin", "orchard", "nginx-cache"):
            if s == "orchard":
                env.stop_orchard()
                env.start_orchard(fresh=True)
            elif s == "nginx-cache":
                env.stop_cache()
                env.start_cache(fresh=True)
            r = range_get(env.port(s), "/f1g", HOST, RANGE_FIRST, RANGE_FIRST + RANGE_LEN - 1)
            right = r["size"] == RANGE_LEN and r["sha"] == sums[f"f1g@{RANGE_FIRST}+{RANGE_LEN}"]
            ok = r["code"] == 206 and right
            log(f"  run {run + 1} {s}: HTTP {r['code']}, range bytes {r['size']}, ttfb {fmt(r['ttfb'], 4)} s, "
                f"last byte {fmt(r['total'], 4)} s, {'correct 206 range' if ok else 'NOT a 206 with the range'}"
                f"{' (bytes right)' if right and not ok else ''} {r['error']}")
            if not ok:
                R.note(f"scenario 4 {s} run {run + 1}: answered HTTP {r['code']} instead of a 206 with the range; "
                       f"times are until the requested bytes arrived within that answer {r['error']}")
            R.add("s4.ttfb_s", s, r["ttfb"])
            R.add("s4.total_s", s, r["total"])
            R.add("s4.correct", s, 1 if ok else 0)


def scenario_index(env, R):
    n = INDEX_N
    state = os.path.join(DATA, f"index-{n}")
    log(f"scenario 6: index scale with {n} objects (store kept in {state} for later runs)")
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(BUILD, "bench", "orchard_bench_populate"), state, str(n)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"populate failed: {r.stderr}")
    info = json.loads(r.stdout)
    log(f"  populated: {info} in {time.monotonic() - t0:.1f} s")
    R.add("s6.populate_s", "orchard", info["total_s"] if info["had"] < n else None)
    for run in range(RUNS):
        env.stop_orchard()
        _, startup = env.start_orchard(fresh=False, state=state)
        rss = proc_status(env.pid("orchard"), "VmRSS") / MiB
        objects = None
        try:
            res = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{env.ports['orchard']}/api/v1/status"],
                                 capture_output=True, text=True, timeout=30)
            objects = json.loads(res.stdout).get("Objects")
        except (ValueError, subprocess.TimeoutExpired):
            pass
        log(f"  run {run + 1}: orchardd ready after {startup:.3f} s with {objects} objects, RSS {rss:.0f} MiB")
        if objects != n:
            R.note(f"scenario 6: orchardd reports {objects} objects, expected {n}")
        R.add("s6.startup_s", "orchard", startup)
        R.add("s6.rss_mib", "orchard", rss)
    env.stop_orchard()
    env.start_orchard(fresh=True)  # leave the index store alone
    # Lookup latency: the micro benchmark on the same store.
    env_vars = dict(os.environ, ORCHARD_BENCH_INDEX_N=str(n), ORCHARD_BENCH_INDEX_DIR=state)
    out = os.path.join(env.work, "lookup.json")
    r = subprocess.run([os.path.join(BUILD, "bench", "orchard_micro_bench"), "--benchmark_filter=BM_StoreLookup",
                        f"--benchmark_repetitions={RUNS}", "--benchmark_min_time=0.5" if not QUICK else
                        "--benchmark_min_time=0.1", "--benchmark_format=json", f"--benchmark_out={out}"],
                       env=env_vars, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"micro bench failed: {r.stderr[-2000:]}")
    with open(out) as f:
        js = json.load(f)
    for b in js["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        if b.get("error_occurred"):
            R.note(f"scenario 6: {b['name']}: {b.get('error_message', 'error')}")
            continue
        if b["name"].startswith("BM_StoreLookupLatency") and "p99_us" in b:
            R.add("s6.lookup_p99_us", "orchard", b["p99_us"])
            R.add("s6.lookup_p50_us", "orchard", b["p50_us"])
        elif b["name"] == "BM_StoreLookupHit/threads:1" and "items_per_second" in b:
            R.add("s6.lookup_mops", "orchard", b["items_per_second"] / 1e6)
    log(f"  lookup p50 {R.med('s6.lookup_p50_us', 'orchard')} us, p99 {R.med('s6.lookup_p99_us', 'orchard')} us")


# ---------------------------------------------------------------- report

def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{digits}f}".rstrip("0").rstrip(".") if v != int(v) else f"{v:.0f}"
    return str(v)


def build_table(R):
    rows = []  # (scenario, metric, orchard, nginx-cache, nginx-direct/reference, ratio label, ratio, target, pass)

    def ratio(a, b):
        return a / b if a is not None and b else None

    def row(scn, metric, o, c, d, rlabel, rv, target=None, ok=None):
        rows.append({"scenario": scn, "metric": metric, "orchard": o, "nginx_cache": c, "reference": d,
                     "ratio_label": rlabel, "ratio": rv, "target": target,
                     "result": None if ok is None else ("PASS" if ok else "MISS")})

    m = R.med
    if "s1.rps" in R.raw:
        o, c, d = m("s1.rps", "orchard"), m("s1.rps", "nginx-cache"), m("s1.rps", "nginx-direct")
        rv = ratio(o, c)
        row("1 small hit 4 KiB", "requests/s", o, c, d, "O/cache", rv, ">= 1.2", rv is not None and rv >= 1.2)
        o, c, d = m("s1.p99_ms", "orchard"), m("s1.p99_ms", "nginx-cache"), m("s1.p99_ms", "nginx-direct")
        rv = ratio(o, c)
        row("1 small hit 4 KiB", "p99 latency ms", o, c, d, "O/cache", rv, "<= 1.0", rv is not None and rv <= 1.0)
    for conc in (1, 8):
        k = f"s2.gbs_{conc}"
        if k in R.raw:
            o, c, d = m(k, "orchard"), m(k, "nginx-cache"), m(k, "nginx-direct")
            rv = ratio(o, d)
            row("2 large hit 1 GiB", f"GB/s, {conc} download{'s' if conc > 1 else ''}", o, c, d,
                "O/direct", rv, ">= 0.95", rv is not None and rv >= 0.95)
            row("2 large hit 1 GiB", f"GB/s, {conc} download{'s' if conc > 1 else ''}", None, None, None,
                "O/cache", ratio(o, c))
    if "s3.last_s" in R.raw:
        link = m("s3.link_s", "link")
        o, c = m("s3.origin_reqs", "orchard"), m("s3.origin_reqs", "nginx-cache")
        row("3 cold coalescing 50x100 MiB", "origin requests", o, c, 1, "O/cache", ratio(o, c))
        o, c = m("s3.origin_bytes_ratio", "orchard"), m("s3.origin_bytes_ratio", "nginx-cache")
        allo = R.raw["s3.origin_bytes_ratio"].get("orchard", [])
        row("3 cold coalescing 50x100 MiB", "origin bytes / object size", o, c, 1.0, "O/cache", ratio(o, c),
            "= 1.0", bool(allo) and all(abs(x - 1.0) < 1e-9 for x in allo))
        o, c = m("s3.last_s", "orchard"), m("s3.last_s", "nginx-cache")
        rv = ratio(o, link)
        row("3 cold coalescing 50x100 MiB", "last client done s (ref: 1 client over the link)", o, c, link,
            "O/link", rv, "<= 1.1", rv is not None and rv <= 1.1)
        row("3 cold coalescing 50x100 MiB", "last client done s", None, None, None, "O/cache", ratio(o, c))
        row("3 cold coalescing 50x100 MiB", "first client done s", m("s3.first_s", "orchard"),
            m("s3.first_s", "nginx-cache"), link, "O/cache", ratio(m("s3.first_s", "orchard"), m("s3.first_s", "nginx-cache")))
        vo = R.raw["s3.verified"].get("orchard", [])
        vc = R.raw["s3.verified"].get("nginx-cache", [])
        row("3 cold coalescing 50x100 MiB", "bodies verified by SHA-256 (min over runs)", min(vo) if vo else None,
            min(vc) if vc else None, CLIENTS_COLD, None, None, f"= {CLIENTS_COLD}", bool(vo) and min(vo) == CLIENTS_COLD)
    if "s4.ttfb_s" in R.raw:
        o, c, d = m("s4.ttfb_s", "orchard"), m("s4.ttfb_s", "nginx-cache"), m("s4.ttfb_s", "origin")
        rv = ratio(o, d)
        row("4 range on a miss (1 MB @ 500 MB)", "time to first byte of the range s (ref: origin)", o, c, d, "O/origin", rv,
            "<= 1.5", rv is not None and rv <= 1.5)
        row("4 range on a miss (1 MB @ 500 MB)", "time to first byte of the range s", None, None, None, "O/cache", ratio(o, c))
        o, c, d = m("s4.total_s", "orchard"), m("s4.total_s", "nginx-cache"), m("s4.total_s", "origin")
        row("4 range on a miss (1 MB @ 500 MB)", "time to last byte of the range s (ref: origin)", o, c, d, "O/cache", ratio(o, c))
        co = R.raw["s4.correct"].get("orchard", [])
        row("4 range on a miss (1 MB @ 500 MB)", "answered the 206 range (runs ok)", sum(co),
            sum(R.raw["s4.correct"].get("nginx-cache", [])), sum(R.raw["s4.correct"].get("origin", [])), None, None,
            f"= {len(co)}", bool(co) and all(co))
    if "s5.peak_s2_mib" in R.raw or "s5.peak_s3_mib" in R.raw or "s5.idle_rss_mib" in R.raw:
        base = m("s5.rss_base_mib", "orchard")
        p2o, p2c = m("s5.peak_s2_mib", "orchard"), m("s5.peak_s2_mib", "nginx-cache")
        p3o, p3c = m("s5.peak_s3_mib", "orchard"), m("s5.peak_s3_mib", "nginx-cache")
        if p2o is not None:
            row("5 memory", "peak RSS MiB during 2 (1 GiB hits)", p2o, p2c, None, "O/cache", ratio(p2o, p2c))
        if p3o is not None:
            row("5 memory", "peak RSS MiB during 3 (100 MiB fill, 50 readers)", p3o, p3c, None, "O/cache",
                ratio(p3o, p3c))
        peaks = [x for x in (p2o, p3o) if x is not None]
        if peaks and base is not None:
            # "does not grow with object size": the peak while moving 1 GiB / 100 MiB
            # objects stays within 64 MiB of the idle process (buffers are fixed per connection).
            row("5 memory", "peak RSS growth MiB over idle (idle RSS as ref)", max(peaks) - base, None, base, None,
                None, "< 64 (indep. of size)", max(peaks) - base < 64)
        io, ic = m("s5.idle_rss_mib", "orchard"), m("s5.idle_rss_mib", "nginx-cache")
        if io is not None:
            row("5 memory", f"RSS MiB with {IDLE_CONNS} idle keep-alive conns", io, ic, None, "O/cache", ratio(io, ic),
                "< 200", io < 200 and min(R.raw["s5.idle_conns_ok"].get("orchard", [0])) == IDLE_CONNS)
    if "s6.startup_s" in R.raw:
        o = m("s6.startup_s", "orchard")
        row("6 index scale", f"start-up s with {INDEX_N} objects", o, None, None, None, None, "< 2", o < 2)
        o = m("s6.lookup_p99_us", "orchard")
        row("6 index scale", f"lookup p99 us with {INDEX_N} objects", o, None, None, None, None, "< 50",
            o is not None and o < 50)
        row("6 index scale", "lookup p50 us", m("s6.lookup_p50_us", "orchard"), None, None, None, None)
        row("6 index scale", "RSS MiB after start-up", m("s6.rss_mib", "orchard"), None, None, None, None)
    return rows


def print_table(rows):
    head = ["scenario", "metric", "orchard", "nginx cache", "direct/ref", "ratio", "target", "result"]
    lines = []
    for r in rows:
        rl = f"{r['ratio_label']} {fmt(r['ratio'])}" if r["ratio_label"] and r["ratio"] is not None else ""
        lines.append([r["scenario"] if r["orchard"] is not None or r["nginx_cache"] is not None else "", r["metric"],
                      fmt(r["orchard"]), fmt(r["nginx_cache"]), fmt(r["reference"]), rl, r["target"] or "",
                      r["result"] or ""])
    widths = [max(len(head[i]), *(len(l[i]) for l in lines)) if lines else len(head[i]) for i in range(len(head))]
    out = []
    sep = "-+-".join("-" * w for w in widths)
    out.append(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
    out.append(sep)
    for l in lines:
        out.append(" | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(l, widths))))
    return "\n".join(out)


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    osr = ""
    try:
        with open("/etc/os-release") as f:
            osr = dict(l.strip().split("=", 1) for l in f if "=" in l).get("PRETTY_NAME", "").strip('"')
    except OSError:
        pass
    nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "mem_mib": mem, "kernel": platform.release(),
            "os": osr, "nginx": nginx_v}


def main():
    os.makedirs(RESULTS, exist_ok=True)
    for tool in ("nginx", "wrk", "curl", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (bench/e2e/run.sh installs it)")
    for exe in ("orchardd", "bench/orchard_micro_bench", "bench/orchard_bench_populate"):
        if not os.access(os.path.join(BUILD, exe), os.X_OK):
            sys.exit(f"{BUILD}/{exe} missing: build first (make build)")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    work = tempfile.mkdtemp(prefix=f"run-{stamp}-", dir=RESULTS)
    log(f"work dir {work}; {'QUICK mode, ' if QUICK else ''}{RUNS} run(s) per scenario; scenarios {sorted(SCENARIOS)}")
    sums = make_data()
    env = Env(work)
    R = Results()
    t_start = time.monotonic()
    ok = False
    try:
        env.start_origin()
        env.start_relay()
        env.start_direct()
        env.start_cache(fresh=True)
        env.start_orchard(fresh=True)
        if 1 in SCENARIOS:
            scenario_small_hit(env, R)
        if 5 in SCENARIOS:
            for run in range(RUNS):
                if 1 not in SCENARIOS and run == 0:
                    warm("orchard", env, "/f4k")
                    warm("nginx-cache", env, "/f4k")
                scenario_idle(env, R, run)
        if 2 in SCENARIOS:
            scenario_large_hit(env, R)
        if 3 in SCENARIOS:
            scenario_cold(env, R, sums)
        if 4 in SCENARIOS:
            scenario_range(env, R, sums)
        if 6 in SCENARIOS:
            scenario_index(env, R)
        ok = True
    finally:
        PROCS.stop_all()
        with open(env.orchard_stderr, errors="replace") as f:
            olog = [l.rstrip() for l in f if l.strip() and not l.startswith("----") and "orchardd ready" not in l]
        if olog:
            R.note(f"orchardd logged {len(olog)} line(s) at warn or above, e.g.: " + " / ".join(olog[:5]))
    rows = build_table(R)
    table = print_table(rows)
    print()
    print(f"Orchard vs nginx, {time.strftime('%Y-%m-%d %H:%M')}, {RUNS} run(s) per scenario, medians"
          f"{' (QUICK mode)' if QUICK else ''}")
    print(table)
    targets = [r for r in rows if r["result"]]
    print()
    print("Targets:")
    for r in targets:
        print(f"  {r['result']:4}  {r['scenario']}: {r['metric']} {('(' + r['ratio_label'] + ' ' + fmt(r['ratio']) + ')') if r['ratio'] is not None and r['ratio_label'] else '= ' + fmt(r['orchard'])} target {r['target']}")
    if R.notes:
        print()
        print("Notes:")
        for n in R.notes:
            print(f"  - {n}")
    doc = {"timestamp": stamp, "quick": QUICK, "runs": RUNS, "wrk_seconds": WRK_SECONDS, "index_n": INDEX_N,
           "scenarios": sorted(SCENARIOS), "machine": machine(), "duration_s": time.monotonic() - t_start,
           "rows": rows, "raw": R.raw, "notes": R.notes, "complete": ok}
    path = os.path.join(RESULTS, f"{stamp}.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"\nJSON: {path}")
    shutil.rmtree(work, ignore_errors=True) if ok and not os.environ.get("ORCHARD_BENCH_KEEP") else None


if __name__ == "__main__":
    def on_signal(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    try:
        main()
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        PROCS.stop_all()
        sys.exit(130)
