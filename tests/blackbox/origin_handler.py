"""Request handling for the black-box test origin.

Role: `_Handler` answers one request the way origin.py's docstring documents
(the /gen and /echo paths, query and server-side options, conditionals,
Range / If-Range, throttling, aborts, chunked bodies) and reports to the
owning `Origin` (its `_record`, `_finish`, `_count_sent`, `_active_add` and
`_options_for`) what it saw and sent, as `Recorded` and `Finished` records.
The listener, connection tracking and the record queries live in origin.py.
"""

import hashlib
import http.server
import json
import os
import socket
import struct
import sys
import time
import urllib.parse

from origin_content import (BLOCK, LAST_MODIFIED, WRITE_SIZE, _opaque, etag_for, parse_http_date,
                            parse_range, parse_size, stream_slice, variant_name)


# ---------------------------------------------------------------- records

class Recorded(tuple):
    """(method, path, headers) plus .body (bytes) and .time (monotonic).
    headers: dict with lower-case names (repeated names joined with ', ')."""

    def __new__(cls, method, path, headers, body=b"", when=0.0):
        self = super().__new__(cls, (method, path, headers))
        self.body = body
        self.time = when
        return self

    method = property(lambda self: self[0])
    path = property(lambda self: self[1])
    headers = property(lambda self: self[2])
    # The Range header (None if absent), and whether the request was
    # conditional (If-None-Match or If-Modified-Since).
    range = property(lambda self: self[2].get("range"))
    if_range = property(lambda self: self[2].get("if-range"))
    conditional = property(lambda self: "if-none-match" in self[2] or "if-modified-since" in self[2])

    def range_start(self):
        """First byte of a single `bytes=a-...` Range (suffix: None)."""
        r = self.range
        if not r:
            return None
        try:
            a = r.split("=", 1)[1].split(",")[0].split("-")[0].strip()
            return int(a) if a else None
        except (IndexError, ValueError):
            return None


class Finished:
    """How one response ended: target, status, body bytes sent, ok (all of the
    declared body was written), time (monotonic, after the last write),
    range: (first, last) inclusive for a 206, else None."""

    def __init__(self, path, status, sent, ok, when, range=None):
        self.path, self.status, self.sent, self.ok, self.time = path, status, sent, ok, when
        self.range = range

    def __repr__(self):
        rng = f", range={self.range[0]}-{self.range[1]}" if self.range else ""
        return f"Finished({self.path!r}, {self.status}, sent={self.sent}, ok={self.ok}{rng})"


# ---------------------------------------------------------------- server

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "orchard-test-origin/1"
    timeout = 120  # idle keep-alive connections end eventually

    def log_message(self, fmt, *args):  # quiet unless asked
        if self.server.origin.verbose:
            sys.stderr.write("origin: " + (fmt % args) + "\n")

    # Every method goes through one dispatcher.
    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _read_request_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline(3)
        n = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _dispatch(self):
        origin = self.server.origin
        body = self._read_request_body()
        hdrs = {}
        for k, v in self.headers.items():
            k = k.lower()
            hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
        nth = origin._record(Recorded(self.command, self.path, hdrs, body, time.monotonic()))

        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        q.update(origin._options_for(url.path))
        delay = float(q.get("delay", "0") or 0)
        if delay > 0:
            time.sleep(delay)

        fail_first = int(q.get("fail_first", "0") or 0)
        if nth <= fail_first:
            return self._simple(500, b"origin says no (fail_first)\n")

        path = url.path
        doc = origin._document_for(path)
        if doc is not None:
            return self._simple(200, doc[0], doc[1], [("Cache-Control", "no-cache")])
        if path.startswith("/gen/"):
            parts = path.split("/", 3)
            if len(parts) < 4 or not parts[3]:
                return self._simple(404, b"bad gen path\n")
            try:
                size = parse_size(parts[2])
            except ValueError:
                return self._simple(400, b"bad size\n")
            return self._gen(parts[3], size, q, nth)
        if path.startswith("/echo/") or path == "/echo":
            info = {"method": self.command, "path": self.path, "body_len": len(body),
                    "body_sha256": hashlib.sha256(body).hexdigest()}
            data = (json.dumps(info) + "\n").encode()
            extra = [("Cache-Control", q["cc"])] if q.get("cc") else []
            return self._simple(int(q.get("status", "200")), data, "application/json", extra)
        return self._simple(404, b"not found\n")

    def _simple(self, status, data, ctype="text/plain", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        no_body = status < 200 or status in (204, 304)
        if not no_body:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and not no_body:
            self.wfile.write(data)
        self.server.origin._finish(Finished(self.path, status, len(data), True, time.monotonic()))

    def _gen(self, name, size, q, nth):
        origin = self.server.origin
        status = int(q.get("status", "200"))
        chunked = q.get("chunked", "0") not in ("0", "")
        rate = float(q.get("rate", "0") or 0)
        abort_at = int(q["abort_at"]) if q.get("abort_at", "") != "" else None
        if abort_at is not None and q.get("abort_first", "") != "":
            if nth > int(q["abort_first"]):
                abort_at = None
        vary = q.get("vary", "")
        stream = variant_name(name, self.headers.get(vary) if vary else None, q.get("content", ""))
        etag = q["etag"] if q.get("etag", "") != "" else etag_for(stream, size)
        last_modified = q["lm"] if q.get("lm", "") != "" else LAST_MODIFIED
        cc = q.get("cc", "max-age=3600")

        # Conditionals (RFC 9110 13.2.2: If-None-Match wins over If-Modified-Since).
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        if status == 200 and inm is not None:
            tags = [t.strip() for t in inm.split(",")]
            if "*" in tags or _opaque(etag) in [_opaque(t) for t in tags]:
                status = 304
        elif status == 200 and ims is not None:
            since, lm = parse_http_date(ims), parse_http_date(last_modified)
            if since is not None and lm is not None and lm <= since:
                status = 304

        # Range / If-Range.
        rng = None
        if status == 200 and q.get("ranges", "1") not in ("0", ""):
            rng = parse_range(self.headers.get("Range"), size)
            if_range = self.headers.get("If-Range")
            if rng is not None and if_range is not None:
                ir = if_range.strip()
                if ir.startswith('"') or ir.startswith("W/"):
                    ok = not ir.startswith("W/") and not etag.startswith("W/") and ir == etag
                else:
                    ok = ir == last_modified
                if not ok:
                    rng = None
            if rng == "unsatisfiable":
                status = 416
            elif rng is not None:
                status = 206
        no_body = status < 200 or status in (204, 304)

        if status == 416:
            self.send_response(416)
            self.send_header("Content-Type", "text/plain")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.wfile.flush()
            origin._finish(Finished(self.path, 416, 0, True, time.monotonic()))
            return

        first, end = (rng[0], rng[1] + 1) if status == 206 else (0, size)
        close_delimited = q.get("close", "") not in ("0", "")
        if q.get("early", "") not in ("0", ""):
            # An interim answer first (RFC 8297), as raw bytes: http.server has no API for it.
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </hint.css>; rel=preload\r\n"
                             b"X-Hint-Only: yes\r\n\r\n")
            self.wfile.flush()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        if cc:
            self.send_header("Cache-Control", cc)
        if q.get("age", "") != "":
            self.send_header("Age", q["age"])
        for field, key in (("CDN-Cache-Control", "cdn"), ("Orchard-Cache-Control", "occ"), ("Expires", "expires")):
            if q.get(key, "") != "":
                self.send_header(field, q[key])
        if vary:
            self.send_header("Vary", vary)
        if q.get("ranges", "1") not in ("0", ""):
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{end - 1}/{size}")
        if close_delimited:
            self.send_header("Connection", "close")  # no length, no chunks: the body ends at our close
            self.close_connection = True
        elif not no_body:
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(end - first))
        self.end_headers()
        fin_range = (first, end - 1) if status == 206 else None
        if self.command == "HEAD" or no_body:
            self.wfile.flush()
            origin._finish(Finished(self.path, status, 0, True, time.monotonic(), fin_range))
            return

        length = end - first
        limit = length if abort_at is None else min(abort_at, length)
        step = WRITE_SIZE
        if rate > 0:
            step = max(1024, min(WRITE_SIZE, int(rate / 20)))
        sent = 0
        start = time.monotonic()
        ok = False
        origin._active_add(self.path, 1)
        try:
            while sent < limit:
                pos = first + sent
                n = min(step, limit - sent, BLOCK)
                chunk = stream_slice(stream, pos, n)
                if chunked:
                    self.wfile.write(b"%x\r\n" % n)
                    self.wfile.write(chunk)
                    self.wfile.write(b"\r\n")
                else:
                    self.wfile.write(chunk)
                sent += n
                origin._count_sent(self.path, n)
                if rate > 0:
                    ahead = start + sent / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
            if abort_at is not None and abort_at < length and close_delimited:
                # A close-delimited body cut short: a reset, not a clean close.
                self.wfile.flush()
                self.close_connection = True
                # The descriptor itself is closed here: socket.close() would
                # wait for rfile/wfile, and the server's shutdown_request()
                # would send a FIN (a clean end) first.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                os.close(self.connection.detach())
            elif abort_at is not None and abort_at < length:
                # Declared more than we send: end the connection mid-body.
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            else:
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                ok = True
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            self.close_connection = True
        finally:
            origin._active_add(self.path, -1)
            origin._finish(Finished(self.path, status, sent, ok, time.monotonic(), fin_range))
