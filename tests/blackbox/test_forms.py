"""Routing and basic caching, checked from outside: the three request forms
(intercept, forward proxy, Apple content-cache `?source=`), that they share
one stored object, the 403 for hosts off the allow-list, the Apple probe,
pass-through of other methods and of uncacheable answers, chunked origins.

Each test uses object names of its own, so the origin's per-path counts
belong to that test alone; one orchardd + origin serve the whole class."""

import unittest

from harness import OrchardCase, gen_path


class FormsTest(OrchardCase):
    # test_source_form_with_port names the origin by its address,
    # ?source=127.0.0.1:<port>, which no upstream.resolve entry names: a
    # loopback address is dialled only when upstream.allow_private covers it.
    sections = {"upstream": 'allow_private = ["127.0.0.1/32"]'}

    # -- the three forms ------------------------------------------------

    def test_intercept_form(self):
        name, size = "forms-intercept", 300_000
        path = gen_path(name, size)
        r = self.get(path, host="swcdn.apple.com")
        self.assertWhole(r, name, size)
        self.assertMiss(r)
        self.get_hit(path, name, size, host="swcdn.apple.com")
        self.assertEqual(self.origin.count(path), 1)

    def test_intercept_form_second_host(self):
        name, size = "forms-intercept-updates", 70_000
        path = gen_path(name, size)
        r = self.get(path, host="updates.cdn-apple.com")
        self.assertWhole(r, name, size)
        self.assertMiss(r)
        self.get_hit(path, name, size, host="updates.cdn-apple.com")
        self.assertEqual(self.origin.count(path), 1)
        self.assertEqual(self.origin.matching(path)[0].headers.get("host", "").split(":")[0],
                         "updates.cdn-apple.com", "origin should see the original Host")

    def test_forward_proxy_form(self):
        name, size = "forms-forward", 200_000
        path = gen_path(name, size)
        target = "http://swcdn.apple.com" + path
        r = self.get(target, host="swcdn.apple.com")
        self.assertWhole(r, name, size)
        self.assertMiss(r)
        self.get_hit(target, name, size, host="swcdn.apple.com")
        self.assertEqual(self.origin.count(path), 1)
        # Upstream gets the origin form, not our absolute URI.
        self.assertEqual(self.origin.matching(path)[0].path, path)

    def test_source_form(self):
        name, size = "forms-source", 250_000
        path = gen_path(name, size)
        target = path + "?source=swcdn.apple.com"
        r = self.get(target, host=self.orchard.host)
        self.assertWhole(r, name, size)
        self.assertMiss(r)
        self.get_hit(target, name, size, host=self.orchard.host)
        self.assertEqual(self.origin.count(path), 1)
        # `source` is not sent upstream.
        self.assertEqual([r.path for r in self.origin.matching(path)], [path])

    def test_source_form_keeps_other_query(self):
        name, size = "forms-source-query", 50_000
        path = gen_path(name, size)
        r = self.get(path + "?v=7&source=swcdn.apple.com", host=self.orchard.host)
        self.assertWhole(r, name, size)
        seen = [q.path for q in self.origin.matching(path)]
        self.assertEqual(seen, [path + "?v=7"], "origin should see the query minus source")

    def test_source_form_with_port(self):
        name, size = "forms-source-port", 60_000
        path = gen_path(name, size)
        target = f"{path}?source=127.0.0.1:{self.origin.port}"
        r = self.get(target, host=self.orchard.host)
        self.assertWhole(r, name, size)
        self.assertMiss(r)
        self.get_hit(target, name, size, host=self.orchard.host)
        self.assertEqual(self.origin.count(path), 1)

    def test_source_and_intercept_share_one_object(self):
        name, size = "forms-shared", 400_000
        path = gen_path(name, size)
        r = self.get(path + "?source=swcdn.apple.com", host=self.orchard.host)
        self.assertWhole(r, name, size)
        self.assertMiss(r)
        self.get_hit(path, name, size, host="swcdn.apple.com")
        self.assertEqual(self.origin.count(path), 1)

    def test_all_forms_share_one_object(self):
        name, size = "forms-shared-all", 120_000
        path = gen_path(name, size)
        r = self.get(path, host="swcdn.apple.com")
        self.assertWhole(r, name, size)
        self.assertMiss(r)
        self.get_hit(path + "?source=swcdn.apple.com", name, size, host=self.orchard.host)
        self.get_hit("http://swcdn.apple.com" + path, name, size, host="swcdn.apple.com")
        self.get_hit(path + "?source=swcdn.apple.com&sourceScheme=http", name, size,
                     host=self.orchard.host)
        self.assertEqual(self.origin.count(path), 1)

    def test_source_scheme_https_to_a_plain_origin_is_a_502(self):
        # The origin speaks plain HTTP: the TLS handshake fails, the answer
        # says why, and nothing is fetched over plain HTTP instead.
        # (HTTPS origins proper: test_tls.py.)
        name, size = "forms-https", 1000
        path = gen_path(name, size)
        r = self.get(path + "?source=swcdn.apple.com&sourceScheme=https", host=self.orchard.host)
        self.assertEqual(r.status, 502, r)
        self.assertIn(b"upstream: TLS", r.body)
        self.assertEqual(self.origin.count(path), 0)

    # -- never an open proxy ---------------------------------------------

    def test_disallowed_hosts_get_403(self):
        before = len(self.origin.snapshot())
        cases = [
            ("intercept", gen_path("forms-denied", 10), "example.com"),
            ("intercept+port", gen_path("forms-denied-port", 10), "example.com:80"),
            ("absolute", "http://example.com/x", "example.com"),
            ("absolute, allowed Host header", "http://example.com/y", "swcdn.apple.com"),
            ("source", gen_path("forms-denied-src", 10) + "?source=example.com", self.orchard.host),
        ]
        for label, target, host in cases:
            with self.subTest(label):
                r = self.get(target, host=host)
                self.assertEqual(r.status, 403, f"{label}: {target} Host {host}: {r}")
        self.assertEqual(self.origin.snapshot()[before:], [], "origin must see nothing")

    # -- the Apple probe ----------------------------------------------------

    def test_probe(self):
        r = self.get("/", host=self.orchard.host, headers={"Max-Forwards": "0"})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.complete, r)
        self.assertEqual(r.header("accept-ranges", "").lower(), "bytes", r.header_list)

    # -- pass-through -------------------------------------------------------

    def test_post_passes_through_uncached(self):
        path = "/echo/forms-post"
        payload = b"tell me something\n" * 100
        for i in (1, 2):
            r = self.orchard.request("POST", path, {"Host": "swcdn.apple.com",
                                                   "Content-Type": "application/octet-stream"},
                                     body=payload)
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.complete, r)
            self.assertIn(b'"method": "POST"', r.body)
            self.assertIn("orchard", r.cache_status, r.header_list)
            self.assertFalse(r.is_hit(), r)
            posts = self.origin.matching(path, method="POST")
            self.assertEqual(len(posts), i, "each POST must reach the origin")
            self.assertEqual(posts[-1].body, payload, "origin must get the POST body")

    def test_no_store_not_stored(self):
        for cc in ("no-store", "private"):
            with self.subTest(cc=cc):
                name, size = f"forms-{cc}", 40_000
                path = gen_path(name, size, cc=cc)
                r1 = self.get(path)
                self.assertWhole(r1, name, size)
                self.assertIn("orchard", r1.cache_status, r1.header_list)
                r2 = self.get(path)
                self.assertWhole(r2, name, size)
                self.assertFalse(r2.is_hit(), f"{cc} answer served from the store: {r2}")
                self.assertEqual(self.origin.count(path), 2, f"{cc}: second GET must reach the origin")

    def test_uncacheable_status_not_stored(self):
        # 500 is not cacheable by default (RFC 9110 15.1) and carries no
        # explicit freshness here: passed through, never stored.
        name, size = "forms-500", 500
        path = gen_path(name, size, status=500, cc="")
        for i in (1, 2):
            r = self.get(path)
            self.assertEqual(r.status, 500, r)
            self.assertTrue(r.complete, r)
            self.assertFalse(r.is_hit(), r)
        self.assertEqual(self.origin.count(path), 2)

    def test_404_with_freshness_is_stored(self):
        # 404 is heuristically cacheable; with max-age it is served from the store.
        name, size = "forms-404", 500
        path = gen_path(name, size, status=404)
        r = self.get(path)
        self.assertEqual(r.status, 404, r)
        hit = self.get(path)
        self.assertEqual(hit.status, 404, hit)
        self.assertTrue(hit.is_hit(), hit)
        self.assertEqual(self.origin.count(path), 1)

    # -- chunked origins ------------------------------------------------------

    def test_chunked_origin(self):
        name, size = "forms-chunked", 1_500_000
        path = gen_path(name, size, chunked=1)
        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertMiss(r)
        hit = self.get_hit(path, name, size)
        self.assertIn(hit.framing, ("length", "chunked"), hit)
        self.assertEqual(self.origin.count(path), 1)

    # -- HEAD -----------------------------------------------------------------

    def test_head_after_get_is_hit(self):
        name, size = "forms-head", 80_000
        path = gen_path(name, size)
        self.assertWhole(self.get(path), name, size)
        self.get_hit(path, name, size)
        r = self.orchard.request("HEAD", path, {"Host": "swcdn.apple.com"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.length, 0)
        self.assertEqual(int(r.header("content-length", "-1")), size, r.header_list)
        self.assertTrue(r.is_hit(), r)
        self.assertEqual(self.origin.count(path), 1)


if __name__ == "__main__":
    unittest.main()
