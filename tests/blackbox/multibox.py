"""Several orchardd boxes against one local origin, for the black-box tests
of parents and peers (issue 15): test_parents.py and test_peers.py.

Role: what those tests share on top of harness.py (one box) and origin.py
(the origin):
  - `Box`: one orchardd (a harness `Orchard`) whose config names its parents
    and peers by loopback address, with a per-box access log to a file and
    an admin token, so a test can count what reached each box (its access
    log lines, its /api/v1/status counters and Parents / Peers entries, its
    /metrics) and purge it;
  - `MultiBoxCase`: a unittest base class with one Origin per class and
    `box()` to make boxes that are stopped at the end whatever happened
    (ports are picked before any config is written, so boxes can name each
    other as parents or peers in any order);
  - `cache_status_entries()`: a response's Cache-Status (RFC 9211) as a list
    of (cache name, [params]) in field order, from one comma list or several
    field lines alike;
  - `wait_until()`, and `assert_whole()`: a complete 200 whose bytes are
    exactly the origin's (sha256 for big bodies).

Every box listens on 127.0.0.1 only, resolves the two Apple hosts to the
local origin, and allows 127.0.0.0/8 as clients (so children may ask their
parents). Nothing talks to the internet.
"""

import json
import os
import re
import time
import unittest

from harness import MiB, Orchard, expected_bytes, expected_sha256, free_port, make_tempdir, remove_tempdir, request
from origin import Origin

ADMIN_TOKEN = "multibox-admin-token-0123456789abcdef"
APPLE_HOST = "swcdn.apple.com"

# server.access_log's line (README, "Access log"):
# time client method target status bytes result ttfb_ms duration_ms form "host" "detail"
ACCESS_LINE = re.compile(
    r'^(\S+) (\S+) (\S+) (\S+) (\d+) (\d+) (\w+) (-|\d+\.\d{3}) (\d+\.\d{3}) (\w+) "([^"]*)" "([^"]*)"$')


class AccessLine:
    """One parsed access log line."""
    __slots__ = ("time", "client", "method", "target", "status", "bytes", "result", "form", "host", "detail")

    def __init__(self, m):
        (self.time, self.client, self.method, self.target, status, nbytes, self.result, _ttfb, _dur,
         self.form, self.host, self.detail) = m.groups()
        self.status, self.bytes = int(status), int(nbytes)

    def __repr__(self):
        return (f"<{self.method} {self.target} {self.status} {self.result} {self.form} host={self.host!r} "
                f"detail={self.detail!r}>")


def quote_list(items):
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def wait_until(fn, timeout=10.0, every=0.05):
    """Call fn until it returns something true or `timeout` passes; returns
    its last result."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(every)


# ---------------------------------------------------------------- Cache-Status

def _split_outside_quotes(text, sep):
    out, cur, quoted, esc = [], [], False, False
    for ch in text:
        if esc:
            cur.append(ch)
            esc = False
        elif quoted and ch == "\\":
            cur.append(ch)
            esc = True
        elif ch == '"':
            cur.append(ch)
            quoted = not quoted
        elif ch == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def cache_status_entries(resp):
    """[(cache name, [param text, ...])] of every Cache-Status field line of
    resp, in order (RFC 9211: the list is ordered from the origin toward the
    client, so this box's own entry is the last). Params are stripped
    ("hit", "fwd=miss", "stored", "fwd-status=200", ...)."""
    out = []
    for k, v in resp.header_list:
        if k.lower() != "cache-status":
            continue
        for member in _split_outside_quotes(v, ","):
            member = member.strip()
            if not member:
                continue
            parts = [p.strip() for p in _split_outside_quotes(member, ";")]
            out.append((parts[0], [p for p in parts[1:] if p]))
    return out


def entry_is_hit(entry):
    return "hit" in entry[1]


def entry_fwd(entry):
    """The fwd= value of an entry, or None."""
    for p in entry[1]:
        if p.startswith("fwd="):
            return p[4:]
    return None


def last_is_hit(resp):
    """This box's own entry (the last) says hit."""
    e = cache_status_entries(resp)
    return bool(e) and entry_is_hit(e[-1])


def assert_whole(tc, resp, name, size, status=200):
    """resp is a complete `status` answer carrying exactly /gen/size/name."""
    tc.assertNotIsInstance(resp, BaseException, resp)
    tc.assertEqual(resp.status, status, resp)
    tc.assertTrue(resp.complete, f"incomplete body: {resp}")
    tc.assertEqual(resp.length, size, resp)
    if resp.body is not None and size <= 8 * MiB:
        tc.assertTrue(resp.body == expected_bytes(name, size), f"body differs from the origin's: {resp}")
    else:
        tc.assertEqual(resp.sha256, expected_sha256(name, size), f"body differs from the origin's: {resp}")


# ---------------------------------------------------------------- one box

class Box(Orchard):
    """One orchardd among several. `port` is fixed at construction (so other
    boxes can name it before it starts); `parents` / `peers` are lists of
    entries as written in the config ("127.0.0.1:PORT", "https://..."); the
    access log goes to workdir/access.log. `upstream`, `access`, `server`:
    more lines for those tables; `tls_port`: a tls.listen on 127.0.0.1 (the
    box makes its own CA when no certificate is given)."""

    def __init__(self, origin_port, name, workdir, port=None, parents=(), parent_policy=None,
                 parent_down_time="2s", peers=(), peer_policy=None, peer_clients=None, max_hops=None,
                 workers=1, upstream="", access="", server="", tls_port=None, cache_limit="4GiB", **kw):
        self.name = name
        self.tls_port = tls_port
        self.access_log_path = os.path.join(workdir, "access.log")
        up = [f'parent_down_time = "{parent_down_time}"']
        if parents:
            up.append(f"parents = {quote_list(parents)}")
        if parent_policy:
            up.append(f'parent_policy = "{parent_policy}"')
        if peers:
            up.append(f"peers = {quote_list(peers)}")
        if peer_policy:
            up.append(f'peer_policy = "{peer_policy}"')
        if max_hops is not None:
            up.append(f"max_hops = {max_hops}")
        if upstream.strip():
            up.append(upstream.strip())
        acc = []
        if peer_clients is not None:
            acc.append(f"peer_clients = {quote_list(peer_clients)}")
        if access.strip():
            acc.append(access.strip())
        srv = [f"workers = {workers}", f'access_log = "{self.access_log_path}"', 'drain_timeout = "1s"']
        if server.strip():
            srv.append(server.strip())
        extra = f'[admin]\ntoken = "{ADMIN_TOKEN}"\n'
        if tls_port:
            extra += f'\n[tls]\nlisten = ["127.0.0.1:{tls_port}"]\n'
        super().__init__(origin_port, workdir=workdir, port=port or free_port(), cache_limit=cache_limit,
                         extra_toml=extra,
                         sections={"upstream": "\n".join(up), "access": "\n".join(acc), "server": "\n".join(srv)},
                         **kw)

    @property
    def address(self):
        """This box as a parent or peer entry names it."""
        return f"127.0.0.1:{self.port}"

    @property
    def ca_path(self):
        """The box's own CA (with tls.listen and no certificate)."""
        return os.path.join(self.state_dir, "tls", "ca.pem")

    def __repr__(self):
        return f"<Box {self.name} {self.address}>"

    # -- what it says about itself
    def api(self, method, path, body=None, token=ADMIN_TOKEN):
        headers = [("Host", self.host)]
        if token:
            headers.append(("Authorization", f"Bearer {token}"))
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers.append(("Content-Type", "application/json"))
        return request(self.port, method, path, headers, body=data, timeout=30)

    def status(self):
        """/api/v1/status (asked without a token, as the spec has it)."""
        r = self.api("GET", "/api/v1/status", token=None)
        if r.status != 200:
            raise AssertionError(f"{self}: /api/v1/status answered {r.status}: {r.body[:300]!r}")
        return json.loads(r.body)

    def nodes(self, kind="Parents"):
        """{id: entry} of status()[kind] ("Parents" or "Peers"); {} if absent."""
        return {n.get("id"): n for n in (self.status().get(kind) or [])}

    def node(self, kind, address):
        """The entry of status()[kind] for `address` ("127.0.0.1:PORT"): the one
        whose id is it, or whose url names it; None if none does."""
        for n in self.status().get(kind) or []:
            if n.get("id") == address or address in (n.get("url") or ""):
                return n
        return None

    def metrics(self):
        r = self.api("GET", "/metrics")
        if r.status != 200:
            raise AssertionError(f"{self}: /metrics answered {r.status}")
        return r.body.decode()

    def metric(self, name, labels=None, text=None):
        """The value of one sample of /metrics (None if absent); labels: a dict
        every one of which the sample must carry."""
        text = self.metrics() if text is None else text
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
            if not m or m.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            if all(have.get(k) == v for k, v in (labels or {}).items()):
                return float(m.group(3))
        return None

    def purge_all(self):
        r = self.api("POST", "/api/v1/purge", {"all": True})
        if r.status != 200:
            raise AssertionError(f"{self}: purge answered {r.status}: {r.body[:300]!r}")

    def objects(self):
        return self.status()["Objects"]

    # -- what reached it
    def settle_log(self, quiet=0.2, timeout=3.0):
        """Wait until the access log has not grown for `quiet` seconds (a line
        is written when its response ends, at the end of the loop's turn, so
        it may trail the client's last byte by a moment)."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            try:
                size = os.path.getsize(self.access_log_path)
            except OSError:
                size = 0
            if size != last:
                last, since = size, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.02)

    def access_lines(self):
        """Every parsed line of its access log so far."""
        try:
            with open(self.access_log_path, errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            m = ACCESS_LINE.match(line)
            if m:
                out.append(AccessLine(m))
        return out

    def proxied(self, needle=""):
        """Access log lines of requests that were not local routes (its own
        API, /metrics, probes of `GET /`), whose target contains `needle`."""
        return [l for l in self.access_lines() if l.form != "local" and needle in l.target]

    def from_children(self, needle=""):
        """Lines of requests in the content-cache form (`?source=`), which is
        what a child or a peer sends, whose target contains `needle`."""
        return [l for l in self.proxied(needle) if "source=" in l.target]

    # -- as a client
    def fetch(self, target, host=APPLE_HOST, headers=None, **kw):
        """GET target with `Host: host` (the intercept form by default)."""
        return self.get(target, host=host, headers=headers, **kw)

    def fetch_hit(self, target, timeout=3.0, **kw):
        """GET until this box's own Cache-Status entry (the last) says hit (an
        object becomes visible once its last byte is on disk, a moment after
        the client's last byte); the hit, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.fetch(target, **kw)
            if last_is_hit(r):
                return r
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)


# ---------------------------------------------------------------- unittest base

class MultiBoxCase(unittest.TestCase):
    """One Origin per class; boxes made with box() (in setUpClass or a test)
    are stopped at the class's end (SIGTERM, then SIGKILL), whatever
    happened. Boxes killed on purpose by a test may be restarted with
    start(); a box that died unexpectedly fails the test that saw it."""

    maxDiff = 4000
    origin_ssl = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir("orchard-mb-")
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        cls.boxes = []
        cls._names = set()

    @classmethod
    def box(cls, name, start=False, **kw):
        """A new Box named `name` (its workdir under the class's temp dir)."""
        assert name not in cls._names, name
        cls._names.add(name)
        wd = os.path.join(cls.tmp, name)
        os.makedirs(wd)
        b = Box(cls.origin.port, name, wd, **kw)
        cls.boxes.append(b)
        cls.addClassCleanup(b.kill9)
        cls.addClassCleanup(b.stop, expect_exit=None)
        if start:
            b.start()
        return b

    @staticmethod
    def start_all(*boxes):
        """Start boxes one after the other. (Not from threads: a child started
        with PR_SET_PDEATHSIG dies with the thread that forked it.)"""
        for b in boxes:
            b.start()

    def assertAlive(self, *boxes):
        for b in boxes:
            if not b.alive():
                self.fail(f"{b} is not running (exit {b.proc.returncode if b.proc else None}); stderr:\n"
                          + b.stderr_text(tail=3000))

    def assertWhole(self, resp, name, size, status=200):
        assert_whole(self, resp, name, size, status)

    def ports(self, n):
        return [free_port() for _ in range(n)]
