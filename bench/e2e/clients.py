"""Client-side tools of the end-to-end benchmark.

Part of bench/e2e (run by bench.py): curl downloads (timed, optionally hashed
with openssl), a raw-socket Range GET that times the first and last byte,
Cache-Status / X-Cache-Status checks, warm-up fetches, wrk output parsing and
many curls started at once.
"""

import hashlib
import os
import re
import socket
import subprocess
import tempfile
import time

from common import HOST, RESULTS


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
        if system.startswith("nginx-direct") or "hit" in st.lower():
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


def parallel_curls(port, path, n, host=HOST, sha_dir=None, timeout=900, scheme="http"):
    """n simultaneous GETs. Returns (wall seconds until the last is done, [results]).
    A GET stopped by `timeout` (curl exit 28) still reports the bytes it got.
    With sha_dir, each body is piped into `openssl dgst -sha256` (no disk
    write; OpenSSL uses the CPU's SHA extensions, coreutils' sha256sum is ~5x
    slower and would make the clients the bottleneck). scheme "https": over
    TLS (certificate not checked: the bench's own CA; it costs the same)."""
    procs = []
    tls = ["-k"] if scheme == "https" else []
    t0 = time.monotonic()
    for i in range(n):
        url = f"{scheme}://127.0.0.1:{port}{path}"
        if sha_dir:
            cmd = (f"set -o pipefail; curl -sS {' '.join(tls)} --max-time {timeout} -H 'Host: {host}' -D {sha_dir}/{i}.h "
                   f"-w '%{{http_code}} %{{size_download}}' -o >(openssl dgst -sha256 -r > {sha_dir}/{i}.sha) {url} "
                   f"> {sha_dir}/{i}.w; rc=$?; wait $!; exit $rc")
            p = subprocess.Popen(["bash", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        else:
            p = subprocess.Popen(["curl", "-sS", *tls, "--max-time", str(timeout), "-H", f"Host: {host}", "-o", "/dev/null",
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
