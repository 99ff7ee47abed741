"""A raw-socket origin for hostile-input tests: answers each request with the
exact bytes a test scripts, on keep-alive connections, so a test can send
what a broken or malicious origin would (bad framing, absurd lengths) and
see what reaches the cache's clients.

  RawOrigin(script) -> start() -> .port ... stop()

`script(req)` gets a RawRequest (method, target, path, version, headers as a
lower-case dict of lists, raw head bytes) and returns one of:
  - bytes: written as the whole answer; the connection stays open for the
    next request (unless the answer said Connection: close, which the
    script then also honours by returning close=True, see below);
  - (bytes, "close"): written, then the connection is closed;
  - a generator of bytes: each piece written in turn (pieces may sleep
    between yields), then the connection is closed.

Like nginx, a request's Content-Length body is read and discarded *after*
the answer was written: a proxy that forwards a head declaring a body it
never sends gets its next request read as that body, which is exactly the
desync the request-smuggling test needs to reproduce.

Every request seen is recorded in .requests (RawRequest, in order).
"""

import socket
import threading


class RawRequest:
    def __init__(self, head):
        self.raw = head
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        self.method = parts[0] if parts else ""
        self.target = parts[1] if len(parts) > 1 else ""
        self.version = parts[2] if len(parts) > 2 else ""
        self.path = self.target.split("?", 1)[0]
        self.headers = {}
        for line in lines[1:]:
            if not line:
                continue
            k, _, v = line.partition(":")
            self.headers.setdefault(k.strip().lower(), []).append(v.strip())
        self.body = b""

    def header(self, name, default=None):
        v = self.headers.get(name.lower())
        return v[0] if v else default

    def __repr__(self):
        return f"RawRequest({self.method} {self.target} {self.version})"


class RawOrigin:
    def __init__(self, script):
        self.script = script
        self.requests = []
        self._lock = threading.Lock()
        self._sock = None
        self._conns = set()
        self._stopped = False
        self.port = None

    def start(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        self._stopped = True
        try:
            self._sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self):
        while not self._stopped:
            try:
                c, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                req = RawRequest(head)
                with self._lock:
                    self.requests.append(req)
                answer = self.script(req)
                close = False
                if isinstance(answer, tuple):
                    answer, how = answer
                    close = how == "close"
                if isinstance(answer, (bytes, bytearray)):
                    c.sendall(answer)
                else:
                    for piece in answer:
                        c.sendall(piece)
                    close = True
                if close:
                    return
                # Read (and drop) the body the head declared, after answering.
                n = int(req.header("content-length", "0") or 0)
                while len(buf) < n:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                req.body, buf = buf[:n], buf[n:]
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(c)
            try:
                c.close()
            except OSError:
                pass
