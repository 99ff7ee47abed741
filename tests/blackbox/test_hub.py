"""Publish once at a hub (issue 15): a hub orchardd and a branch orchardd on
loopback ports, the branch following the hub's catalog (catalog.follow)
through a small TCP relay the test can hold, so the time a package's bytes
are on the "WAN" is observable.

Checked from outside:
  - a version published at the hub shows at the branch (package list,
    manifest, /pkgs) only once its bytes are there; until then GET
    /api/v1/catalog/sync lists it as waiting; the bytes the branch serves
    are byte-exact;
  - catalog writes at the branch get 409 naming the hub; device records
    are still accepted;
  - the hub down: the branch keeps serving its catalog and its packages,
    sync shows the error; the hub back: the branch catches up;
  - the branch kill -9'd while it applies a backlog and started again: every
    change of the hub is applied exactly once (the branch's audit log has
    one "replicate" entry per hub change, none missing, none twice) and the
    records equal the hub's;
  - the hub lists the branch's site report (GET /api/v1/sites).
The branch's upstream.allow does not name the hub: the follow host is an
upstream implicitly. Bounded: the whole file well under two minutes.
"""

import hashlib
import os
import socket
import threading
import time
import unittest

import subprocess

from harness import Orchard, make_tempdir, orchardctl_path, remove_tempdir, request, wait_for
from origin import Origin
from upload import api, pattern_piece, pattern_sha256, put_stream

HUB_TOKEN = "hub-token-7c1e"
BRANCH_TOKEN = "branch-token-2b9d"
HUB_NAME = "hub.test"
SIZE = 3 << 20


class Relay:
    """A TCP relay 127.0.0.1:port -> 127.0.0.1:target. While `hold` is set,
    hub-to-branch bytes past the first 64 KiB of a connection wait (the feed's
    small answers pass, a package's bytes do not)."""

    def __init__(self, target):
        self.target = target
        self.hold = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        self.held_bytes = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                c.close()
                continue
            threading.Thread(target=self._pump, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, True), daemon=True).start()

    def _pump(self, src, dst, downstream):
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if downstream and sent > 65536:
                    while self.hold.is_set() and not self.closed:
                        self.held_bytes = sent
                        time.sleep(0.05)
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self):
        self.closed = True
        self.sock.close()


class HubBranchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        # The hub: its own upstream.allow does not hold its name, so a
        # branch's request with Host hub.test is for the hub itself.
        os.makedirs(os.path.join(cls.tmp, "hub"))
        cls.hub = Orchard(cls.origin.port, workdir=os.path.join(cls.tmp, "hub"), allow=["swcdn.apple.com"],
                          extra_toml=f'\n[admin]\ntoken = "{HUB_TOKEN}"\n\n[catalog]\nlimit = "1GiB"\n')
        cls.addClassCleanup(cls.hub.kill9)
        cls.hub.start()
        cls.hub_port = cls.hub.port
        cls.relay = Relay(cls.hub_port)
        cls.addClassCleanup(cls.relay.close)
        bdir = os.path.join(cls.tmp, "branch")
        os.makedirs(bdir, exist_ok=True)
        cls.branch = Orchard(
            cls.origin.port, workdir=bdir, allow=["swcdn.apple.com"],
            resolve={HUB_NAME: f"127.0.0.1:{cls.relay.port}"},
            extra_toml=(f'\n[admin]\ntoken = "{BRANCH_TOKEN}"\n\n[catalog]\nlimit = "1GiB"\n'
                        f'follow = "http://{HUB_NAME}:{cls.relay.port}"\nfollow_token = "{HUB_TOKEN}"\n'
                        'follow_poll = "2s"\nsite = "branch-a"\n'))
        cls.addClassCleanup(cls.branch.kill9)
        cls.branch.start()

    # ---- helpers

    def hub_call(self, method, path, body=None):
        return api(self.hub.port, method, path, token=HUB_TOKEN, body=body)

    def branch_call(self, method, path, body=None):
        return api(self.branch.port, method, path, token=BRANCH_TOKEN, body=body)

    def publish_at_hub(self, name, version, seed, size=SIZE):
        h = {"Authorization": f"Bearer {HUB_TOKEN}", "X-Checksum-Sha256": pattern_sha256(seed, size)}
        st, _, body, _ = put_stream(self.hub.port, f"/api/v1/packages/{name}/{version}/{name}-{version}.dmg?bundle_id=org.example.{name}",
                                    size, pattern_piece(seed), headers=h)
        self.assertIn(st, (200, 201), body)
        return body

    def sync(self):
        st, _, body = self.branch_call("GET", "/api/v1/catalog/sync")
        self.assertEqual(st, 200, body)
        return body

    def hub_last(self):
        st, _, body = self.hub_call("GET", "/api/v1/catalog/sync")
        self.assertEqual(st, 200, body)
        return body["last_change"]

    def caught_up(self):
        last = self.hub_last()
        s = self.sync()
        return s if s["applied"] == last and s["hub_last"] == last else None

    def branch_versions(self, name):
        st, _, body = self.branch_call("GET", f"/api/v1/packages/{name}")
        if st == 404:
            return []
        self.assertEqual(st, 200, body)
        return [v["version"] for v in body["versions"]]

    def replicate_entries(self):
        out, after = [], 0
        while True:
            st, _, body = self.branch_call("GET", f"/api/v1/audit?after={after}&limit=1000")
            self.assertEqual(st, 200, body)
            out += [e for e in body["entries"] if e["action"] == "replicate"]
            if body["next"] is None:
                return out
            after = body["next"]

    # ---- the tests (run in name order: each builds on the last)

    def test_1_version_visible_only_with_its_bytes(self):
        self.relay.hold.set()
        try:
            self.publish_at_hub("tool", "1.0", seed="tool-1.0")
            # The record arrives (the feed's answers are small), the bytes are held.
            s = wait_for("the branch to apply the publish",
                         lambda: (lambda s: s if any(w["name"] == "tool" for w in s["waiting"]) else None)(self.sync()))
            w = [w for w in s["waiting"] if w["name"] == "tool"][0]
            self.assertEqual((w["version"], w["size"]), ("1.0", SIZE))
            self.assertLess(w["bytes_held"], SIZE)
            self.assertEqual(s["following"], True)
            self.assertEqual(s["hub"], f"http://{HUB_NAME}:{self.relay.port}")
            time.sleep(0.5)
            # Not visible anywhere a Mac or an MDM looks.
            self.assertEqual(self.branch_versions("tool"), [])
            st, _, body = self.branch_call("GET", "/api/v1/packages")
            self.assertNotIn("tool", [p["name"] for p in body["packages"]])
            r = request(self.branch.port, "GET", "/manifests/tool/1.0.plist", headers={"Host": self.branch.host})
            self.assertEqual(r.status, 404)
            r = request(self.branch.port, "GET", "/pkgs/tool/1.0/tool-1.0.dmg", headers={"Host": self.branch.host})
            self.assertEqual(r.status, 404)
            self.assertIn("catalog_follow_waiting_versions 1",
                          request(self.branch.port, "GET", "/metrics",
                                  headers={"Host": self.branch.host}).body.decode())
        finally:
            self.relay.hold.clear()
        wait_for("the bytes to arrive", lambda: self.branch_versions("tool") == ["1.0"], timeout=30)
        self.assertEqual(self.sync()["waiting"], [])
        r = request(self.branch.port, "GET", "/pkgs/tool/1.0/tool-1.0.dmg", headers={"Host": self.branch.host},
                    keep_body=False)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.length, SIZE)
        self.assertEqual(r.sha256, pattern_sha256("tool-1.0", SIZE))
        r = request(self.branch.port, "GET", "/manifests/tool/1.0.plist", headers={"Host": self.branch.host})
        self.assertEqual(r.status, 200)
        # The hub's record as it is (same sha256, same publish time).
        _, _, hub_pkg = self.hub_call("GET", "/api/v1/packages/tool")
        _, _, br_pkg = self.branch_call("GET", "/api/v1/packages/tool")
        self.assertEqual(hub_pkg["versions"][0]["sha256"], br_pkg["versions"][0]["sha256"])
        self.assertEqual(hub_pkg["versions"][0]["published"], br_pkg["versions"][0]["published"])

    def test_2_branch_is_read_only_for_the_catalog(self):
        hub = f"http://{HUB_NAME}:{self.relay.port}"
        h = {"Authorization": f"Bearer {BRANCH_TOKEN}"}
        st, _, body, _ = put_stream(self.branch.port, "/api/v1/packages/local/1.0/local.dmg?bundle_id=o.l", 1024,
                                    pattern_piece("x"), headers=h)
        self.assertEqual(st, 409, body)
        self.assertIn(hub, body["detail"])
        for method, path, payload in [
                ("PUT", "/api/v1/rings", {"rings": [{"name": "all"}]}),
                ("DELETE", "/api/v1/packages/tool/1.0", None),
                ("PATCH", "/api/v1/packages/tool/1.0", {"title": "x"}),
                ("PUT", "/api/v1/packages/tool/1.0/targeting", {}),
                ("POST", "/api/v1/packages/tool/1.0/rollout/pause", {}),
                ("PUT", "/api/v1/pins/tool", {"version": "1.0"}),
                ("PUT", "/api/v1/rings/tool", {"release": "manual"}),
                ("POST", "/api/v1/packages/tool/2.0/from-url", {"url": "http://swcdn.apple.com/a.pkg"})]:
            st, _, body = self.branch_call(method, path, payload)
            self.assertEqual(st, 409, (method, path, body))
            self.assertIn(hub, body["detail"])
        # Without a token: 401 still (the 409 says nothing to strangers).
        st, _, _ = api(self.branch.port, "PUT", "/api/v1/rings", body={"rings": []})
        self.assertEqual(st, 401)
        # Devices stay where the MDM sends them.
        st, _, body = self.branch_call("PUT", "/api/v1/devices/C02BRANCH1", {"groups": ["staff"]})
        self.assertIn(st, (200, 201), body)
        st, _, body = self.hub_call("GET", "/api/v1/devices/C02BRANCH1")
        self.assertEqual(st, 404)

    def test_3_hub_down_then_back(self):
        self.hub.stop()
        try:
            wait_for("the branch to notice", lambda: self.sync().get("last_error"), timeout=30)
            # The branch keeps serving what it has.
            r = request(self.branch.port, "GET", "/pkgs/tool/1.0/tool-1.0.dmg", headers={"Host": self.branch.host},
                        keep_body=False)
            self.assertEqual((r.status, r.sha256), (200, pattern_sha256("tool-1.0", SIZE)))
            self.assertEqual(self.branch_versions("tool"), ["1.0"])
            r = request(self.branch.port, "GET", "/manifests/tool/1.0.plist", headers={"Host": self.branch.host})
            self.assertEqual(r.status, 200)
        finally:
            self.hub.start()
        self.publish_at_hub("tool", "2.0", seed="tool-2.0", size=1 << 20)
        st, _, body = self.hub_call("PUT", "/api/v1/pins/tool", {"version": "1.0", "groups": ["lab"]})
        self.assertEqual(st, 200, body)
        wait_for("the branch to catch up after the hub's restart",
                 lambda: self.caught_up() and self.branch_versions("tool") == ["2.0", "1.0"], timeout=40)
        st, _, pin = self.branch_call("GET", "/api/v1/pins/tool")
        self.assertEqual(st, 200, pin)
        self.assertEqual(pin["version"], "1.0")
        self.assertIsNone(self.sync()["last_error"])

    def test_4_kill9_mid_sync_loses_and_repeats_nothing(self):
        wait_for("caught up", self.caught_up, timeout=30)
        self.branch.kill9()
        # A backlog: pins and targeting at the hub while the branch is down.
        for i in range(150):
            st, _, body = self.hub_call("PUT", f"/api/v1/rings/pkg{i % 7}", {"promote_after_days": i})
            self.assertEqual(st, 200, body)
        st, _, body = self.hub_call("DELETE", "/api/v1/packages/tool/2.0")
        self.assertEqual(st, 200, body)
        last = self.hub_last()
        self.branch.start()
        # Kill it again while it works through the backlog (if it is not done already).
        mid = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            s = self.sync()
            if s["applied"] < last:
                if s["applied"] > 0:
                    mid = s["applied"]
                    self.branch.kill9()
                    break
            else:
                break
        if not self.branch.alive():
            self.branch.start()
        s = wait_for("the branch to catch up after kill -9", self.caught_up, timeout=40)
        self.assertEqual(s["applied"], last)
        entries = self.replicate_entries()
        seqs = [int(e["object"].split("/")[1]) for e in entries]
        self.assertEqual(len(seqs), len(set(seqs)), "a change applied twice")
        self.assertEqual(sorted(seqs), list(range(1, last + 1)), "a change missing")
        # The records are the hub's.
        for p in range(7):
            _, _, hp = self.hub_call("GET", f"/api/v1/rings/pkg{p}")
            _, _, bp = self.branch_call("GET", f"/api/v1/rings/pkg{p}")
            self.assertEqual(hp, bp)
            self.assertEqual(bp["policy"]["promote_after_days"], max(i for i in range(150) if i % 7 == p))
        wait_for("the delete to reach the branch", lambda: self.branch_versions("tool") == ["1.0"])
        r = request(self.branch.port, "GET", "/pkgs/tool/2.0/tool-2.0.dmg", headers={"Host": self.branch.host})
        self.assertEqual(r.status, 404)
        print(f"\n  kill -9 at applied={mid} of {last}", flush=True)

    def test_5_sites_at_the_hub(self):
        def report():
            st, _, body = self.hub_call("GET", "/api/v1/sites")
            self.assertEqual(st, 200, body)
            sites = {s["site"]: s for s in body["sites"]}
            a = sites.get("branch-a")
            return body if a and a["applied"] == self.hub_last() else None
        body = wait_for("the branch's site report", report, timeout=30)
        site = [s for s in body["sites"] if s["site"] == "branch-a"][0]
        self.assertEqual(site["waiting"], 0)
        tool = [v for v in site["versions"] if (v["name"], v["version"]) == ("tool", "1.0")]
        self.assertEqual(len(tool), 1)
        self.assertGreaterEqual(tool[0]["downloads"], 2)  # the two whole downloads at the branch above
        total = [t for t in body["totals"] if (t["name"], t["version"]) == ("tool", "1.0")][0]
        self.assertGreaterEqual(total["downloads"], tool[0]["downloads"])
        self.assertEqual(total["boxes"], 2)  # the branch and the hub itself

    def test_6_changes_feed_contract(self):
        last = self.hub_last()
        st, h, body = self.hub_call("GET", f"/api/v1/catalog/changes?since={last - 2}&limit=1")
        self.assertEqual(st, 200, body)
        self.assertEqual(len(body["changes"]), 1)
        self.assertEqual(body["changes"][0]["seq"], last - 1)
        self.assertEqual(body["more"], True)
        self.assertEqual(h["etag"], f'"changes-{last}"')
        # Nothing new: a long poll waits, then 304 with the ETag.
        t0 = time.monotonic()
        st, h, _ = api(self.hub.port, "GET", f"/api/v1/catalog/changes?since={last}&wait=1", token=HUB_TOKEN,
                       headers={"If-None-Match": f'"changes-{last}"'})
        self.assertEqual(st, 304)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        # A change during the wait ends it at once.
        result = {}
        def poll():
            t = time.monotonic()
            result["r"] = api(self.hub.port, "GET", f"/api/v1/catalog/changes?since={last}&wait=20", token=HUB_TOKEN)
            result["t"] = time.monotonic() - t
        th = threading.Thread(target=poll)
        th.start()
        time.sleep(0.3)
        st, _, _ = self.hub_call("PUT", "/api/v1/rings/wake", {"promote_after_days": 1})
        self.assertEqual(st, 200)
        th.join(10)
        st, _, body = result["r"]
        self.assertEqual(st, 200)
        self.assertEqual([c["seq"] for c in body["changes"]], [last + 1])
        self.assertLess(result["t"], 5)
        st, _, _ = self.hub_call("GET", "/api/v1/catalog/changes?limit=5000")
        self.assertEqual(st, 400)
        st, _, _ = api(self.hub.port, "GET", "/api/v1/catalog/changes")
        self.assertEqual(st, 401)

    def test_7_orchardctl_sync_and_sites(self):
        ctl = orchardctl_path()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHARD_")}

        def run(port, token, *args):
            p = subprocess.run([ctl, "--url", f"http://127.0.0.1:{port}", "--token", token, *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=30,
                               stdin=subprocess.DEVNULL)
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout
        out = run(self.branch.port, BRANCH_TOKEN, "sync")
        self.assertIn(f"http://{HUB_NAME}:{self.relay.port}", out)
        self.assertIn("no versions waiting for their bytes", out)
        out = run(self.hub.port, HUB_TOKEN, "sync")
        self.assertIn("not following a hub", out)
        out = run(self.hub.port, HUB_TOKEN, "sites")
        self.assertIn("branch-a", out)
        self.assertIn("tool", out)


class FollowTokenScopeTest(unittest.TestCase):
    """The hub's token decides what a branch may do there: a read token
    follows the feed but the hub refuses its site reports (PUT
    /api/v1/sites takes mdm), which the branch says in its log; an mdm
    token follows and reports."""

    READ = "hub-read-token-93f0a1"
    MDM = "hub-mdm-token-4d2e7b"

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        os.makedirs(os.path.join(cls.tmp, "hub"))
        cls.hub = Orchard(cls.origin.port, workdir=os.path.join(cls.tmp, "hub"), allow=["swcdn.apple.com"],
                          extra_toml=(f'\n[admin]\ntoken = "{HUB_TOKEN}"\n'
                                      f'\n[[admin.tokens]]\nname = "branch-read"\ntoken = "{cls.READ}"\nscope = "read"\n'
                                      f'\n[[admin.tokens]]\nname = "branch-mdm"\ntoken = "{cls.MDM}"\nscope = "mdm"\n'
                                      '\n[catalog]\nlimit = "1GiB"\n'))
        cls.addClassCleanup(cls.hub.kill9)
        cls.hub.start()
        st, _, body = api(cls.hub.port, "PUT", "/api/v1/rings/scoped", token=HUB_TOKEN, body={"promote_after_days": 3})
        assert st == 200, body
        cls.branches = {}
        for site, token in (("reader", cls.READ), ("reporter", cls.MDM)):
            d = os.path.join(cls.tmp, site)
            os.makedirs(d)
            b = Orchard(cls.origin.port, workdir=d, allow=["swcdn.apple.com"],
                        resolve={HUB_NAME: f"127.0.0.1:{cls.hub.port}"},
                        extra_toml=(f'\n[admin]\ntoken = "{BRANCH_TOKEN}"\n\n[catalog]\nlimit = "1GiB"\n'
                                    f'follow = "http://{HUB_NAME}:{cls.hub.port}"\nfollow_token = "{token}"\n'
                                    f'follow_poll = "2s"\nsite = "{site}"\n'))
            cls.addClassCleanup(b.kill9)
            b.start()
            cls.branches[site] = b

    def test_read_token_follows_without_reporting_and_mdm_token_reports(self):
        st, _, hub = api(self.hub.port, "GET", "/api/v1/catalog/sync", token=HUB_TOKEN)
        self.assertEqual(st, 200, hub)
        last = hub["last_change"]
        for site, b in self.branches.items():
            def applied():
                st, _, s = api(b.port, "GET", "/api/v1/catalog/sync", token=BRANCH_TOKEN)
                self.assertEqual(st, 200, s)
                return s if s["applied"] == last else None
            wait_for(f"{site} to follow the hub", applied, timeout=30)
            st, _, ring = api(b.port, "GET", "/api/v1/rings/scoped", token=BRANCH_TOKEN)
            self.assertEqual(st, 200, ring)
            self.assertEqual(ring["policy"]["promote_after_days"], 3)

        def sites():
            st, _, body = api(self.hub.port, "GET", "/api/v1/sites", token=HUB_TOKEN)
            self.assertEqual(st, 200, body)
            return {s["site"] for s in body["sites"]}
        wait_for("the mdm branch's site report", lambda: "reporter" in sites(), timeout=30)

        def refused():
            with open(self.branches["reader"].stderr_path, errors="replace") as f:
                return [line for line in f if "site report" in line and "403" in line]
        lines = wait_for("the read branch to log the refused site report", refused, timeout=30)
        self.assertIn("mdm", lines[0])
        self.assertNotIn("reader", sites())
        # Said once, not at every poll.
        time.sleep(6)
        self.assertEqual(len(refused()), 1, refused())
        self.assertNotIn("reader", sites())


if __name__ == "__main__":
    unittest.main()
