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
  a document path             what origin.set_document(path, body) put there
                              (a feed, a catalog): 200 with that body, its
                              Content-Type and Cache-Control: no-cache.
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
  close=1           close-delimited: no Content-Length, no chunks, Connection:
                    close; with abort_at the connection is reset (RST) instead
  early=1           send a 103 Early Hints (Link, X-Hint-Only) before the answer
  age=<v>, cdn=<v>, occ=<v>, expires=<v>
                    send Age, CDN-Cache-Control, Orchard-Cache-Control, Expires
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

Layout: origin_content.py (generated bytes, parsing), origin_handler.py (the
request handler and its records) and this file (the server, the `Origin`
object and its records API); everything is re-exported from here, so tests
import it all from `origin`.

Run standalone for manual checks: python3 origin.py [--port N]
"""

import http.server
import os
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from origin_content import (BLOCK, WRITE_SIZE, LAST_MODIFIED, KiB, MiB, GiB,  # noqa: E402,F401
                            _block2, _opaque, etag_for, expected_bytes, expected_sha256,
                            gen_path, parse_http_date, parse_range, parse_size, stream_slice,
                            variant_name)
from origin_handler import Finished, Recorded, _Handler  # noqa: E402,F401


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def get_request(self):
        sock, addr = super().get_request()
        ctx = self.origin.ssl_context
        if ctx is not None:
            # The handshake runs on the handler's thread, at its first read.
            sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

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

    def __init__(self, host="127.0.0.1", port=0, verbose=False, ssl_context=None):
        """ssl_context: an ssl.SSLContext (server side): the origin speaks HTTPS."""
        self.host = host
        self.ssl_context = ssl_context
        self.verbose = verbose
        self._want_port = port
        self._lock = threading.Lock()
        self._conns = set()
        self._per_target = {}
        self._options = {}     # url path -> {query option: value}
        self._sent = {}        # target -> body bytes written so far
        self._active = {}      # target -> bodies being written now
        self._documents = {}   # url path -> (body bytes, content type)
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

    def set_document(self, path, body, content_type="application/json"):
        """Serve `body` (bytes or str) at `path` (query ignored) from now on;
        None removes it."""
        path = urllib.parse.urlsplit(path).path
        with self._lock:
            if body is None:
                self._documents.pop(path, None)
            else:
                self._documents[path] = (body.encode() if isinstance(body, str) else body, content_type)

    def _document_for(self, path):
        with self._lock:
            return self._documents.get(path)

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
