"""A local origin that serves a fixed set of files (Apple catalog fixtures).

Role: stands in for swscan.apple.com / swcdn.apple.com in the Apple tests.
`StaticOrigin(files, ssl_context=None)` serves `files` (path -> bytes, the path
with its query if any) on 127.0.0.1 with:
  - a strong ETag (sha256 of the bytes) and Last-Modified, Cache-Control
    (`cache_control`, default max-age=60);
  - If-None-Match -> 304;
  - a single Range `bytes=a-`/`bytes=a-b` -> 206 (If-Range honoured: the ETag);
  - `rate` (bytes/s, per response) to throttle bodies, settable per path via
    `set_rate(path, bps)`;
  - `replace(path, data)` to change a file while running;
  - `log`: one dict per request (method, path, range, if_none_match, status,
    bytes sent), for tests to count what the origin was asked.
Unknown paths answer 404. Threaded; every connection is HTTP/1.1 keep-alive.
"""

import email.utils
import hashlib
import http.server
import socketserver
import ssl
import threading
import time


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head):
        o = self.server.origin
        path = self.path
        with o.lock:
            data = o.files.get(path)
            if data is None:
                data = o.files.get(path.split("?", 1)[0])
            rate = o.rates.get(path.split("?", 1)[0], o.rate)
            cc = o.cache_controls.get(path.split("?", 1)[0], o.cache_control)
        rec = {"method": self.command, "path": path, "range": self.headers.get("Range"),
               "if_range": self.headers.get("If-Range"),
               "if_none_match": self.headers.get("If-None-Match"), "status": 0, "sent": 0,
               "headers": dict(self.headers.items())}
        with o.lock:
            o.log.append(rec)
        if data is None:
            rec["status"] = 404
            body = b"not here\n"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return
        etag = '"%s"' % hashlib.sha256(data).hexdigest()[:32]
        inm = self.headers.get("If-None-Match")
        common = [("ETag", etag), ("Last-Modified", o.last_modified), ("Cache-Control", cc)]
        if inm and (inm.strip() == etag or inm.strip() == "*"):
            rec["status"] = 304
            self.send_response(304)
            for k, v in common:
                self.send_header(k, v)
            self.end_headers()
            return
        start, end, status = 0, len(data), 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and rng.startswith("bytes=") and "," not in rng and (not if_range or if_range.strip() == etag):
            a, _, b = rng[6:].partition("-")
            try:
                if a:
                    start = int(a)
                    end = min(int(b) + 1, len(data)) if b else len(data)
                    if start < len(data):
                        status = 206
                    else:
                        start, end = 0, len(data)
            except ValueError:
                start, end = 0, len(data)
        rec["status"] = status
        self.send_response(status)
        for k, v in common:
            self.send_header(k, v)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end - 1, len(data)))
        self.end_headers()
        if head:
            return
        pos = start
        step = 64 * 1024
        t0 = time.monotonic()
        try:
            while pos < end:
                n = min(step, end - pos)
                self.wfile.write(data[pos:pos + n])
                pos += n
                rec["sent"] += n
                if rate:
                    ahead = (pos - start) / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class StaticOrigin:
    def __init__(self, files, ssl_context=None, cache_control="max-age=60"):
        self.files = dict(files)
        self.rates = {}
        self.rate = 0
        self.log = []
        self.lock = threading.Lock()
        self.cache_control = cache_control
        self.cache_controls = {}  # path -> Cache-Control for that path
        self.last_modified = email.utils.formatdate(time.time() - 3600, usegmt=True)
        self._srv = _Server(("127.0.0.1", 0), _Handler)
        self._srv.origin = self
        if ssl_context is not None:
            self._srv.socket = ssl_context.wrap_socket(self._srv.socket, server_side=True)
        self.port = self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._srv.shutdown()
        self._srv.server_close()

    def replace(self, path, data):
        with self.lock:
            self.files[path] = data

    def set_rate(self, path, bps):
        with self.lock:
            self.rates[path] = bps

    def requests(self, path_prefix="", method="GET"):
        with self.lock:
            return [r for r in self.log if r["path"].startswith(path_prefix) and (method is None or r["method"] == method)]

    def bytes_sent(self, path_prefix=""):
        with self.lock:
            return sum(r["sent"] for r in self.log if r["path"].startswith(path_prefix))
