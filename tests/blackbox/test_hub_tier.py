"""A tier of followers (issue 15), checked from outside: hub -> region -> branch.

The region follows the hub and the branch follows the region, each over
plain HTTP by address, each with the token of the box it follows:
  - a package published at the hub becomes visible at the region once the
    region holds its bytes, and at the branch only after that (the region's
    own feed carries a version only once it is visible there), with the
    bytes at the branch byte-exact;
  - the branch's sync names the region as its hub and has applied the
    region's last change; the region's names the hub;
  - catalog writes at the region and at the branch get 409, each naming the
    box it follows;
  - a delete at the hub disappears at both;
  - the region down: a version published at the hub meanwhile does not
    reach the branch (it knows only the region), whose sync says why; the
    region back: both get it, the branch's bytes byte-exact.
Bounded: well under a minute.
"""

import os
import unittest

from harness import Orchard, make_tempdir, remove_tempdir, request, wait_for
from origin import Origin
from upload import api, pattern_piece, pattern_sha256, put_stream

HUB_TOKEN = "tier-hub-token-7e21"
REGION_TOKEN = "tier-region-token-3b90"
BRANCH_TOKEN = "tier-branch-token-c455"
SIZE = 1 << 20


class TierTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)

        def box(name, token, follow=None, follow_token=None):
            d = os.path.join(cls.tmp, name)
            os.makedirs(d)
            toml = f'\n[admin]\ntoken = "{token}"\n\n[catalog]\nlimit = "1GiB"\nsite = "{name}"\n'
            if follow:
                toml += f'follow = "{follow}"\nfollow_token = "{follow_token}"\nfollow_poll = "2s"\n'
            # upstream.allow without 127.0.0.1: a request for the box's own
            # address is for the box itself (its /pkgs/), not a proxied origin.
            b = Orchard(cls.origin.port, workdir=d, allow=["swcdn.apple.com"],
                        sections={"upstream": 'connect_timeout = "2s"'}, extra_toml=toml)
            cls.addClassCleanup(b.kill9)
            b.start()
            return b
        cls.hub = box("hub", HUB_TOKEN)
        cls.hub_url = f"http://127.0.0.1:{cls.hub.port}"
        cls.region = box("region", REGION_TOKEN, cls.hub_url, HUB_TOKEN)
        cls.region_url = f"http://127.0.0.1:{cls.region.port}"
        cls.branch = box("branch", BRANCH_TOKEN, cls.region_url, REGION_TOKEN)
        cls.tokens = {id(cls.hub): HUB_TOKEN, id(cls.region): REGION_TOKEN, id(cls.branch): BRANCH_TOKEN}

    def call(self, b, method, path, body=None):
        return api(b.port, method, path, token=self.tokens[id(b)], body=body)

    def sync(self, b):
        st, _, body = self.call(b, "GET", "/api/v1/catalog/sync")
        self.assertEqual(st, 200, body)
        return body

    def versions(self, b, name):
        st, _, body = self.call(b, "GET", f"/api/v1/packages/{name}")
        if st == 404:
            return []
        self.assertEqual(st, 200, body)
        return [v["version"] for v in body["versions"]]

    def caught_up(self, b, upper):
        last = self.sync(upper)["last_change"]
        s = self.sync(b)
        return s if s["applied"] == last and not s["waiting"] else None

    def test_1_publish_at_the_hub_reaches_the_branch_through_the_region(self):
        seed = "tier-tool-1.0"
        h = {"Authorization": f"Bearer {HUB_TOKEN}", "X-Checksum-Sha256": pattern_sha256(seed, SIZE)}
        st, _, body, _ = put_stream(self.hub.port, "/api/v1/packages/tiertool/1.0/tiertool-1.0.dmg?bundle_id=o.e.tier",
                                    SIZE, pattern_piece(seed), headers=h)
        self.assertIn(st, (200, 201), body)

        wait_for("the region to list the version", lambda: self.versions(self.region, "tiertool") == ["1.0"],
                 timeout=30)
        wait_for("the branch to list the version", lambda: self.versions(self.branch, "tiertool") == ["1.0"],
                 timeout=30)
        # Visible at the branch means its bytes are there, whole.
        r = request(self.branch.port, "GET", "/pkgs/tiertool/1.0/tiertool-1.0.dmg", headers={"Host": self.branch.host},
                    keep_body=False)
        self.assertEqual((r.status, r.length, r.sha256), (200, SIZE, pattern_sha256(seed, SIZE)))
        # The region got them from the hub, the branch from the region.
        r = request(self.region.port, "GET", "/pkgs/tiertool/1.0/tiertool-1.0.dmg", headers={"Host": self.region.host},
                    keep_body=False)
        self.assertEqual((r.status, r.sha256), (200, pattern_sha256(seed, SIZE)))

        s = wait_for("the region to catch up with the hub", lambda: self.caught_up(self.region, self.hub), timeout=30)
        self.assertEqual((s["following"], s["hub"]), (True, self.hub_url), s)
        self.assertIsNone(s["last_error"], s)
        s = wait_for("the branch to catch up with the region", lambda: self.caught_up(self.branch, self.region),
                     timeout=30)
        self.assertEqual((s["following"], s["hub"]), (True, self.region_url), s)
        self.assertIsNone(s["last_error"], s)

    def test_2_writes_below_the_hub_get_409(self):
        for b, upper in ((self.region, self.hub_url), (self.branch, self.region_url)):
            st, _, body = self.call(b, "PUT", "/api/v1/rings", {"rings": [{"name": "all"}]})
            self.assertEqual(st, 409, body)
            self.assertIn(upper, body["detail"])
            st, _, body = self.call(b, "DELETE", "/api/v1/packages/tiertool/1.0")
            self.assertEqual(st, 409, body)
        self.assertEqual(self.versions(self.branch, "tiertool"), ["1.0"])

    def test_3_a_delete_at_the_hub_reaches_both(self):
        st, _, body = self.call(self.hub, "DELETE", "/api/v1/packages/tiertool/1.0")
        self.assertEqual(st, 200, body)
        wait_for("the region to drop the version", lambda: self.versions(self.region, "tiertool") == [], timeout=30)
        wait_for("the branch to drop the version", lambda: self.versions(self.branch, "tiertool") == [], timeout=30)
        r = request(self.branch.port, "GET", "/pkgs/tiertool/1.0/tiertool-1.0.dmg", headers={"Host": self.branch.host})
        self.assertEqual(r.status, 404)
        wait_for("the branch to catch up with the region", lambda: self.caught_up(self.branch, self.region),
                 timeout=30)

    def test_4_the_region_down_then_back(self):
        seed = "tier-tool-2.0"
        self.region.stop()
        try:
            h = {"Authorization": f"Bearer {HUB_TOKEN}", "X-Checksum-Sha256": pattern_sha256(seed, SIZE)}
            st, _, body, _ = put_stream(self.hub.port, "/api/v1/packages/tiertool/2.0/tiertool-2.0.dmg?bundle_id=o.e.tier",
                                        SIZE, pattern_piece(seed), headers=h)
            self.assertIn(st, (200, 201), body)
            s = wait_for("the branch to notice the region is gone",
                         lambda: (lambda s: s if s["last_error"] else None)(self.sync(self.branch)), timeout=30)
            self.assertEqual(s["hub"], self.region_url, s)
            self.assertEqual(self.versions(self.branch, "tiertool"), [])
        finally:
            self.region.start()
        wait_for("the region to list 2.0", lambda: self.versions(self.region, "tiertool") == ["2.0"], timeout=30)
        wait_for("the branch to list 2.0", lambda: self.versions(self.branch, "tiertool") == ["2.0"], timeout=30)
        r = request(self.branch.port, "GET", "/pkgs/tiertool/2.0/tiertool-2.0.dmg", headers={"Host": self.branch.host},
                    keep_body=False)
        self.assertEqual((r.status, r.length, r.sha256), (200, SIZE, pattern_sha256(seed, SIZE)))
        s = wait_for("the branch to catch up with the region", lambda: self.caught_up(self.branch, self.region),
                     timeout=30)
        self.assertIsNone(s["last_error"], s)


if __name__ == "__main__":
    unittest.main()
