"""Apple's OS-version feed, checked from outside.

An HTTPS origin stands in for gdmf.apple.com (upstream.resolve maps the
name to it; its certificate, for that name, comes from a test CA given ONLY
as apple.feed_ca_file, never as upstream.ca_file) and serves /v2/pmv. The
box fetches it every second (apple.os_feed_interval = "1s") and answers
GET /api/v1/apple/os-versions.

  - a good feed is served, with its source, fetch time and releases, and
    filters by platform and set;
  - then the origin serves {"PublicAssetSets":{},"AssetSets":{}} (an empty
    list, as Apple has served): the box keeps the last good copy, marks it
    stale and reports the failed attempt; the failure is logged once however
    many attempts fail; then broken JSON: the same;
  - OS targets are checked against the copy (an unknown macOS version or
    build is a 400);
  - after a restart the last good copy is served at once, from the database;
  - the feed's CA is the feed's alone: the proxy's HTTPS fetch of the same
    host is refused (502, certificate verify failed);
  - without apple.feed_ca_file the fetch fails verification: 503 with the
    reason, counted as a fetch_error, and OS targets are taken with a warning;
  - SIGTERM while a fetch hangs (the feed's host never answers its TLS
    handshake) exits at once, not after the connect timeout.
"""

import json
import os
import re
import time
import unittest

from harness import Orchard, Origin, gen_path, make_tempdir, remove_tempdir, request, wait_for
from test_tls import make_ca, make_leaf, server_context

TOKEN = "os-feed-test-token-41d7"
FEED_HOST = "gdmf.apple.com"
FEED_PATH = "/v2/pmv"

GOOD = {
    "PublicAssetSets": {
        "macOS": [
            {"ProductVersion": "15.1.1", "Build": "24B91", "PostingDate": "2024-11-19",
             "ExpirationDate": "2025-02-24", "SupportedDevices": ["J132AP", "Mac-1E7E29AD0135F9BC"]},
            {"ProductVersion": "14.7.1", "Build": "23H222", "PostingDate": "2024-10-28",
             "ExpirationDate": "2025-02-24", "SupportedDevices": ["J132AP"]},
        ],
        "iOS": [{"ProductVersion": "18.1.1", "Build": "22B91", "PostingDate": "2024-11-19",
                 "SupportedDevices": ["iPhone17,1"]}],
    },
    "AssetSets": {
        "macOS": [{"ProductVersion": "15.1", "Build": "24B83", "PostingDate": "2024-10-28",
                   "SupportedDevices": ["J132AP"]}],
    },
    "PublicBackgroundSecurityImprovements": {
        "macOS": [{"ProductVersion": "26.1", "ProductVersionExtra": "(a)", "Build": "25B78a",
                   "PostingDate": "2025-11-20", "SupportedDevices": ["J132AP"]}],
    },
}
EMPTY = {"PublicAssetSets": {}, "AssetSets": {}}
BROKEN = '{"PublicAssetSets": {"macOS": [{"ProductVersion": "15.2", "Build": "24C1'


class OsFeedCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        certs = os.path.join(cls.tmp, "certs")
        os.makedirs(certs)
        cls.feed_ca, _ = make_ca(certs, "feedca")
        leaf = make_leaf(certs, "feedca", "gdmf", FEED_HOST)
        cls.origin = Origin(ssl_context=server_context(*leaf)).start()
        cls.addClassCleanup(cls.origin.stop)
        cls.origin.set_document(FEED_PATH, json.dumps(GOOD))

    def box(self, name, ca_file, feed_port=None, connect_timeout="2s"):
        apple = f'os_feed_url = "https://{FEED_HOST}{FEED_PATH}"\nos_feed_interval = "1s"\n'
        if ca_file:
            apple += f'feed_ca_file = "{ca_file}"\n'
        workdir = os.path.join(self.tmp, name)
        os.makedirs(workdir)
        o = Orchard(self.origin.port, workdir=workdir,
                    allow=["swcdn.apple.com", FEED_HOST],
                    resolve={FEED_HOST: f"127.0.0.1:{feed_port or self.origin.port}"},
                    sections={"apple": apple, "upstream": f'connect_timeout = "{connect_timeout}"'},
                    extra_toml=f'[admin]\ntoken = "{TOKEN}"\n')
        self.addCleanup(o.kill9)
        return o

    def api(self, o, method, target, body=None):
        data = json.dumps(body).encode() if body is not None else None
        r = request(o.port, method, target, [("Authorization", f"Bearer {TOKEN}")], body=data)
        return r.status, (json.loads(r.body) if r.body else None)

    def versions(self, o, query=""):
        return self.api(o, "GET", "/api/v1/apple/os-versions" + query)

    def served(self, o):
        """The answer when it is a 200, else None."""
        status, j = self.versions(o)
        return j if status == 200 else None

    def metric(self, o, name, labels=""):
        r = request(o.port, "GET", "/metrics", [("Authorization", f"Bearer {TOKEN}")])
        m = re.search(rf"^orchard_{name}{re.escape(labels)} (\d+)$", r.body.decode(), re.M)
        return int(m.group(1)) if m else None

    def attempt_with(self, o, result, after):
        """The answer once an attempt later than `after` (RFC 3339) has `result`."""
        def check():
            status, j = self.versions(o)
            a = j.get("last_attempt") or {}
            return j if a.get("result") == result and a.get("time", "") > after else None
        return wait_for(f"an attempt with result {result}", check)

    def assertServesGood(self, j, fetched_at=None):
        mac = sorted(r["version"] for r in j["releases"] if r["platform"] == "macOS")
        self.assertEqual(mac, ["14.7.1", "15.1", "15.1.1", "26.1"], j)
        self.assertEqual(j["source"], f"https://{FEED_HOST}{FEED_PATH}")
        if fetched_at is not None:
            self.assertEqual(j["fetched_at"], fetched_at, "the last good copy is the one served")

    def test_keeps_the_last_good_copy_when_the_origin_turns_empty_then_broken(self):
        o = self.box("main", self.feed_ca)
        o.start()
        j = wait_for("a good copy", lambda: self.served(o))
        self.assertServesGood(j)
        self.assertFalse(j["stale"])
        self.assertTrue(j["last_attempt"]["ok"], j)
        self.assertIsNone(j["last_attempt"]["error"])
        good_at = j["fetched_at"]
        rel = [r for r in j["releases"] if r["version"] == "15.1.1"][0]
        self.assertEqual(rel, {"set": "PublicAssetSets", "platform": "macOS", "version": "15.1.1",
                               "version_extra": None, "build": "24B91", "posting_date": "2024-11-19",
                               "expiration_date": "2025-02-24",
                               "supported_devices": ["J132AP", "Mac-1E7E29AD0135F9BC"]})
        # Filters.
        _, mdm = self.versions(o, "?platform=macOS&set=AssetSets")
        self.assertEqual([r["version"] for r in mdm["releases"]], ["15.1"])
        _, ios = self.versions(o, "?platform=iOS")
        self.assertEqual([r["version"] for r in ios["releases"]], ["18.1.1"])
        # The feed arrived over TLS trusted through apple.feed_ca_file alone.
        req = self.origin.matching(FEED_PATH)[0]
        self.assertEqual(req.headers.get("host"), FEED_HOST)
        self.assertGreaterEqual(self.metric(o, "apple_os_feed_fetches_total", '{result="ok"}'), 1)
        self.assertIsNotNone(self.metric(o, "apple_os_feed_age_seconds"))

        # OS targets are checked against the copy.
        status, _ = self.api(o, "PUT", "/api/v1/rings",
                             {"rings": [{"name": "canary", "groups": ["it"]}], "promote_after_days": 1})
        self.assertIn(status, (200, 201))
        status, t = self.api(o, "PUT", "/api/v1/os-targets/canary", {"version": "15.1.1", "build": "24B91"})
        self.assertEqual(status, 200, t)
        self.assertNotIn("warning", t)
        status, t = self.api(o, "PUT", "/api/v1/os-targets/canary", {"version": "15.1"})  # the MDM set's
        self.assertEqual(status, 200, t)
        status, err = self.api(o, "PUT", "/api/v1/os-targets/canary", {"version": "16.0"})
        self.assertEqual(status, 400, err)
        self.assertIn("15.1.1", err["detail"], "the refusal says what the feed lists")
        status, err = self.api(o, "PUT", "/api/v1/os-targets/canary", {"version": "15.1.1", "build": "24B83"})
        self.assertEqual(status, 400, err)
        self.assertTrue(err["detail"].startswith("build:"), err)
        status, err = self.api(o, "PUT", "/api/v1/os-targets/canary", {"version": "26.1"})
        self.assertEqual(status, 400, "a security improvement is not an OS version to target")

        # Apple serves an empty list: the good copy stays.
        self.origin.set_document(FEED_PATH, json.dumps(EMPTY))
        j = self.attempt_with(o, "empty", good_at)
        self.assertServesGood(j, good_at)
        self.assertTrue(j["stale"])
        self.assertFalse(j["last_attempt"]["ok"])
        self.assertIn("no macOS release", j["last_attempt"]["error"])
        status, t = self.api(o, "PUT", "/api/v1/os-targets/canary", {"version": "14.7.1"})
        self.assertEqual(status, 200, "still checked against the last good copy")
        # Several more failed attempts, one log line.
        empty_seen = self.metric(o, "apple_os_feed_fetches_total", '{result="empty"}')
        wait_for("two more empty fetches",
                 lambda: self.metric(o, "apple_os_feed_fetches_total", '{result="empty"}') >= empty_seen + 2)
        self.assertEqual(o.stderr_text().count("lists no macOS release"), 1, o.stderr_text(tail=3000))

        # Broken JSON: the same.
        self.origin.set_document(FEED_PATH, BROKEN)
        j = self.attempt_with(o, "invalid", j["last_attempt"]["time"])
        self.assertServesGood(j, good_at)
        self.assertTrue(j["stale"])
        self.assertIn("not valid JSON", j["last_attempt"]["error"])
        self.assertGreaterEqual(self.metric(o, "apple_os_feed_fetches_total", '{result="invalid"}'), 1)

        # A restart serves the stored copy at once, before any fetch.
        o.stop()
        o.start()
        status, j = self.versions(o)
        self.assertEqual(status, 200, j)
        self.assertServesGood(j, good_at)
        j = self.attempt_with(o, "invalid", "")
        self.assertServesGood(j, good_at)

        # And a good feed again replaces it.
        self.origin.set_document(FEED_PATH, json.dumps(GOOD))
        j = wait_for("a fresh good copy", lambda: (lambda j: j if j and j["fetched_at"] > good_at else None)(self.served(o)))
        self.assertFalse(j["stale"])
        self.assertTrue(j["last_attempt"]["ok"])
        o.stop()

    def test_the_feed_ca_is_for_the_feed_only(self):
        o = self.box("proxy", self.feed_ca)
        o.start()
        wait_for("a good copy", lambda: self.served(o))
        path = gen_path("feed-host-object", 1000)
        r = request(o.port, "GET", f"{path}?source={FEED_HOST}&sourceScheme=https")
        self.assertEqual(r.status, 502, r)
        self.assertIn("certificate verify failed", r.body.decode())
        self.assertEqual(self.origin.count(path), 0)
        o.stop()

    def test_without_the_feed_ca_the_fetch_fails_verification(self):
        o = self.box("noca", None)
        o.start()

        def failed():
            status, j = self.versions(o)
            return (status, j) if j.get("last_attempt") else None
        status, j = wait_for("a failed attempt", failed)
        self.assertEqual(status, 503, j)
        self.assertEqual(j["error"], "Service Unavailable")
        self.assertFalse(j["last_attempt"]["ok"])
        self.assertEqual(j["last_attempt"]["result"], "fetch_error")
        self.assertIn("certificate", j["last_attempt"]["error"])
        self.assertGreaterEqual(self.metric(o, "apple_os_feed_fetches_total", '{result="fetch_error"}'), 1)
        self.assertEqual(self.metric(o, "apple_os_feed_fetches_total", '{result="ok"}'), 0)
        self.assertIsNone(self.metric(o, "apple_os_feed_age_seconds"), "no age without a good copy")
        # Not checked without a copy: taken, with a warning.
        status, _ = self.api(o, "PUT", "/api/v1/rings", {"rings": [{"name": "canary", "groups": ["it"]}]})
        self.assertIn(status, (200, 201))
        status, t = self.api(o, "PUT", "/api/v1/os-targets/canary", {"version": "16.0"})
        self.assertEqual(status, 200, t)
        self.assertIn("not checked", t["warning"])
        o.stop()

    def test_sigterm_during_a_hung_fetch_exits_at_once(self):
        import socket
        silent = socket.socket()  # takes the connection (the kernel's backlog), never answers the ClientHello
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        self.addCleanup(silent.close)
        o = self.box("hung", self.feed_ca, feed_port=silent.getsockname()[1], connect_timeout="60s")
        o.start()
        time.sleep(2.5)  # the first fetch starts a second after start, and hangs
        t0 = time.monotonic()
        o.stop()
        self.assertLess(time.monotonic() - t0, 10, "stop waited for the hung fetch")
        self.assertNotIn("apple.os_feed: https", o.stderr_text(), "a fetch cut short by the stop is not judged")


if __name__ == "__main__":
    unittest.main()
