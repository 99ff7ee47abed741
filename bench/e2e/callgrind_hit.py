#!/usr/bin/env python3
"""Instructions per small hit, counted by callgrind (repeatable on a noisy
machine, unlike a timing).

  bench/e2e/callgrind_hit.py [--orchardd build/orchardd] [--hits 2000] [--size 4096]

Starts the local test origin and `orchardd` (one worker) under
`valgrind --tool=callgrind`, fetches one object twice (a miss, then a hit,
so every path is warm), zeroes the counters, sends --hits hits on one
keep-alive connection, dumps, and prints the instructions of the whole
process divided by the hits. Everything listens on 127.0.0.1 and is stopped
on exit. Run it on two builds to compare them (same binary, inputs and
environment give the same count)."""

import argparse
import glob
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))
from origin import Origin, gen_path  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    while len(rest) < n:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed mid-body")
        rest += d
    return head, rest[n:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orchardd", default=os.path.join(ROOT, "build", "orchardd"))
    ap.add_argument("--hits", type=int, default=2000)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="orchard-cg-")
    origin = Origin().start()
    port = free_port()
    cfg = os.path.join(work, "orchard.toml")
    with open(cfg, "w") as f:
        f.write(f'[server]\nlisten = ["127.0.0.1:{port}"]\nworkers = 1\n'
                f'[storage]\ndir = "{work}/state"\ncache_limit = "1GiB"\n'
                f'[upstream]\nallow = ["swcdn.apple.com"]\n'
                f'resolve = {{ "swcdn.apple.com" = "127.0.0.1:{origin.port}" }}\n'
                '[apple]\nos_feed_url = ""\n')
    out = os.path.join(work, "callgrind.out")
    err = open(os.path.join(work, "stderr.log"), "w+")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                             args.orchardd, "--config", cfg], stderr=err, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            err.seek(0)
            if "orchardd ready" in err.read():
                break
            if proc.poll() is not None:
                raise SystemExit("orchardd exited under valgrind")
            time.sleep(0.2)
        path = gen_path("cg-small", args.size)
        req = f"GET {path} HTTP/1.1\r\nHost: swcdn.apple.com\r\n\r\n".encode()
        s = socket.create_connection(("127.0.0.1", port))
        buf = b""
        for _ in range(2):
            s.sendall(req)
            head, buf = read_response(s, buf)
        time.sleep(1.0)  # let the commit and the evictor's first pass settle
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True)
        for _ in range(args.hits):
            s.sendall(req)
            head, buf = read_response(s, buf)
            if b"Cache-Status: orchard; hit" not in head:
                raise SystemExit("not a hit: " + head.decode(errors="replace"))
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True, capture_output=True)
        s.close()
        time.sleep(0.5)
        total = 0
        for dump in glob.glob(out + "*"):
            with open(dump) as f:
                for line in f:
                    m = re.match(r"(?:summary|totals):\s+(\d+)", line)
                    if m and os.path.basename(dump) != os.path.basename(out):
                        total = max(total, int(m.group(1)))
        print(f"{args.orchardd}: {total} instructions for {args.hits} hits of {args.size} B "
              f"= {total / args.hits:.0f} per hit")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        origin.stop()


if __name__ == "__main__":
    main()
