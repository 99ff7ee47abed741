"""Black-box harness: run the built orchardd against a local Origin and talk to
it with a raw-socket HTTP/1.1 client.

Role: everything a tests/blackbox/test_*.py needs besides the origin (the
pieces live in procs.py and client.py and are re-exported here, so tests
import them all from `harness`):
  - find the binaries (env ORCHARDD / ORCHARDCTL, else ../../build/...);
  - `Orchard`: write a config TOML into a temp dir, start
    `orchardd --config FILE`, wait for `orchardd ready` on stderr, stop it with
    SIGTERM (SIGKILL as a fallback) or kill -9 it;
  - `request()`: send one request in exactly the form a test chooses (target
    and headers verbatim) and read the response, streaming big bodies into a
    sha256 instead of memory, and telling a complete body from a truncated one
    (client.py);
  - `rss_kb(pid)`: VmRSS / VmHWM from /proc;
  - `OrchardCase`: a unittest base class with one Origin + one orchardd per
    test class.

Lifecycle and cleanup: every child process is started with PR_SET_PDEATHSIG
(SIGKILL), tracked in a module registry and killed at interpreter exit; every
temp dir is removed at exit too (set ORCHARD_KEEP_TMP=1 to keep them), so a
failing or interrupted test leaves nothing running (procs.py).
"""

import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from origin import Origin, expected_bytes, expected_sha256, gen_path, MiB, GiB  # noqa: E402,F401
from procs import (_procs, _reg_lock, free_port, make_tempdir, remove_tempdir,  # noqa: E402,F401
                   run, spawn)
from client import Response, _norm_headers, request, run_parallel  # noqa: E402,F401


READY_LINE = "orchardd ready"
READY_TIMEOUT = 20.0
ALLOWED = ["swcdn.apple.com", "updates.cdn-apple.com", "127.0.0.1"]


def wait_for(what, fn, timeout=20.0, every=0.1):
    """fn() until it returns something true, and that value; fails naming
    `what` and fn's last answer after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


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


# ---------------------------------------------------------------- config + daemon

def config_toml(port, origin_port, state_dir, cache_limit="4GiB", extra="", sections=None,
                allow=None, resolve=None, resolve_extra=None):
    """`sections`: {"server": "send_timeout = \"2s\"", ...}: lines added to
    that table ([server], [storage], [upstream], [access] or [apple]; TOML
    cannot reopen a table, so `extra` suits new ones only).
    `allow`: upstream.allow (default ALLOWED); `resolve`: {host: "addr:port"}
    added to (or replacing) the entries that point the two Apple hosts at
    the origin; `resolve_extra`: {host: port} more origins, allowed and
    resolved to 127.0.0.1:port."""
    resolve_extra = resolve_extra or {}
    sections = dict(sections or {})
    extra = _feed_off_unless_named(extra, sections)
    entries = {h: f"127.0.0.1:{origin_port}" for h in ("swcdn.apple.com", "updates.cdn-apple.com")}
    entries.update(resolve or {})
    entries.update({h: f"127.0.0.1:{p}" for h, p in resolve_extra.items()})
    resolve = ", ".join(f'"{h}" = "{a}"' for h, a in entries.items())
    allow = ", ".join(f'"{h}"' for h in (ALLOWED if allow is None else allow) + list(resolve_extra))

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
        + more("access")
        + (("\n[apple]\n" + more("apple")) if "apple" in sections else "")
        + (("\n" + extra.strip() + "\n") if extra.strip() else "")
    )


def _feed_off_unless_named(extra, sections):
    """Nothing a test starts may reach the internet: apple.os_feed_url
    (Apple's OS-version feed, on by default) is set to "" in the [apple]
    table unless the test names it, in sections["apple"] or in an [apple]
    table of `extra`. Returns `extra` and fills `sections` (a copy) so
    that the key lands in the one [apple] table."""
    if "apple" in sections:
        if "os_feed_url" not in sections["apple"]:
            sections["apple"] = 'os_feed_url = ""\n' + sections["apple"]
        return extra
    if "[apple]" in extra:
        head, _, tail = extra.partition("[apple]\n")
        if "os_feed_url" in tail.split("\n[", 1)[0]:
            return extra
        return head + '[apple]\nos_feed_url = ""\n' + tail
    sections["apple"] = 'os_feed_url = ""'
    return extra


class Orchard:
    """One orchardd process on a config of its own.

    workdir holds config.toml, stderr.log, stdout.log and state/ (unless a
    state_dir is given). start() may be called again after stop()/kill9() and
    reuses the same config and state dir (and port)."""

    def __init__(self, origin_port, workdir=None, state_dir=None, port=None,
                 cache_limit="4GiB", extra_toml="", sections=None, env=None, extra_args=None,
                 allow=None, resolve=None, resolve_extra=None):
        self.binary = orchardd_path()
        self.resolve_extra = resolve_extra
        self.extra_args = list(extra_args or [])  # more orchardd arguments (e.g. --test-clock-offset 0)
        self.env = env  # extra environment (e.g. ORCHARD_SEND_PATH), or None
        self.origin_port = origin_port
        self.workdir = workdir or make_tempdir()
        self.state_dir = state_dir or os.path.join(self.workdir, "state")
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.cache_limit = cache_limit
        self.extra_toml = extra_toml
        self.sections = sections
        self.allow = allow  # upstream.allow (None: ALLOWED), see config_toml
        self.resolve = resolve
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
                                self.cache_limit, self.extra_toml, self.sections,
                                self.allow, self.resolve, self.resolve_extra))

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
            self.proc = spawn([self.binary, "--config", self.config_path] + self.extra_args, out, err,
                              cwd=self.workdir, env=dict(os.environ, **self.env) if self.env else None)
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


# ---------------------------------------------------------------- unittest base

class OrchardCase(unittest.TestCase):
    """One Origin and one orchardd per test class; both stopped (orchardd by
    SIGTERM, expecting exit 0) when the class is done, whatever happened."""

    extra_toml = ""
    sections = None  # {"upstream": "key = value"}: lines added to a table config_toml writes
    cache_limit = "4GiB"
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        cls.orchard = Orchard(cls.origin.port, workdir=cls.tmp, cache_limit=cls.cache_limit,
                              extra_toml=cls.extra_toml, sections=cls.sections)
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
