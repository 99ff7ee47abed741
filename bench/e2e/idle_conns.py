#!/usr/bin/env python3
"""Opens N keep-alive client connections, sends one GET on each, reads the
whole answer, and keeps them open and idle.

Prints "open N_OK" on stdout when done, then waits for a line on stdin
(or EOF), counts how many connections the server still holds open (a socket
with nothing to read and no EOF), prints "still_open K", and closes them all
with RST (SO_LINGER 0, so no TIME_WAIT piles up).

Usage: idle_conns.py PORT HOST_HEADER PATH N [SOURCE_IP]
"""
import errno
import resource
import socket
import struct
import sys


def main():
    port, host_header, path, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    src = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 1024
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    req = (f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: orchard-bench-idle\r\n"
           f"Accept: */*\r\n\r\n").encode()
    socks = []
    ok = 0
    batch = 200
    for start in range(0, n, batch):
        cur = []
        for _ in range(min(batch, n - start)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.bind((src, 0))
            s.settimeout(10)
            try:
                s.connect(("127.0.0.1", port))
                s.sendall(req)
            except OSError as e:
                print(f"connect/send failed: {e}", file=sys.stderr)
                s.close()
                continue
            cur.append(s)
        for s in cur:
            if read_response(s):
                ok += 1
            socks.append(s)
    print(f"open {ok}", flush=True)
    sys.stdin.readline()
    still = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1, socket.MSG_PEEK):
                still += 1  # unexpected bytes, but open
            # b"": the server closed it
        except BlockingIOError:
            still += 1  # nothing to read, no EOF: open and idle
        except OSError as e:
            if e.errno not in (errno.ECONNRESET, errno.EBADF, errno.EPIPE):
                raise
    print(f"still_open {still}", flush=True)
    for s in socks:
        s.close()


def read_response(s):
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                return False
            buf += d
        head, _, body = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        while len(body) < length:
            d = s.recv(65536)
            if not d:
                return False
            body += d
        return head.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


if __name__ == "__main__":
    main()
