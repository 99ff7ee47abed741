"""Black-box: the operator's API (issue 13): GET /api/v1/status's keys,
POST /api/v1/purge and POST /api/v1/reload, against the built orchardd and
a local origin.

What is checked, from outside:
  - status: Apple's keys (Activated, Active, Port = the bound port,
    PrivateAddress, RegistrationStatus 1 while serving), HitRatio and
    ByteHitRatio from a miss and a hit, Connections, Version, and a fill in
    flight listed with its URL, bytes received, length and clients;
  - purge by URL: the next request goes to the origin again (the origin's
    request count), other objects stay hits; the ?source= form of the same
    URL is the same key; a varying URL takes every variant; nothing stored
    is a 404; a malformed body is a 400 naming the forms;
  - purge by host leaves other hosts' objects; purge of everything;
  - purge while a fill is in flight: its client gets every byte, a new
    request after the purge is a new origin fetch, and the purged fill
    stores nothing;
  - reload: a changed reloadable key is applied (generation + 1, key
    named), a changed restart-only key is named in restart_required, an
    invalid file is a 422 listing each problem with key and line while the
    running config (generation, behaviour) stays;
  - both writes need an admin token (401 without, 403 with a read token).
"""

import json
import os
import threading
import time
import unittest

from harness import MiB, Orchard, make_tempdir, remove_tempdir, request
from origin import Origin, variant_name, expected_bytes

ADMIN = "ops-admin-token-0123456789abcdef"
READER = "ops-read-token-0123456789abcdef"
TOKENS_TOML = (
    "[admin]\n"
    f'token = "{ADMIN}"\n'
    "[[admin.tokens]]\n"
    'name = "dashboard"\n'
    f'token = "{READER}"\n'
    'scope = "read"\n'
)


class OpsCase(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        cls.box = Orchard(cls.origin.port, workdir=cls.tmp, extra_toml=TOKENS_TOML)
        cls.addClassCleanup(cls.box.kill9)
        cls.addClassCleanup(cls.box.stop, expect_exit=0)
        cls.box.start()

    def setUp(self):
        self.assertTrue(self.box.alive(), self.box.stderr_text(tail=3000))

    def api(self, method, path, body=None, token=ADMIN):
        headers = [("Host", self.box.host)]
        if token:
            headers.append(("Authorization", f"Bearer {token}"))
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers.append(("Content-Type", "application/json"))
        r = request(self.box.port, method, path, headers, body=data)
        return r.status, (json.loads(r.body) if r.body else None)

    def status(self):
        code, j = self.api("GET", "/api/v1/status", token=None)
        self.assertEqual(code, 200, j)
        return j

    def purge(self, body, expect=200, token=ADMIN):
        code, j = self.api("POST", "/api/v1/purge", body, token=token)
        self.assertEqual(code, expect, j)
        return j

    def get(self, target, host="swcdn.apple.com", headers=None):
        return self.box.get(target, host=host, headers=headers)

    def fetch_stored(self, target, host="swcdn.apple.com", headers=None):
        """GET until it is a hit (the object is stored)."""
        r = self.get(target, host, headers)
        self.assertEqual(r.status, 200, r)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r = self.get(target, host, headers)
            if r.is_hit():
                return r
            time.sleep(0.05)
        self.fail(f"{target} never became a hit: {r.cache_status}")


class StatusTest(OpsCase):

    def test_apple_keys_and_ratios(self):
        self.purge({"all": True})
        before = self.status()
        path = "/gen/1M/status-ratio"
        self.assertTrue(self.get(path).status == 200)
        self.fetch_stored(path)  # one miss, then hits
        s = self.status()
        for key in ("TotalBytesReturnedToClients", "TotalBytesStoredFromOrigin", "TotalBytesDropped",
                    "TotalBytesAreSince", "CacheUsed", "CacheFree", "CacheLimit", "CacheStatus", "Objects",
                    "HitRatio", "ByteHitRatio", "FillsInFlight", "Fills", "Connections", "UptimeSeconds",
                    "Version", "ConfigGeneration", "Requests"):
            self.assertIn(key, s)
        self.assertIs(s["Activated"], True)
        self.assertIs(s["Active"], True)
        self.assertEqual(s["Port"], self.box.port)
        self.assertEqual(s["PrivateAddress"], "127.0.0.1")
        self.assertEqual(s["PrivateAddresses"], ["127.0.0.1"])
        self.assertEqual(s["RegistrationStatus"], 1)
        self.assertNotIn("PublicAddress", s)  # never guessed
        self.assertRegex(s["Version"], r"^\d+\.\d+\.\d+$")
        self.assertGreaterEqual(s["Connections"], 1)  # this one at least
        self.assertEqual(s["ConfigFile"], self.box.config_path)
        sent = s["TotalBytesReturnedToClients"] - before["TotalBytesReturnedToClients"]
        hits = round(sent / MiB) - 1  # every answer is the whole 1 MiB; one came from the origin
        self.assertGreaterEqual(hits, 1)
        self.assertEqual(s["TotalBytesStoredFromOrigin"] - before["TotalBytesStoredFromOrigin"], MiB)
        self.assertGreater(s["HitRatio"], 0)
        # Every byte was sent from the store but the miss's MiB (this box's totals since start).
        served_from_store = s["ByteHitRatio"] * s["TotalBytesReturnedToClients"]
        before_store = before["ByteHitRatio"] * before["TotalBytesReturnedToClients"]
        self.assertAlmostEqual(served_from_store - before_store, hits * MiB, delta=2)
        self.assertEqual(s["CacheUsed"], MiB)
        self.assertEqual(s["Objects"], 1)

    def test_fill_in_flight_is_listed_with_progress(self):
        size = 4 * MiB
        path = f"/gen/{size}/status-slow?rate={MiB}"
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("r", self.get(path)))
        t.start()
        try:
            seen = None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and seen is None:
                for f in self.status()["Fills"]:
                    if f["url"].endswith("/gen/4194304/status-slow?rate=1048576") and f["received"] > 0:
                        seen = f
                time.sleep(0.1)
            self.assertIsNotNone(seen, "the fill never showed in Fills")
            self.assertEqual(seen["url"], f"http://swcdn.apple.com{path}")
            self.assertEqual(seen["length"], size)
            self.assertEqual(seen["clients"], 1)
            self.assertLess(seen["received"], size)
            self.assertGreaterEqual(self.status()["FillsInFlight"], 1)
        finally:
            t.join(30)
        self.assertEqual(result["r"].length, size)
        # It leaves the table once committed, a moment after its last byte.
        deadline = time.monotonic() + 5
        while self.status()["Fills"] and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.status()["Fills"], [])


class PurgeTest(OpsCase):

    def test_purge_url_refetches_and_leaves_the_others(self):
        a, b = "/gen/64K/purge-a", "/gen/64K/purge-b"
        self.fetch_stored(a)
        self.fetch_stored(b)
        other = "/gen/64K/purge-other-host"
        self.fetch_stored(other, host="updates.cdn-apple.com")
        n = self.origin.count(a)
        j = self.purge({"url": f"http://swcdn.apple.com{a}"})
        self.assertEqual(j, {"key": f"http://swcdn.apple.com{a}", "purged": 1, "partials": 0, "fills": 0})
        r = self.get(a)
        self.assertEqual(r.status, 200)
        self.assertIn("fwd=miss", r.cache_status.replace(" ", ""))
        self.assertEqual(self.origin.count(a), n + 1)
        self.assertTrue(self.get(b).is_hit())
        self.assertTrue(self.get(other, host="updates.cdn-apple.com").is_hit())
        # Nothing stored any more for it: a 404 that names the key.
        self.fetch_stored(a)
        self.purge({"url": f"http://swcdn.apple.com{a}"})
        j = self.purge({"url": f"http://swcdn.apple.com{a}"}, expect=404)
        self.assertIn(f"http://swcdn.apple.com{a}", j["detail"])

    def test_source_form_and_default_port_are_the_same_key(self):
        path = "/gen/32K/purge-forms?x=1"
        self.fetch_stored(path)
        j = self.purge({"url": f"{path}&source=swcdn.apple.com"})
        self.assertEqual(j["key"], f"http://swcdn.apple.com{path}")
        self.assertEqual(j["purged"], 1)
        self.fetch_stored(path)
        self.assertEqual(self.purge({"url": f"HTTP://SWCDN.apple.com:80{path}"})["purged"], 1)

    def test_varying_url_takes_every_variant(self):
        path = "/gen/16K/purge-vary?vary=Accept-Language"
        for lang in ("en", "de"):
            self.fetch_stored(path, headers=[("Accept-Language", lang)])
        j = self.purge({"url": f"http://swcdn.apple.com{path}"})
        self.assertEqual(j["purged"], 2)
        n = self.origin.count("/gen/16K/purge-vary")
        for lang in ("en", "de"):
            r = self.get(path, headers=[("Accept-Language", lang)])
            self.assertEqual(r.body, expected_bytes(variant_name("purge-vary", lang), 16 * 1024))
            self.assertFalse(r.is_hit(), r.cache_status)
        self.assertEqual(self.origin.count("/gen/16K/purge-vary"), n + 2)

    def test_purge_host_and_all(self):
        mine = ["/gen/8K/host-1", "/gen/8K/host-2"]
        for p in mine:
            self.fetch_stored(p)
        self.fetch_stored("/gen/8K/host-kept", host="updates.cdn-apple.com")
        j = self.purge({"host": "SWCDN.apple.com"})
        self.assertGreaterEqual(j["purged"], 2)
        for p in mine:
            self.assertFalse(self.get(p).is_hit())
        self.assertTrue(self.get("/gen/8K/host-kept", host="updates.cdn-apple.com").is_hit())
        self.assertEqual(self.purge({"host": "nothing-stored.example"})["purged"], 0)  # 200, nothing
        for p in mine:
            self.fetch_stored(p)
        j = self.purge({"all": True})
        self.assertGreaterEqual(j["purged"], 3)
        self.assertEqual(self.status()["Objects"], 0)
        self.assertEqual(self.status()["CacheUsed"], 0)
        self.assertFalse(self.get("/gen/8K/host-kept", host="updates.cdn-apple.com").is_hit())

    def test_malformed_bodies_are_400(self):
        for body in (b"not json", b"[]", {}, {"url": 5}, {"url": ""}, {"host": "a.example:80"},
                     {"host": "bad host!"}, {"all": False}, {"frob": 1}, {"url": "http://a/x", "all": True},
                     {"url": "ftp://a/x"}, {"url": "/no/host"}):
            with self.subTest(body=body):
                j = self.purge(body, expect=400)
                self.assertEqual(sorted(j), ["detail", "error"])
                self.assertTrue(j["detail"])
        code, j = self.api("POST", "/api/v1/purge", None)
        self.assertEqual(code, 400, j)

    def test_tokens(self):
        code, j = self.api("POST", "/api/v1/purge", {"all": True}, token=None)
        self.assertEqual(code, 401, j)
        code, j = self.api("POST", "/api/v1/purge", {"all": True}, token=READER)
        self.assertEqual(code, 403, j)
        self.assertIn("admin scope", j["detail"])
        code, j = self.api("POST", "/api/v1/reload", None, token=READER)
        self.assertEqual(code, 403, j)

    def test_purge_during_a_fill_keeps_its_client_and_stores_nothing(self):
        size = 3 * MiB
        path = f"/gen/{size}/purge-inflight?rate={MiB}"
        key = f"http://swcdn.apple.com{path}"
        results = {}

        def fetch(name):
            results[name] = self.get(path)

        first = threading.Thread(target=fetch, args=("first",))
        first.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(f["url"] == key and f["received"] > 0 for f in self.status()["Fills"]):
                break
            time.sleep(0.05)
        j = self.purge({"url": key})
        self.assertEqual(j["fills"], 1, j)
        self.assertEqual(self.origin.count("/gen/3145728/purge-inflight"), 1)
        # A request after the purge does not join the purged fill.
        second = threading.Thread(target=fetch, args=("second",))
        second.start()
        first.join(30)
        second.join(30)
        for name in ("first", "second"):
            r = results[name]
            self.assertEqual((r.status, r.complete, r.length), (200, True, size), f"{name}: {r}")
            self.assertEqual(r.sha256, self._sha(path, size), name)
        self.assertEqual(self.origin.count("/gen/3145728/purge-inflight"), 2)
        # The second fill stored its object; the purged one stored nothing over it.
        self.assertTrue(self.get(path).is_hit())
        self.assertEqual(self.origin.count("/gen/3145728/purge-inflight"), 2)

    def test_purged_fill_alone_stores_nothing(self):
        size = 2 * MiB
        path = f"/gen/{size}/purge-alone?rate={MiB}"
        key = f"http://swcdn.apple.com{path}"
        results = {}
        t = threading.Thread(target=lambda: results.setdefault("r", self.get(path)))
        t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(f["url"] == key and f["received"] > 0 for f in self.status()["Fills"]):
                break
            time.sleep(0.05)
        self.assertEqual(self.purge({"url": key})["fills"], 1)
        t.join(30)
        r = results["r"]
        self.assertEqual((r.status, r.complete, r.length), (200, True, size), r)
        time.sleep(0.3)  # a commit (which must not happen) would land by now
        r = self.get(path)
        self.assertFalse(r.is_hit(), r.cache_status)
        self.assertEqual(self.origin.count("/gen/2097152/purge-alone"), 2)

    @staticmethod
    def _sha(path, size):
        from origin import expected_sha256
        name = path.split("/")[3].split("?")[0]
        return expected_sha256(name, size)


class ReloadTest(OpsCase):

    def write_config(self, extra_server="", extra=""):
        with open(self.original) as f:
            text = f.read()
        text = text.replace("[server]\n", "[server]\n" + extra_server, 1) + extra
        with open(self.box.config_path, "w") as f:
            f.write(text)

    def setUp(self):
        super().setUp()
        self.original = os.path.join(self.tmp, "config.orig.toml")
        if not os.path.exists(self.original):
            with open(self.box.config_path) as f, open(self.original, "w") as o:
                o.write(f.read())
        self.addCleanup(self.restore)

    def restore(self):
        with open(self.original) as f, open(self.box.config_path, "w") as o:
            o.write(f.read())

    def test_valid_reload_applies(self):
        gen = self.status()["ConfigGeneration"]
        self.write_config('idle_timeout = "7s"\n')
        code, j = self.api("POST", "/api/v1/reload")
        self.assertEqual(code, 200, j)
        self.assertEqual(j["applied"], True)
        self.assertEqual(j["generation"], gen + 1)
        self.assertIn("server.idle_timeout", j["changed"])
        self.assertEqual(j["restart_required"], [])
        self.assertEqual(self.status()["ConfigGeneration"], gen + 1)
        # A restart-only key is named, and keeps its running value.
        self.write_config('idle_timeout = "7s"\nworkers = 3\n')
        code, j = self.api("POST", "/api/v1/reload")
        self.assertEqual(code, 200, j)
        self.assertEqual(j["restart_required"], ["server.workers"])
        self.assertIn("reload: server.workers changed: needs a restart", self.box.stderr_text())

    def test_invalid_file_is_refused_and_nothing_changes(self):
        gen = self.status()["ConfigGeneration"]
        self.write_config('idle_timeout = "soon"\nfrobnicate = 1\n')
        code, j = self.api("POST", "/api/v1/reload")
        self.assertEqual(code, 422, j)
        self.assertEqual(j["applied"], False)
        self.assertEqual(j["generation"], gen)
        self.assertTrue(j["error"] and j["detail"])
        keys = {p["key"]: p for p in j["problems"]}
        self.assertIn("server.idle_timeout", keys)
        self.assertIn("server.frobnicate", keys)
        with open(self.box.config_path) as f:
            text = f.read().splitlines()
        for k, p in keys.items():
            self.assertTrue(p["message"])
            self.assertIsInstance(p["line"], int)
            self.assertIn(k.split(".")[1], text[p["line"] - 1], p)
        self.assertEqual(self.status()["ConfigGeneration"], gen)
        # A TOML syntax error has a line and no key.
        self.write_config("", "[broken\n")
        code, j = self.api("POST", "/api/v1/reload")
        self.assertEqual(code, 422, j)
        self.assertIsInstance(j["problems"][0]["line"], int)
        self.assertEqual(self.status()["ConfigGeneration"], gen)
        # The box still serves on its running config.
        self.assertEqual(self.get("/gen/4K/after-refused-reload").status, 200)

    def test_reload_needs_a_token(self):
        code, j = self.api("POST", "/api/v1/reload", token=None)
        self.assertEqual(code, 401, j)


if __name__ == "__main__":
    unittest.main()
