"""Black-box harness: run the built orchardd against a local Origin and talk to
it with a raw-socket HTTP/1.1 client.

Role: everything a tests/blackbox/test_*.py needs besides the origin:
  - find the binaries (env ORCHARDD / ORCHARDCTL, else ../../build/...);
  - `Orchard`: write a config TOML into a temp dir, start
    `orchardd --config FILE`, wait for `orchardd ready` on stderr, stop it with
    SIGTERM (SIGKILL as a fallback) or kill -9 it;
  - `request()`: send one request in exactly the form a test chooses (target
    and headers verbatim) and read the response, streaming big bodies into a
    sha256 instead of memory, and telling a complete body from a truncated one;
  - `rss_kb(pid)`: VmRSS / VmHWM from /proc;
  - `OrchardCase`: a unittest base class with one Origin + one orchardd per
    test class.

Lifecycle and cleanup: every child process is started with PR_SET_PDEATHSIG
(SIGKILL), tracked in a module registry and killed at interpreter exit; every
temp dir is removed at exit too (set ORCHARD_KEEP_TMP=1 to keep them), so a
failing or interrupted test leaves nothing running.
"""

import atexit
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from origin import Origin, expected_bytes, expected_sha256, gen_path, MiB, GiB  # noqa: E402,F401

READY_LINE = "orchardd ready"
READY_TIMEOUT = 20.0
ALLOWED = ["swcdn.apple.com", "updates.cdn-apple.com", "127.0.0.1"]


# ---------------------------------------------------------------- binaries

def _binary(env, name):
    path = os.environ.get(env)
    if not path:
        path = os.path.normpath(os.path.join(HERE, "..", "..", "build", name))
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        if os.environ.get(env):
            raise FileNotFoundError(f"{env}={path} is not an executable")
        raise unittest.SkipTest(f"{name} not found at {path} (set {env}=...)")
    return path


def orchardd_path():
    """Path to orchardd. Missing while $ORCHARDD is set -> error; missing and
    unset -> the test is skipped (a manual run before the build)."""
    return _binary("ORCHARDD", "orchardd")


def orchardctl_path():
    return _binary("ORCHARDCTL", "orchardctl")


# ---------------------------------------------------------------- cleanup registry

_procs = set()
_tmpdirs = []
_reg_lock = threading.Lock()


def _cleanup_all():
    with _reg_lock:
        procs = list(_procs)
        dirs = list(_tmpdirs)
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(10)
            except Exception:
                pass
    if not os.environ.get("ORCHARD_KEEP_TMP"):
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup_all)


def _sigterm(signum, frame):
    # e.g. ctest's timeout: stop the run (unittest swallows SystemExit inside a
    # test but lets KeyboardInterrupt through) so atexit cleans up.
    raise KeyboardInterrupt(f"signal {signum}")


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _sigterm)


def make_tempdir(prefix="orchard-bb-"):
    d = tempfile.mkdtemp(prefix=prefix)
    with _reg_lock:
        _tmpdirs.append(d)
    return d


def remove_tempdir(d):
    if not os.environ.get("ORCHARD_KEEP_TMP"):
        shutil.rmtree(d, ignore_errors=True)


_libc = None


def _pdeathsig():
    # Runs in the child between fork and exec: die with the test process.
    try:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


def spawn(argv, stdout, stderr, cwd=None, env=None):
    """Popen tracked by the cleanup registry, killed if we die."""
    p = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                         cwd=cwd, env=env, preexec_fn=_pdeathsig if _libc else None)
    with _reg_lock:
        _procs.add(p)
    return p


def run(argv, timeout=30, cwd=None):
    """Run a short command; returns CompletedProcess (text, both streams)."""
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL,
                          preexec_fn=_pdeathsig if _libc else None)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- config + daemon

def config_toml(port, origin_port, state_dir, cache_limit="4GiB", extra="", sections=None):
    """`sections`: {"server": "send_timeout = \"2s\"", ...}: lines added to
    that table (TOML cannot reopen a table, so `extra` suits new ones only)."""
    resolve = ", ".join(f'"{h}" = "127.0.0.1:{origin_port}"'
                        for h in ("swcdn.apple.com", "updates.cdn-apple.com"))
    allow = ", ".join(f'"{h}"' for h in ALLOWED)
    sections = sections or {}

    def more(name):
        text = sections.get(name, "").strip()
        return text + "\n" if text else ""
    return (
        "[server]\n"
        f'listen = ["127.0.0.1:{port}"]\n'
        + more("server") +
        "\n[storage]\n"
        f'dir = "{state_dir}"\n'
        f'cache_limit = "{cache_limit}"\n'
        + more("storage") +
        "\n[upstream]\n"
        f"allow = [{allow}]\n"
        f"resolve = {{ {resolve} }}\n"
        + more("upstream") +
        "\n[access]\n"
        'allow_clients = ["127.0.0.0/8"]\n'
        + (("\n" + extra.strip() + "\n") if extra.strip() else "")
    )


class Orchard:
    """One orchardd process on a config of its own.

    workdir holds config.toml, stderr.log, stdout.log and state/ (unless a
    state_dir is given). start() may be called again after stop()/kill9() and
    reuses the same config and state dir (and port)."""

    def __init__(self, origin_port, workdir=None, state_dir=None, port=None,
                 cache_limit="4GiB", extra_toml="", sections=None):
        self.binary = orchardd_path()
        self.origin_port = origin_port
        self.workdir = workdir or make_tempdir()
        self.state_dir = state_dir or os.path.join(self.workdir, "state")
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.cache_limit = cache_limit
        self.extra_toml = extra_toml
        self.sections = sections
        self.config_path = os.path.join(self.workdir, "config.toml")
        self.stderr_path = os.path.join(self.workdir, "stderr.log")
        self.stdout_path = os.path.join(self.workdir, "stdout.log")
        self.proc = None
        self.starts = 0
        self._was_ready = False  # after a first start the port stays fixed
        self._ready_now = False  # the current process printed the ready line
        self._write_config()

    def _write_config(self):
        with open(self.config_path, "w") as f:
            f.write(config_toml(self.port, self.origin_port, self.state_dir,
                                self.cache_limit, self.extra_toml, self.sections))

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def host(self):
        """The Host header naming the box itself (a local route)."""
        return f"127.0.0.1:{self.port}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self, tail=None):
        try:
            with open(self.stderr_path, "r", errors="replace") as f:
                text = f.read()
        except OSError:
            return ""
        return text[-tail:] if tail else text

    def start(self, timeout=READY_TIMEOUT):
        """Start and wait for the ready line. Retries with another port if the
        chosen one was taken meanwhile (only when the port was auto-picked)."""
        for attempt in range(3):
            if self._try_start(timeout):
                return self
            err = self.stderr_text()
            if self._fixed_port or self._was_ready or "in use" not in err.lower() or attempt == 2:
                raise AssertionError(
                    f"orchardd did not become ready (exit {self.proc.returncode}); stderr:\n"
                    + self.stderr_text(tail=4000))
            self.port = free_port()
            self._write_config()
        return self

    def _try_start(self, timeout):
        assert not self.alive(), "orchardd already running"
        self.starts += 1
        self._ready_now = False
        # Append across restarts so a failure report shows every run.
        err = open(self.stderr_path, "ab")
        out = open(self.stdout_path, "ab")
        err.write(f"----- start #{self.starts}\n".encode())
        err.flush()
        offset = err.tell()
        try:
            self.proc = spawn([self.binary, "--config", self.config_path], out, err,
                              cwd=self.workdir)
        finally:
            err.close()
            out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.stderr_path, "rb") as f:
                f.seek(offset)
                if READY_LINE.encode() in f.read():
                    self._was_ready = self._ready_now = True
                    return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        self.kill9()
        raise AssertionError(f"orchardd printed no '{READY_LINE}' within {timeout}s; stderr:\n"
                             + self.stderr_text(tail=4000))

    def stop(self, expect_exit=0, timeout=30.0):
        """SIGTERM, wait (SIGKILL after timeout). Returns the exit code; if
        expect_exit is not None, asserts it (with stderr in the message)."""
        p = self.proc
        if p is None:
            return None
        if not self._ready_now:
            expect_exit = None  # a failed start was reported already
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
                if expect_exit is not None:
                    raise AssertionError(f"orchardd did not exit within {timeout}s of SIGTERM "
                                         "(killed); stderr:\n" + self.stderr_text(tail=4000))
        rc = p.returncode
        with _reg_lock:
            _procs.discard(p)
        if expect_exit is not None and rc != expect_exit:
            raise AssertionError(f"orchardd exited {rc}, expected {expect_exit}; stderr:\n"
                                 + self.stderr_text(tail=4000))
        return rc

    def kill9(self):
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            p.kill()
        p.wait(10)
        with _reg_lock:
            _procs.discard(p)
        return p.returncode

    def rss_kb(self):
        return rss_kb(self.pid)

    # Convenience wrappers around request() aimed at this instance.
    def request(self, method, target, headers=None, **kw):
        return request(self.port, method, target, headers, **kw)

    def get(self, target, host="swcdn.apple.com", headers=None, **kw):
        """GET target with `Host: host` (default: the intercept form)."""
        return request(self.port, "GET", target, [("Host", host)] + _norm_headers(headers), **kw)


def rss_kb(pid):
    """{'VmRSS': kB, 'VmHWM': kB} of a live process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    return out


# ---------------------------------------------------------------- HTTP client

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
            on_progress=None, host="127.0.0.1"):
    """Send one request on a fresh connection and read the response.

    target and headers go out verbatim (headers: dict or list of pairs); a
    Host header naming the box is added when none is given; Content-Length is
    added for a body unless a framing header is given. keep_body=False keeps
    only length + sha256. max_body: hang up after that many body bytes.
    read_rate: read at about this many bytes/s. on_headers(resp) is called once
    the head is parsed; on_progress(resp) after every body read.
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


# ---------------------------------------------------------------- unittest base

class OrchardCase(unittest.TestCase):
    """One Origin and one orchardd per test class; both stopped (orchardd by
    SIGTERM, expecting exit 0) when the class is done, whatever happened."""

    extra_toml = ""
    cache_limit = "4GiB"
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        cls.orchard = Orchard(cls.origin.port, workdir=cls.tmp, cache_limit=cls.cache_limit,
                              extra_toml=cls.extra_toml)
        cls.addClassCleanup(cls.orchard.kill9)           # runs last: no-op after a clean stop
        cls.addClassCleanup(cls.orchard.stop, expect_exit=0)
        cls.orchard.start()

    def setUp(self):
        if not self.orchard.alive():
            self.fail("orchardd is not running (died earlier); stderr:\n"
                      + self.orchard.stderr_text(tail=4000))

    def tearDown(self):
        if not self.orchard.alive():
            self.fail(f"orchardd died during the test (exit {self.orchard.proc.returncode}); "
                      "stderr:\n" + self.orchard.stderr_text(tail=4000))

    # -- helpers
    def get(self, target, host="swcdn.apple.com", headers=None, **kw):
        return self.orchard.get(target, host=host, headers=headers, **kw)

    def assertWhole(self, resp, name, size, status=200):
        """resp is a complete `status` answer carrying exactly /gen/size/name."""
        self.assertEqual(resp.status, status, resp)
        self.assertTrue(resp.complete, f"incomplete body: {resp}")
        self.assertEqual(resp.length, size, resp)
        if resp.body is not None and size <= 8 * MiB:
            self.assertTrue(resp.body == expected_bytes(name, size), "body differs from the origin's")
        else:
            self.assertEqual(resp.sha256, expected_sha256(name, size), "body differs from the origin's")
        cl = resp.header("content-length")
        if cl is not None:
            self.assertEqual(int(cl), size, resp)

    def assertMiss(self, resp):
        cs = resp.cache_status
        self.assertIn("orchard", cs, f"no Cache-Status naming orchard: {resp.header_list}")
        self.assertIn("fwd=miss", cs.replace(" ", ""), f"first response not a miss: {cs!r}")

    def assertHit(self, resp):
        self.assertTrue(resp.is_hit(), f"expected Cache-Status 'orchard; hit...', got "
                        f"{resp.cache_status!r} ({resp})")
        self.assertIsNotNone(resp.header("age"), f"hit without an Age header: {resp.header_list}")

    def get_hit(self, target, name, size, host="swcdn.apple.com", headers=None, grace=2.0, **kw):
        """GET expecting a hit. The object becomes visible once its last byte is
        on disk, which may trail the client's last byte by a moment, so a
        non-hit is retried for up to `grace` seconds (every answer must still
        be the whole object). Returns the hit response."""
        deadline = time.monotonic() + grace
        while True:
            r = self.get(target, host=host, headers=headers, **kw)
            self.assertWhole(r, name, size)
            if r.is_hit() or time.monotonic() > deadline:
                self.assertHit(r)
                return r
            time.sleep(0.05)
