"""A branch follows its hub over HTTPS (issue 15), checked from outside.

The hub listens for TLS with the CA it makes itself (tls.listen, no
certificate); its catalog.base_url names hub.test, so its leaf does too,
beside its listen address 127.0.0.1. Three branches follow it:
  - `trusting`, https://hub.test:TLSPORT (upstream.resolve points the name
    at the hub's TLS listener), with the hub's CA in upstream.ca_file: it
    applies the hub's changes, fetches a published package's bytes over
    TLS through its own cache, and then (only then) lists and serves the
    version byte-exact; its site report reaches the hub;
  - `by-address`, https://127.0.0.1:TLSPORT with the CA and nothing else:
    the hub named in catalog.follow is dialled although its address is
    loopback (as a hub on the company network is, without
    upstream.allow_private), so it gets the version too; a client's
    ?source=127.0.0.1:<the hub's other port> there is still refused (502);
  - `stranger`, like `trusting` without the CA: it applies nothing, says
    why in GET /api/v1/catalog/sync (last_error names the certificate), and
    lists and serves nothing of the hub's.
Bounded: the whole file well under a minute.
"""

import os
import time
import unittest

from harness import Orchard, free_port, make_tempdir, remove_tempdir, request, wait_for
from origin import Origin
from upload import api, pattern_piece, pattern_sha256, put_stream

HUB_TOKEN = "hub-tls-token-51ae"
BRANCH_TOKEN = "branch-tls-token-0c7f"
SIZE = 1 << 20
HUB_NAME = "hub.test"


class HubOverHttpsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        cls.tls_port = free_port()
        hdir = os.path.join(cls.tmp, "hub")
        os.makedirs(hdir)
        cls.hub = Orchard(cls.origin.port, workdir=hdir, allow=["swcdn.apple.com"],
                          extra_toml=(f'\n[admin]\ntoken = "{HUB_TOKEN}"\n\n[catalog]\nlimit = "1GiB"\n'
                                      f'base_url = "https://{HUB_NAME}:{cls.tls_port}"\n'
                                      f'\n[tls]\nlisten = ["127.0.0.1:{cls.tls_port}"]\n'))
        cls.addClassCleanup(cls.hub.kill9)
        cls.hub.start()  # makes its CA, which the trusting branch's config names
        cls.hub_url = f"https://{HUB_NAME}:{cls.tls_port}"
        ca = os.path.join(cls.hub.state_dir, "tls", "ca.pem")
        assert os.path.exists(ca), ca

        def branch(name, upstream, url, resolve):
            d = os.path.join(cls.tmp, name)
            os.makedirs(d)
            b = Orchard(cls.origin.port, workdir=d, allow=["swcdn.apple.com"], sections={"upstream": upstream},
                        resolve=resolve,
                        extra_toml=(f'\n[admin]\ntoken = "{BRANCH_TOKEN}"\n\n[catalog]\nlimit = "1GiB"\n'
                                    f'follow = "{url}"\nfollow_token = "{HUB_TOKEN}"\n'
                                    f'follow_poll = "2s"\nsite = "{name}"\n'))
            cls.addClassCleanup(b.kill9)
            b.start()
            return b
        named = {HUB_NAME: f"127.0.0.1:{cls.tls_port}"}
        cls.addr_url = f"https://127.0.0.1:{cls.tls_port}"
        cls.trusting = branch("trusting", f'ca_file = "{ca}"\nconnect_timeout = "2s"', cls.hub_url, named)
        cls.by_address = branch("by-address", f'ca_file = "{ca}"\nconnect_timeout = "2s"', cls.addr_url, None)
        cls.stranger = branch("stranger", 'connect_timeout = "2s"', cls.hub_url, named)

    def call(self, box, token, method, path, body=None):
        st, _, out = api(box.port, method, path, token=token, body=body)
        return st, out

    def sync(self, box):
        st, body = self.call(box, BRANCH_TOKEN, "GET", "/api/v1/catalog/sync")
        self.assertEqual(st, 200, body)
        return body

    def versions(self, box, name):
        st, body = self.call(box, BRANCH_TOKEN, "GET", f"/api/v1/packages/{name}")
        if st == 404:
            return []
        self.assertEqual(st, 200, body)
        return [v["version"] for v in body["versions"]]

    def test_follow_over_verified_https_and_refuse_an_unverified_hub(self):
        seed = "tls-tool-1.0"
        h = {"Authorization": f"Bearer {HUB_TOKEN}", "X-Checksum-Sha256": pattern_sha256(seed, SIZE)}
        st, _, body, _ = put_stream(self.hub.port, "/api/v1/packages/tlstool/1.0/tlstool-1.0.dmg?bundle_id=o.e.t",
                                    SIZE, pattern_piece(seed), headers=h)
        self.assertIn(st, (200, 201), body)
        st, hub_sync = self.call(self.hub, HUB_TOKEN, "GET", "/api/v1/catalog/sync")
        self.assertEqual(st, 200, hub_sync)
        last = hub_sync["last_change"]
        self.assertGreater(last, 0)

        # The trusting branches: the change, then the bytes over TLS, then the version.
        for b, url in ((self.trusting, self.hub_url), (self.by_address, self.addr_url)):
            wait_for(f"{b.workdir} to list the version", lambda: self.versions(b, "tlstool") == ["1.0"], timeout=30)
            s = self.sync(b)
            self.assertEqual((s["following"], s["hub"], s["applied"], s["waiting"]), (True, url, last, []), s)
            self.assertIsNone(s["last_error"], s)
            r = request(b.port, "GET", "/pkgs/tlstool/1.0/tlstool-1.0.dmg", headers={"Host": b.host}, keep_body=False)
            self.assertEqual((r.status, r.length, r.sha256), (200, SIZE, pattern_sha256(seed, SIZE)))

        def reported():
            st, body = self.call(self.hub, HUB_TOKEN, "GET", "/api/v1/sites")
            self.assertEqual(st, 200, body)
            names = {x["site"] for x in body["sites"]}
            return names if {"trusting", "by-address"} <= names else None
        wait_for("both trusting branches' site reports over TLS", reported, timeout=30)

        # Only the hub's own port is let past the address check: another
        # port of the same address is an origin like any other (loopback: 502).
        r = request(self.by_address.port, "GET", f"/other.bin?source=127.0.0.1:{self.hub.port}",
                    headers={"Host": self.by_address.host})
        self.assertEqual(r.status, 502, r.body[:300])
        self.assertIn(b"loopback", r.body)

        # The stranger: no CA for the hub, so nothing of the hub's, and it says why.
        s = wait_for("the stranger to say why it cannot follow", lambda: (lambda s: s if s["last_error"] else None)(
            self.sync(self.stranger)), timeout=30)
        self.assertEqual(s["applied"], 0, s)
        self.assertRegex(s["last_error"].lower(), "certificate|ssl|tls", s)
        print(f"\n  the stranger says: {s['last_error']}", flush=True)
        self.assertEqual(self.versions(self.stranger, "tlstool"), [])
        st, body = self.call(self.stranger, BRANCH_TOKEN, "GET", "/api/v1/packages")
        self.assertEqual(st, 200, body)
        self.assertNotIn("tlstool", [p["name"] for p in body["packages"]])
        r = request(self.stranger.port, "GET", "/pkgs/tlstool/1.0/tlstool-1.0.dmg", headers={"Host": self.stranger.host})
        self.assertEqual(r.status, 404)
        st, body = self.call(self.hub, HUB_TOKEN, "GET", "/api/v1/sites")
        self.assertNotIn("stranger", [x["site"] for x in body["sites"]])


if __name__ == "__main__":
    unittest.main()
