"""Black-box test of /metrics: the exposition passes `promtool check metrics`
and its counters equal what the test did.

The test fetches through the box, on fresh connections with
`Connection: close` so it knows every response's exact byte count: misses,
hits in the three proxy forms, a revalidation answered 304, a pass (POST),
an origin answering 503, an origin that refuses connections (502), a
request for a host that is not allowed (403), and local routes (status,
the probe, the scrapes themselves). Then it compares the deltas of one
scrape to the next with what it did: orchard_responses_total by result and
form, the histograms' counts (and their buckets' shape), the byte counters,
fills started, origin errors by kind, and requests_total.

promtool comes from Debian's `prometheus` package (the Makefile's TEST_DEPS);
when it is missing and the test runs as root it is installed, and only if
that fails is the promtool check skipped (the counter checks still run).
"""

import os
import re
import shutil
import socket
import subprocess
import time
import unittest

from harness import Origin, Orchard, free_port, gen_path, make_tempdir, remove_tempdir

LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


class Fetched:
    def __init__(self, raw):
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        self.status = int(self.head.split(" ", 2)[1])

    def header(self, name):
        for line in self.head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None


def fetch(port, method, target, host, body=b"", headers=()):
    """One request on a fresh connection, `Connection: close`: the response
    is every byte until EOF (so its length is exactly what the box wrote)."""
    hdrs = [("Host", host)] + list(headers)
    if body:
        hdrs.append(("Content-Length", str(len(body))))
    hdrs.append(("Connection", "close"))
    req = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(req.encode() + body)
        raw = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            raw += d
    finally:
        s.close()
    return Fetched(raw)


def parse(text):
    """{(name, labels): value} of every sample; labels as a sorted tuple."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = ()
        if m.group(2):
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2))))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def promtool():
    path = shutil.which("promtool")
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
                       capture_output=True, timeout=600, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        path = shutil.which("promtool")
    return path


class MetricsTest(unittest.TestCase):
    maxDiff = 8000

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        cls.dead_port = free_port()  # nothing listens there: connections are refused
        cls.box = Orchard(cls.origin.port, workdir=cls.tmp, resolve_extra={"dead.test": cls.dead_port})
        cls.addClassCleanup(cls.box.kill9)
        cls.addClassCleanup(cls.box.stop, expect_exit=0)
        cls.box.start()

    def setUp(self):
        self.done = []  # (result, form, Fetched, counted in client_body_bytes)

    def get(self, target, result, form, host="swcdn.apple.com", method="GET", body=b"", headers=(), status=200,
            proxied_body=True):
        r = fetch(self.box.port, method, target, host, body, headers)
        self.assertEqual(r.status, status, r.head)
        self.done.append((result, form, r, proxied_body))
        return r

    def scrape(self):
        r = fetch(self.box.port, "GET", "/metrics", self.box.host)
        self.assertEqual(r.status, 200, r.head)
        return r

    def settle(self):
        """Waits until no fill is in flight (a committed object is a hit);
        each poll is a local response, counted like any other."""
        deadline = time.monotonic() + 10
        while True:
            r = self.get("/api/v1/status", "local", "local", host=self.box.host, proxied_body=False)
            if '"FillsInFlight":0' in r.body.decode() or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def test_counters_equal_what_was_done(self):
        a, b = gen_path("m-a", 4096), gen_path("m-b", 10000)
        rv = gen_path("m-rv", 1000, cc="max-age=1")
        five = gen_path("m-503", 700, status=503, cc="no-store")
        first = self.scrape()
        before = parse(first.body.decode())
        self.done.append(("local", "local", first, False))  # counted once it ended, in the next scrape

        ra = self.get(a, "miss", "intercept")
        self.assertIn("fwd=miss", ra.header("Cache-Status"))
        self.get(b, "miss", "intercept")
        self.get(rv, "miss", "intercept")
        self.settle()
        rv_stored_at = time.monotonic()
        for _ in range(2):
            self.assertIn("orchard; hit", self.get(a, "hit", "intercept").header("Cache-Status"))
        self.assertIn("orchard; hit", self.get(b, "hit", "intercept").header("Cache-Status"))
        fwd = self.get("http://swcdn.apple.com" + a, "hit", "forward", host="swcdn.apple.com")
        self.assertIn("orchard; hit", fwd.header("Cache-Status"))
        src = self.get(a + "?source=swcdn.apple.com", "hit", "source", host=self.box.host)
        self.assertIn("orchard; hit", src.header("Cache-Status"))
        self.get("/echo/m-pass", "pass", "intercept", method="POST", body=b"x" * 321)
        self.get(five, "miss", "intercept", status=503)
        self.get("/gen/100/m-dead", "error", "intercept", host="dead.test", status=502, proxied_body=False)
        self.get("/x", "refused", "local", host="evil.example", status=403, proxied_body=False)
        self.get("/", "local", "local", host="swcdn.apple.com", headers=[("Max-Forwards", "0")], proxied_body=False)
        time.sleep(max(0.0, rv_stored_at + 2.2 - time.monotonic()))  # max-age=1 has passed
        r = self.get(rv, "revalidated", "intercept")
        self.assertIn("fwd-status=304", r.header("Cache-Status"))
        self.settle()

        last = self.scrape()
        text = last.body.decode()
        after = parse(text)

        def delta(name, **labels):
            key = (name, tuple(sorted(labels.items())))
            self.assertIn(key, after, f"no {name}{labels} in /metrics")
            return after[key] - before.get(key, 0.0)

        # Responses by result and form: every pair, the ones not done stay put.
        want = {}
        for result, form, _, _ in self.done:
            want[(result, form)] = want.get((result, form), 0) + 1
        got = {}
        for (name, labels), _ in after.items():
            if name == "orchard_responses_total":
                d = dict(labels)
                v = delta(name, **d)
                if v:
                    got[(d["result"], d["form"])] = v
        self.assertEqual(got, {k: float(v) for k, v in want.items()})
        total = sum(want.values())
        # requests_total counts at the head: the first scrape was counted
        # before it rendered, the last one is parsed but not answered yet.
        self.assertEqual(delta("orchard_requests_total"), total - 1 + 1)

        # Histograms: one observation per response (each wrote a byte).
        for result in ("hit", "miss", "stale", "revalidated", "pass", "error", "local", "refused", "tunnel"):
            n = sum(1 for r, _, _, _ in self.done if r == result)
            self.assertEqual(delta("orchard_time_to_first_byte_seconds_count", result=result), n, result)
        self.assertEqual(delta("orchard_request_duration_seconds_count"), total)
        for name, labels in (("orchard_request_duration_seconds", {}),
                             ("orchard_time_to_first_byte_seconds", {"result": "hit"})):
            buckets = sorted(((float(dict(l)["le"]), v) for (n, l), v in after.items()
                              if n == name + "_bucket" and all(dict(l).get(k) == x for k, x in labels.items())))
            self.assertEqual(len(buckets), 17, name)
            self.assertEqual(buckets[0][0], 0.0005)
            self.assertEqual(buckets[-1][0], float("inf"))
            counts = [v for _, v in buckets]
            self.assertEqual(counts, sorted(counts), f"{name} buckets are not cumulative")
            self.assertEqual(counts[-1], after[(name + "_count", tuple(sorted(labels.items())))])
            self.assertGreater(after[(name + "_sum", tuple(sorted(labels.items())))], 0)
        # A small hit on loopback is answered well under a second.
        self.assertEqual(delta("orchard_time_to_first_byte_seconds_bucket", result="hit", le="1"), 5)

        # Bytes: every byte of every response; body bytes of the proxied ones;
        # what the origin sent.
        self.assertEqual(delta("orchard_response_bytes_total"), sum(len(f.raw) for _, _, f, _ in self.done))
        body = sum(len(f.body) for _, _, f, proxied in self.done if proxied)
        self.assertEqual(delta("orchard_client_body_bytes_total"), body)
        self.assertEqual(delta("orchard_bytes_to_clients_total"), body, "the old name keeps its value")
        from_origin = 4096 + 10000 + 1000 + 700 + len(self.done[[d[0] for d in self.done].index("pass")][2].body)
        self.assertEqual(delta("orchard_origin_body_bytes_total"), from_origin)
        self.assertEqual(delta("orchard_bytes_from_origin_total"), from_origin)
        self.assertEqual(delta("orchard_fill_bytes_total"), 4096 + 10000 + 1000 + 700, "shared fills only")

        # Fills: a, b, rv, the 503, the unreachable origin, the revalidation.
        self.assertEqual(delta("orchard_fills_started_total"), 6)
        self.assertEqual(delta("orchard_misses_total"), 6)  # a, b, rv, the 503, the unreachable one, the revalidation
        self.assertEqual(delta("orchard_hits_total"), 5 + 1)  # the revalidated one is served as a hit
        self.assertEqual(delta("orchard_passes_total"), 1)
        kinds = {dict(l)["kind"]: delta(n, **dict(l)) for (n, l), _ in after.items()
                 if n == "orchard_origin_errors_by_kind_total"}
        self.assertEqual(kinds, {"resolve": 0, "connect": 1, "timeout": 0, "tls": 0, "protocol": 0, "reset": 0,
                                 "status_5xx": 1, "other": 0})
        self.assertEqual(delta("orchard_origin_errors_total"), 1)

        # Gauges of the store.
        self.assertEqual(after[("orchard_store_objects", ())], 3)
        self.assertEqual(after[("orchard_store_bytes", ())], 4096 + 10000 + 1000)
        self.assertGreater(after[("orchard_store_limit_bytes", ())], 0)
        self.assertEqual(after[("orchard_store_evictions_total", ())], 0)

        # Every family has HELP and TYPE.
        families = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
        helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
        self.assertEqual(families, helps)
        for name, _ in after:
            base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in families else name
            self.assertIn(base, families, f"{name} has no TYPE line")

        tool = promtool()
        if tool is None:
            self.skipTest("promtool (Debian package prometheus) is not installed and cannot be installed here")
        out = subprocess.run([tool, "check", "metrics"], input=last.body, capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout.decode() + out.stderr.decode())
        self.assertEqual(out.stdout.decode().strip(), "", "promtool lint findings")


if __name__ == "__main__":
    unittest.main(verbosity=2)
