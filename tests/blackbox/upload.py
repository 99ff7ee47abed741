"""Streaming uploads for the catalog tests: a PUT whose body is generated
piece by piece (never held whole: the 2 GiB publish test measures the box's
memory, not ours), with Expect: 100-continue honoured the way curl does it,
and the option to stop half way (a client that disconnects, or a test that
kills the box mid-upload).

Role: `put_stream()` sends the head, waits for the interim 100 (or a final
answer that refuses the upload from its head), streams `size` bytes from
`piece(offset, n)`, and returns (status, headers, body as JSON when it parses, got_continue).
`pattern_piece(seed)` makes deterministic non-repeating bytes and
`pattern_sha256(seed, size)` their digest, so a test can check what came
back without keeping the file.
"""

import hashlib
import json
import socket

PIECE = 1 << 20


def pattern_piece(seed):
    """piece(offset, n): bytes of a stream that differs per seed and per MiB."""
    cache = {}

    def piece(offset, n):
        out = bytearray()
        while n > 0:
            block = offset // PIECE
            if block not in cache:
                cache.clear()
                cache[block] = hashlib.sha256(f"{seed}:{block}".encode()).digest() * (PIECE // 32)
            start = offset % PIECE
            take = min(n, PIECE - start)
            out += cache[block][start:start + take]
            offset += take
            n -= take
        return bytes(out)
    return piece


def pattern_sha256(seed, size, chunk=None):
    """SHA-256 of the whole pattern stream, and of each `chunk` bytes if given."""
    piece = pattern_piece(seed)
    whole = hashlib.sha256()
    chunks = []
    c = hashlib.sha256()
    filled = 0
    off = 0
    while off < size:
        n = min(PIECE, size - off)
        data = piece(off, n)
        whole.update(data)
        if chunk:
            at = 0
            while at < n:
                take = min(n - at, chunk - filled)
                c.update(data[at:at + take])
                filled += take
                at += take
                if filled == chunk:
                    chunks.append(c.hexdigest())
                    c = hashlib.sha256()
                    filled = 0
        off += n
    if chunk and (filled or not chunks):
        chunks.append(c.hexdigest())
    return (whole.hexdigest(), chunks) if chunk else whole.hexdigest()


def _read_response(sock, buf=b""):
    """Reads one final response (skipping 1xx). Returns (status, headers, body, buf_rest, saw_100)."""
    saw_100 = False
    while True:
        while b"\r\n\r\n" not in buf:
            more = sock.recv(65536)
            if not more:
                raise ConnectionError("closed before a response head")
            buf += more
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        if 100 <= status < 200:
            saw_100 = saw_100 or status == 100
            continue
        length = int(headers.get("content-length", "0"))
        while len(buf) < length:
            more = sock.recv(65536)
            if not more:
                break
            buf += more
        return status, headers, buf[:length], buf[length:], saw_100


def _json(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def put_stream(port, target, size, piece, headers=None, expect_continue=True, stop_after=None,
               host="127.0.0.1", timeout=60.0, on_sent=None, method="PUT"):
    """PUT `size` bytes from piece(offset, n). stop_after: close the socket
    after that many body bytes (returns None). on_sent(sock, sent) is called
    after each piece (a test may kill the box there)."""
    hdrs = {"Host": f"{host}:{port}", "Content-Length": str(size)}
    if expect_continue:
        hdrs["Expect"] = "100-continue"
    hdrs.update(headers or {})
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(head.encode("latin-1"))
        got_continue = False
        buf = b""
        if expect_continue:
            while b"\r\n\r\n" not in buf:
                more = sock.recv(65536)
                if not more:
                    raise ConnectionError("closed before 100 Continue")
                buf += more
            if buf.startswith(b"HTTP/1.1 100"):
                got_continue = True
                buf = buf.split(b"\r\n\r\n", 1)[1]
            else:
                status, h, body, _, _ = _read_response(sock, buf)
                return status, h, _json(body), False
        sent = 0
        while sent < size:
            n = min(PIECE, size - sent)
            if stop_after is not None and sent + n > stop_after:
                n = stop_after - sent
                if n > 0:
                    sock.sendall(piece(sent, n))
                return None
            try:
                sock.sendall(piece(sent, n))
            except (BrokenPipeError, ConnectionResetError):
                break  # refused mid-body: the answer may still be readable
            sent += n
            if on_sent:
                on_sent(sock, sent)
        status, h, body, _, _ = _read_response(sock, buf)
        return status, h, _json(body), got_continue
    finally:
        sock.close()


def api(port, method, path, token=None, body=None, headers=None, timeout=30.0):
    """A small JSON API call: (status, headers, parsed JSON or raw bytes)."""
    hdrs = {"Host": f"127.0.0.1:{port}"}
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    hdrs.update(headers or {})
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    if data is not None:
        hdrs["Content-Length"] = str(len(data))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    head += "Connection: close\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(head.encode("latin-1") + (data or b""))
        status, h, raw, _, _ = _read_response(sock)
    finally:
        sock.close()
    return status, h, _json(raw)
