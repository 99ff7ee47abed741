"""A scriptable local origin server for Orchard's black-box tests.

Role: stands in for Apple's CDN. Tests run it in-process (`Origin()`), point
orchardd's `upstream.resolve` at it and then check what it saw. Everything is
driven by the request path and query, so a test reads like what it asks for:

  /gen/<size>/<name>[?opts]   `size` deterministic bytes (a pure function of
                              (name, offset), see `expected_bytes`), with
                              Content-Length, a strong ETag (from name+size),
                              Last-Modified and Cache-Control: max-age=3600.
                              `size` is an integer, optionally with a K/M/G
                              suffix (binary units).
  /echo/<anything>            any method; answers 200 with a small JSON body
                              describing the request (method, path, body length
                              and sha256). No Cache-Control unless cc= is given.
  anything else               404.

Query options (any combination; unknown parameters are ignored):
  cc=<value>        Cache-Control value ("cc=" alone: no Cache-Control at all)
  chunked=1         Transfer-Encoding: chunked instead of Content-Length
  rate=<B/s>        throttle the body to about this many bytes per second
  delay=<seconds>   sleep before sending the status line
  abort_at=<n>      send headers (declaring the full length), then n body bytes,
                    then close the connection (FIN); chunked: no last chunk
  abort_first=<k>   with abort_at: only the first k requests on this target
                    abort, later ones complete (default: every request aborts)
  status=<code>     answer with this status (body as usual unless the code
                    forbids one: 1xx, 204, 304)
  fail_first=<n>    the first n requests on this target get a 500
  etag=<value>      ETag to send instead of the computed one (verbatim, so
                    quote it: etag="v2"; W/"x" makes it weak)
  lm=<http-date>    Last-Modified to send instead of LAST_MODIFIED
  content=<tag>     generate the bytes from the stream "<name>#<tag>" instead
                    of "<name>" (a changed object: combine with etag=)
  vary=<Header>     add `Vary: <Header>`; the body is then the stream of
                    "<name>|<value>" where value is that request header's
                    value ("<name>" unchanged when the header is absent), so
                    variants differ in bytes but have the SAME length; the
                    ETag is computed from the variant stream name too.
                    Use variant_name(name, value) for the expected bytes.
  ranges=0          ignore Range / If-Range (always answer 200 whole)
  HEAD is supported (same headers as GET, no body).

Validators and ranges on /gen (only when the answer would be a 200):
  If-None-Match     matching the current ETag (weak comparison) or `*` -> 304
  If-Modified-Since (only without If-None-Match) Last-Modified <= date -> 304
  Range             a single `bytes=a-b`, `bytes=a-` or `bytes=-n` -> 206 with
                    Content-Range and Content-Length (the bytes of the stream
                    at those offsets); unsatisfiable (first byte >= size, or
                    a zero suffix) -> 416 with `Content-Range: bytes */size`;
                    several ranges -> 200 whole; a malformed header is
                    ignored (200 whole).
  If-Range          with Range: the current strong ETag, or exactly the
                    Last-Modified date -> the Range is honoured; anything else
                    -> 200 whole.
  abort_at / rate apply to the body actually sent (the range's bytes).

Server-side overrides (invisible in the URL, so the cache key stays the
same): origin.set_options(path, **opts) merges query options into every
request whose path (without query) equals `path`, e.g.
set_options(p, status=500) makes an object's origin fail, set_options(p,
etag='"v2"', content="v2") changes the object, set_options(p, delay=1.5)
slows it. clear_options(path=None) removes them.

"On this target" means the full request target as received (path + query).

Records (all thread-safe): .requests (Recorded: method, path, headers incl.
range / if-range / if-none-match / if-modified-since, see .range and
.conditional), .finished (Finished: status, bytes sent, range served), and a
live count of body bytes sent per target (bytes_sent(prefix), counted as they
are written, so it includes responses still in flight; in_flight(prefix)).

Lifecycle: Origin() -> start() -> (serving on .port, daemon threads) -> stop().
stop() closes the listener and every open connection; it is idempotent.
Bodies are streamed in 256 KiB writes from a per-name 1 MiB block, so a 1 GiB
body costs 2 MiB of memory.

Run standalone for manual checks: python3 origin.py [--port N]
"""

import email.utils
import functools
import hashlib
import http.server
import json
import random
import socket
import sys
import threading
import time
import urllib.parse

BLOCK = 1 << 20            # the repeating unit of every generated stream
WRITE_SIZE = 256 << 10     # body write size
LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


# ---------------------------------------------------------------- content

@functools.lru_cache(maxsize=16)
def _block2(name):
    """Two copies of name's 1 MiB block back to back, so any slice of up to
    BLOCK bytes starting anywhere in the block is contiguous."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest(), "big")
    block = random.Random(seed).randbytes(BLOCK)
    return memoryview(block + block)


def stream_slice(name, offset, n):
    """n <= BLOCK bytes of name's stream starting at offset (a memoryview)."""
    assert 0 <= n <= BLOCK
    o = offset % BLOCK
    return _block2(name)[o:o + n]


def expected_bytes(name, size, offset=0):
    """The bytes /gen/<size>/<name> serves, from offset to size."""
    out = bytearray()
    pos = offset
    while pos < size:
        n = min(BLOCK - pos % BLOCK, size - pos)
        out += stream_slice(name, pos, n)
        pos += n
    return bytes(out)


@functools.lru_cache(maxsize=64)
def expected_sha256(name, size):
    """Hex sha256 of the whole body of /gen/<size>/<name> (computed cheaply)."""
    h = hashlib.sha256()
    block = _block2(name)[:BLOCK]
    full, rest = divmod(size, BLOCK)
    for _ in range(full):
        h.update(block)
    h.update(block[:rest])
    return h.hexdigest()


def etag_for(name, size):
    return '"' + hashlib.sha256(f"{name}:{size}".encode()).hexdigest()[:24] + '"'


def variant_name(name, value=None, content=None):
    """The stream name /gen/<size>/<name> serves for a content= tag and a
    vary= header value (None: header absent)."""
    if content:
        name = f"{name}#{content}"
    if value is not None:
        name = f"{name}|{value}"
    return name


def parse_range(value, size):
    """Parse a Range header against a body of `size` bytes.
    Returns None (ignore: malformed, not bytes, or several ranges),
    'unsatisfiable', or (first, last) inclusive."""
    if value is None:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if len(items) != 1:
        return None
    a, dash, b = items[0].partition("-")
    a, b = a.strip(), b.strip()
    if not dash:
        return None
    try:
        if a == "":
            n = int(b)
            if n < 0:
                return None
            if n == 0 or size == 0:
                return "unsatisfiable"
            return (max(0, size - n), size - 1)
        first = int(a)
        last = int(b) if b != "" else size - 1
    except ValueError:
        return None
    if first < 0 or (b != "" and last < first):
        return None
    if first >= size:
        return "unsatisfiable"
    return (first, min(last, size - 1))


def parse_http_date(text):
    """Seconds since the epoch, or None."""
    try:
        dt = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    return dt.timestamp()


def _opaque(tag):
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def parse_size(text):
    mult = {"k": KiB, "m": MiB, "g": GiB}
    t = text.strip().lower()
    for suffix in ("ib", "b"):
        if t.endswith(suffix) and len(t) > len(suffix) and t[-len(suffix) - 1] in mult:
            t = t[:-len(suffix)]
    if t and t[-1] in mult:
        return int(t[:-1]) * mult[t[-1]]
    return int(t)


def gen_path(name, size, **opts):
    """Build '/gen/<size>/<name>?k=v...' (options in the given order)."""
    path = f"/gen/{size}/{name}"
    if opts:
        path += "?" + urllib.parse.urlencode([(k, str(v)) for k, v in opts.items()])
    return path


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
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        if cc:
            self.send_header("Cache-Control", cc)
        if vary:
            self.send_header("Vary", vary)
        if q.get("ranges", "1") not in ("0", ""):
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{end - 1}/{size}")
        if not no_body:
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
            if abort_at is not None and abort_at < length:
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


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def process_request(self, request, client_address):
        with self.origin._lock:
            self.origin._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.origin._lock:
            self.origin._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        # Clients (orchardd) hanging up mid-body are expected; stay quiet.
        if self.origin.verbose:
            super().handle_error(request, client_address)


class Origin:
    """The scriptable origin. Thread-safe records:
    .requests  list of Recorded (method, path, headers) with .body, .time
    .finished  list of Finished, one per response
    """

    def __init__(self, host="127.0.0.1", port=0, verbose=False):
        self.host = host
        self.verbose = verbose
        self._want_port = port
        self._lock = threading.Lock()
        self._conns = set()
        self._per_target = {}
        self._options = {}     # url path -> {query option: value}
        self._sent = {}        # target -> body bytes written so far
        self._active = {}      # target -> bodies being written now
        self.requests = []
        self.finished = []
        self._server = None
        self._thread = None
        self.port = None

    # -- lifecycle
    def start(self):
        self._server = _Server((self.host, self._want_port), _Handler)
        self._server.origin = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name=f"origin:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.shutdown()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        srv.server_close()
        self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    # -- records
    def _record(self, rec):
        with self._lock:
            self.requests.append(rec)
            n = self._per_target.get(rec.path, 0) + 1
            self._per_target[rec.path] = n
            return n

    def _finish(self, fin):
        with self._lock:
            self.finished.append(fin)

    def _count_sent(self, target, n):
        with self._lock:
            self._sent[target] = self._sent.get(target, 0) + n

    def _active_add(self, target, d):
        with self._lock:
            self._active[target] = self._active.get(target, 0) + d

    def _options_for(self, path):
        with self._lock:
            return dict(self._options.get(path, {}))

    # -- server-side options
    def set_options(self, path, **opts):
        """Merge query options into every later request for `path` (the URL
        path, query ignored), e.g. set_options(p, status=500). Values are
        strings as in a query; None removes an option."""
        path = urllib.parse.urlsplit(path).path
        with self._lock:
            cur = self._options.setdefault(path, {})
            for k, v in opts.items():
                if v is None:
                    cur.pop(k, None)
                else:
                    cur[k] = str(v)

    def clear_options(self, path=None):
        with self._lock:
            if path is None:
                self._options.clear()
            else:
                self._options.pop(urllib.parse.urlsplit(path).path, None)

    # -- byte accounting
    def bytes_sent(self, path_prefix=""):
        """Body bytes written so far for targets starting with path_prefix
        (all methods, statuses and ranges; includes responses in flight)."""
        with self._lock:
            return sum(n for t, n in self._sent.items() if t.startswith(path_prefix))

    def in_flight(self, path_prefix=""):
        """Bodies being written right now for targets starting with path_prefix."""
        with self._lock:
            return sum(n for t, n in self._active.items() if t.startswith(path_prefix))

    def wait_idle(self, path_prefix, min_bytes=0, timeout=60.0, settle=0.3):
        """Wait until at least min_bytes were sent for path_prefix and no body
        has been in flight for `settle` s. Returns True if reached."""
        deadline = time.monotonic() + timeout
        idle_since = None
        while time.monotonic() < deadline:
            if self.bytes_sent(path_prefix) >= min_bytes and self.in_flight(path_prefix) == 0:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= settle:
                    return True
            else:
                idle_since = None
            time.sleep(0.05)
        return False

    def conditional(self, path_prefix="", method=None):
        """Requests carrying If-None-Match or If-Modified-Since."""
        return [r for r in self.matching(path_prefix, method) if r.conditional]

    def ranged(self, path_prefix="", method=None):
        """Requests carrying a Range header."""
        return [r for r in self.matching(path_prefix, method) if r.range]

    def snapshot(self):
        with self._lock:
            return list(self.requests)

    def count(self, path_prefix="", method=None):
        """How many requests had a target starting with path_prefix."""
        with self._lock:
            return sum(1 for r in self.requests
                       if r.path.startswith(path_prefix) and (method is None or r.method == method))

    def matching(self, path_prefix="", method=None):
        with self._lock:
            return [r for r in self.requests
                    if r.path.startswith(path_prefix) and (method is None or r.method == method)]

    def finished_for(self, path_prefix):
        with self._lock:
            return [f for f in self.finished if f.path.startswith(path_prefix)]

    def wait_finished(self, path_prefix, n=1, timeout=30.0):
        """Wait until n responses for path_prefix have ended; return them."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.finished_for(path_prefix)
            if len(done) >= n or time.monotonic() > deadline:
                return done
            time.sleep(0.02)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    o = Origin(port=args.port, verbose=args.verbose).start()
    print(f"origin listening on 127.0.0.1:{o.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        o.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
