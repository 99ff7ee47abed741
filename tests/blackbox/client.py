"""Raw-socket HTTP/1.1 client for Orchard's black-box tests.

Role: `request()` sends one request in exactly the form a test chooses
(target and headers verbatim) on a fresh connection and reads the response
into a `Response`, streaming big bodies into a sha256 instead of memory and
telling a complete body from a truncated one; `run_parallel()` starts
callables together in threads. Re-exported by harness.py.
"""

import hashlib
import socket
import threading
import time

class Response:
    """One response as a client saw it.

    status, reason; headers: dict of lower-case names (repeats joined ', ');
    header_list: [(name, value)] as received;
    body: bytes (None when keep_body=False); length: body bytes received;
    sha256: hex digest of the received body;
    framing: 'length' | 'chunked' | 'close' | 'none';
    complete: the message ended the way its framing says a whole message ends
      (Content-Length reached, last chunk seen, or close-delimited EOF - which
      a client cannot tell from a whole body, so it counts as complete-looking);
    error: why reading stopped early (None if complete); timed_out: read timeout;
    stopped_early: the client itself hung up (max_body)."""

    def __init__(self):
        self.status = None
        self.reason = ""
        self.headers = {}
        self.header_list = []
        self.body = None
        self.length = 0
        self.sha256 = None
        self.framing = None
        self.complete = False
        self.error = None
        self.timed_out = False
        self.stopped_early = False
        self.t_headers = None
        self.t_done = None

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    @property
    def cache_status(self):
        return self.headers.get("cache-status", "")

    def is_hit(self):
        return self.cache_status.replace(" ", "").lower().startswith("orchard;hit")

    def __repr__(self):
        return (f"<Response {self.status} framing={self.framing} len={self.length} "
                f"complete={self.complete} err={self.error!r} cache-status={self.cache_status!r}>")


class _Reader:
    def __init__(self, sock, bufsize=1 << 20):
        self.sock = sock
        self.buf = bytearray()
        self.scratch = bytearray(bufsize)
        self.eof = False

    def fill(self):
        if self.eof:
            return 0
        n = self.sock.recv_into(self.scratch)
        if n == 0:
            self.eof = True
        else:
            self.buf += memoryview(self.scratch)[:n]
        return n

    def readline(self, limit=1 << 17):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise ValueError("line too long")
            if self.fill() == 0:
                line = bytes(self.buf)
                self.buf.clear()
                return line

    def read_some(self, maxn):
        """Up to maxn bytes (b'' at EOF), preferring buffered bytes."""
        if self.buf:
            n = min(maxn, len(self.buf))
            out = bytes(self.buf[:n])
            del self.buf[:n]
            return out
        if self.eof:
            return b""
        n = self.sock.recv_into(self.scratch, min(maxn, len(self.scratch)))
        if n == 0:
            self.eof = True
            return b""
        return bytes(memoryview(self.scratch)[:n])


def _norm_headers(headers):
    if headers is None:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


def request(port, method, target, headers=None, body=None, *, keep_body=True,
            max_body=None, read_rate=None, timeout=30.0, on_headers=None,
            on_progress=None, host="127.0.0.1", tls=None, server_hostname=None):
    """Send one request on a fresh connection and read the response.

    target and headers go out verbatim (headers: dict or list of pairs); a
    Host header naming the box is added when none is given; Content-Length is
    added for a body unless a framing header is given. keep_body=False keeps
    only length + sha256. max_body: hang up after that many body bytes.
    read_rate: read at about this many bytes/s. on_headers(resp) is called once
    the head is parsed; on_progress(resp) after every body read.
    tls: an ssl.SSLContext (client side): the request goes over HTTPS, the
    certificate checked for server_hostname (default `host`).
    Never raises for a truncated/failed response: see Response.complete/error.
    Raises only if the connection cannot be made or no status line arrives
    (OSError / ValueError)."""
    hdrs = _norm_headers(headers)
    names = {k.lower() for k, _ in hdrs}
    if "host" not in names:
        hdrs.insert(0, ("Host", f"{host}:{port}"))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"

    resp = Response()
    h = hashlib.sha256()
    kept = bytearray() if keep_body else None
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls is not None:
        try:
            sock = tls.wrap_socket(sock, server_hostname=server_hostname or host)
        except BaseException:
            sock.close()
            raise
    try:
        sock.settimeout(timeout)
        sock.sendall(head.encode("latin-1") + (body or b""))
        rd = _Reader(sock)

        # Status line and headers (skipping 1xx interim responses).
        while True:
            line = rd.readline()
            if not line:
                raise ValueError("connection closed before a status line")
            parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ValueError(f"bad status line {line!r}")
            resp.status = int(parts[1])
            resp.reason = parts[2] if len(parts) > 2 else ""
            resp.headers, resp.header_list = {}, []
            while True:
                hl = rd.readline()
                if hl in (b"\r\n", b"\n"):
                    break
                if not hl:
                    raise ValueError("connection closed inside the response head")
                k, _, v = hl.decode("latin-1").partition(":")
                k, v = k.strip(), v.strip()
                resp.header_list.append((k, v))
                lk = k.lower()
                resp.headers[lk] = resp.headers[lk] + ", " + v if lk in resp.headers else v
            if not (100 <= resp.status < 200) or resp.status == 101:
                break
        resp.t_headers = time.monotonic()
        if on_headers:
            on_headers(resp)

        te = resp.headers.get("transfer-encoding", "").lower()
        cl = resp.headers.get("content-length")
        if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            resp.framing = "none"
            resp.complete = True
        elif "chunked" in te:
            resp.framing = "chunked"
        elif cl is not None:
            resp.framing = "length"
        else:
            resp.framing = "close"

        start = time.monotonic()

        def take(data):
            h.update(data)
            resp.length += len(data)
            if kept is not None:
                kept.extend(data)
            if on_progress:
                on_progress(resp)
            if read_rate:
                ahead = start + resp.length / read_rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

        def room(default):
            n = default
            if max_body is not None:
                n = min(n, max_body - resp.length)
            if read_rate:
                n = min(n, max(1024, int(read_rate / 50)))
            return n

        def early():
            if max_body is not None and resp.length >= max_body:
                resp.stopped_early = True
                resp.error = "client stopped"
                return True
            return False

        try:
            if resp.framing == "length":
                want = int(cl.split(",")[0].strip())
                while resp.length < want and not early():
                    data = rd.read_some(room(want - resp.length))
                    if not data:
                        resp.error = f"EOF after {resp.length} of {want} bytes"
                        break
                    take(data)
                resp.complete = resp.length == want and not resp.stopped_early
            elif resp.framing == "chunked":
                while not early():
                    line = rd.readline()
                    if not line:
                        resp.error = f"EOF before a chunk header after {resp.length} bytes"
                        break
                    size_txt = line.split(b";")[0].strip()
                    try:
                        size = int(size_txt, 16)
                    except ValueError:
                        resp.error = f"bad chunk header {line[:40]!r}"
                        break
                    if size == 0:
                        while True:  # trailers up to the empty line
                            tl = rd.readline()
                            if tl in (b"\r\n", b"\n"):
                                resp.complete = True
                                break
                            if not tl:
                                resp.error = "EOF inside trailers"
                                break
                        break
                    left = size
                    while left > 0 and not early():
                        data = rd.read_some(room(left))
                        if not data:
                            break
                        take(data)
                        left -= len(data)
                    if left > 0:
                        if not resp.stopped_early:
                            resp.error = f"EOF inside a chunk after {resp.length} bytes"
                        break
                    if rd.readline() not in (b"\r\n", b"\n"):
                        resp.error = "missing CRLF after chunk data"
                        break
            elif resp.framing == "close":
                while not early():
                    data = rd.read_some(room(1 << 20))
                    if not data:
                        resp.complete = True
                        break
                    take(data)
        except socket.timeout:
            resp.timed_out = True
            resp.error = f"read timeout after {resp.length} body bytes"
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
            resp.error = f"{type(e).__name__} after {resp.length} body bytes"
    finally:
        try:
            sock.close()
        except OSError:
            pass
    resp.t_done = time.monotonic()
    resp.sha256 = h.hexdigest()
    resp.body = bytes(kept) if kept is not None else None
    return resp


def run_parallel(fns, timeout=120.0):
    """Run callables in threads, started together; return their results (or
    exceptions) in order. Threads are daemons and joined with a deadline."""
    results = [None] * len(fns)
    barrier = threading.Barrier(len(fns))

    def runner(i, fn):
        try:
            barrier.wait(10)
            results[i] = fn()
        except BaseException as e:  # reported by the caller
            results[i] = e

    threads = [threading.Thread(target=runner, args=(i, f), daemon=True) for i, f in enumerate(fns)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    for i, t in enumerate(threads):
        if t.is_alive():
            results[i] = TimeoutError(f"worker {i} still running after {timeout}s")
    return results
