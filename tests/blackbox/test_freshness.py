"""RFC 9111 freshness, revalidation, Vary and invalidation, checked from
outside (issue 3, "Done when": a `max-age=1` object: after it goes stale,
the next request causes exactly one conditional request to the origin and
is answered from the store; `no-store` is never stored; `Vary:
Accept-Language` stores one variant per language).

Freshness is counted in whole seconds by the daemon, so tests that need
"still fresh" right after a miss start at the beginning of a wall-clock
second (align_to_second) and "stale" waits are 2.2 s for max-age=1.

Every test uses object names of its own, so the origin's per-path records
belong to that test alone; one orchardd + origin serve the class (except
the origin-down case, which runs its own pair)."""

import time
import unittest

from harness import (OrchardCase, Orchard, Origin, expected_bytes, gen_path, make_tempdir,
                     remove_tempdir, run_parallel)
from origin import variant_name

STALE_WAIT = 2.2  # > max-age=1 plus a whole-second clock step


def align_to_second(margin=0.03):
    """Sleep to just after the next wall-clock second boundary."""
    frac = time.time() % 1.0
    time.sleep(1.0 - frac + margin)


def cs_tokens(resp):
    return [t.strip().lower() for t in resp.cache_status.split(";")]


class FreshnessTest(OrchardCase):

    def new_requests(self, path, before):
        return self.origin.matching(path)[before:]

    def describe(self, reqs):
        return [(r.method, r.headers.get("if-none-match"), r.headers.get("if-modified-since"),
                 r.range) for r in reqs]

    # -- max-age and revalidation ------------------------------------------

    def test_stale_object_one_conditional_request_answered_from_store(self):
        """Claim: max-age=1: GET miss, GET hit; once stale, the next GET makes
        exactly one conditional request (If-None-Match / If-Modified-Since),
        the origin's 304 refreshes the stored object and the answer comes
        from the store (fwd=stale, fwd-status=304, body intact); the GET
        after that is a hit again."""
        name, size = "fresh-maxage1", 100_000
        path = gen_path(name, size, cc="max-age=1")
        align_to_second()
        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertMiss(r)
        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertHit(r)
        self.assertEqual(self.origin.count(path), 1)

        time.sleep(STALE_WAIT)
        r = self.get(path)
        new = self.new_requests(path, 1)
        self.assertEqual(len(new), 1, f"expected one revalidation, origin saw {self.describe(new)}")
        self.assertTrue(new[0].conditional,
                        f"the revalidation carried no If-None-Match/If-Modified-Since: {new[0].headers}")
        self.assertIsNone(new[0].range, "a revalidation must not be a range request")
        fin = self.origin.wait_finished(path, 2, timeout=5)
        self.assertEqual(fin[-1].status, 304, f"origin did not answer 304: {fin}")
        self.assertWhole(r, name, size)
        toks = cs_tokens(r)
        self.assertIn("fwd=stale", toks, r.cache_status)
        self.assertIn("fwd-status=304", toks, r.cache_status)

        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertHit(r)
        self.assertEqual(self.origin.count(path), 2, "a 304 must refresh the stored object")

    def test_origin_age_reaches_the_first_answer_and_counts_against_freshness(self):
        """Claim: the origin's Age is passed on with the first answer (not
        dropped), stored, and counted: Age 7200 under max-age=86400 is a hit
        with an Age of at least 7200; Age 7200 over max-age=3600 is stale at
        once, so the next request revalidates."""
        fresh = gen_path("age-fresh", 1000, cc="max-age=86400", age="7200")
        r = self.get(fresh)
        self.assertMiss(r)
        self.assertGreaterEqual(int(r.headers.get("age", "-1")), 7200, r.headers)
        r = self.get(fresh)
        self.assertHit(r)
        self.assertGreaterEqual(int(r.headers.get("age", "-1")), 7200, r.headers)
        stale = gen_path("age-stale", 1000, cc="max-age=3600", age="7200")
        r = self.get(stale)
        self.assertGreaterEqual(int(r.headers.get("age", "-1")), 7200, r.headers)
        r = self.get(stale)
        self.assertIn("fwd=stale", cs_tokens(r), r.cache_status)
        self.assertEqual(self.origin.count(stale), 2, "a stored Age past max-age must make the object stale")

    def test_concurrent_stale_requests_one_revalidation(self):
        """Claim: 5 concurrent GETs for one stale object cause exactly one
        revalidation, and all 5 get the whole body."""
        name, size = "fresh-stale-5", 2_000_000
        path = gen_path(name, size, cc="max-age=1")
        align_to_second()
        self.assertWhole(self.get(path, keep_body=False), name, size)
        time.sleep(STALE_WAIT)

        results = run_parallel([lambda: self.get(path, keep_body=False, timeout=20)] * 5, timeout=60)
        for i, r in enumerate(results):
            with self.subTest(client=i):
                self.assertNotIsInstance(r, BaseException, r)
                self.assertWhole(r, name, size)
        print("\n  concurrent stale: Cache-Status "
              f"{[getattr(r, 'cache_status', r) for r in results]}", flush=True)
        new = self.new_requests(path, 1)
        self.assertEqual(len(new), 1,
                         f"5 concurrent stale GETs: expected one revalidation, got {self.describe(new)}")
        self.assertTrue(new[0].conditional, new[0].headers)

    # -- no-store ---------------------------------------------------------

    def test_no_store_never_stored(self):
        """Claim: a `Cache-Control: no-store` answer is never stored: every GET
        reaches the origin, none is a hit, and only-if-cached finds nothing."""
        name, size = "fresh-no-store", 50_000
        path = gen_path(name, size, cc="no-store")
        for i in range(1, 4):
            r = self.get(path)
            self.assertWhole(r, name, size)
            self.assertFalse(r.is_hit(), f"no-store answer served from the store: {r}")
            self.assertEqual(self.origin.count(path), i, "each GET must reach the origin")
        time.sleep(0.3)
        r = self.get(path, headers={"Cache-Control": "only-if-cached"})
        self.assertEqual(r.status, 504, f"only-if-cached found a no-store object: {r} {r.header_list}")
        self.assertEqual(self.origin.count(path), 3)

    # -- Vary ----------------------------------------------------------------

    def test_vary_accept_language_one_variant_per_language(self):
        """Claim: `Vary: Accept-Language`: `en` and `fr` each miss once (two
        origin requests), then each is a hit with its own body (no more
        origin requests)."""
        name, size = "fresh-vary", 20_000
        path = gen_path(name, size, vary="Accept-Language")
        bodies = {lang: expected_bytes(variant_name(name, lang), size) for lang in ("en", "fr")}
        self.assertNotEqual(bodies["en"], bodies["fr"])

        for i, lang in enumerate(("en", "fr"), start=1):
            r = self.get(path, headers={"Accept-Language": lang})
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.body == bodies[lang], f"{lang}: wrong variant body on the miss")
            self.assertFalse(r.is_hit(), f"{lang}: first request for this variant was a hit: "
                                         f"{r.cache_status!r}")
            self.assertEqual(self.origin.count(path), i,
                             f"{lang}: each language's first GET must reach the origin")

        for lang in ("en", "fr", "en", "fr"):
            deadline = time.monotonic() + 2
            while True:
                r = self.get(path, headers={"Accept-Language": lang})
                self.assertEqual(r.status, 200, r)
                self.assertTrue(r.body == bodies[lang],
                                f"{lang}: answered with the wrong variant ({r.cache_status!r})")
                if r.is_hit() or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertHit(r)
            self.assertIn("accept-language", (r.header("vary") or "").lower(), r.header_list)
        self.assertEqual(self.origin.count(path), 2, "variants must be served from the store")

    # -- stale-while-revalidate / stale-if-error ---------------------------

    def test_stale_while_revalidate(self):
        """Claim: `max-age=1, stale-while-revalidate=30`: once stale, the next
        GET is answered at once from the store (a hit, not waiting for the
        origin, which now takes 1.5 s), and one background revalidation
        reaches the origin."""
        name, size = "fresh-swr", 30_000
        path = gen_path(name, size, cc="max-age=1, stale-while-revalidate=30")
        self.assertWhole(self.get(path), name, size)
        self.origin.set_options(path, delay=1.5)
        self.addCleanup(self.origin.clear_options, path)
        time.sleep(STALE_WAIT)

        t0 = time.monotonic()
        r = self.get(path)
        elapsed = time.monotonic() - t0
        self.assertWhole(r, name, size)
        self.assertTrue(r.is_hit(), f"stale-while-revalidate: expected a hit, got "
                                    f"{r.cache_status!r}")
        self.assertLess(elapsed, 1.0, f"the stale answer waited for the origin ({elapsed:.2f} s)")

        self.origin.wait_finished(path, 2, timeout=6)
        time.sleep(0.3)
        new = self.new_requests(path, 1)
        self.assertEqual(len(new), 1, f"expected one background revalidation, got {self.describe(new)}")
        self.assertTrue(new[0].conditional, f"background revalidation not conditional: {new[0].headers}")

    def test_stale_if_error_origin_500(self):
        """Claim: `max-age=1, stale-if-error=60`: once stale, with the origin
        answering 500, the stored object is served (200, intact body)."""
        name, size = "fresh-sie-500", 40_000
        path = gen_path(name, size, cc="max-age=1, stale-if-error=60")
        self.assertWhole(self.get(path), name, size)
        self.origin.set_options(path, status=500)
        self.addCleanup(self.origin.clear_options, path)
        time.sleep(STALE_WAIT)
        r = self.get(path)
        print(f"\n  stale-if-error (500): {r} origin statuses "
              f"{[f.status for f in self.origin.finished_for(path)]}", flush=True)
        self.assertWhole(r, name, size)
        self.assertGreaterEqual(self.origin.count(path), 2, "the stale object must be revalidated first")

    def test_stale_if_error_origin_down(self):
        """Claim: `max-age=1, stale-if-error=60`: once stale, with the origin
        stopped (connection refused), the stored object is served (200,
        intact body)."""
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        origin = Origin().start()
        self.addCleanup(origin.stop)
        orchard = Orchard(origin.port, workdir=tmp)
        self.addCleanup(orchard.kill9)
        orchard.start()
        name, size = "fresh-sie-down", 40_000
        path = gen_path(name, size, cc="max-age=1, stale-if-error=60")
        r = orchard.get(path)
        self.assertWhole(r, name, size)
        origin.stop()
        time.sleep(STALE_WAIT)
        r = orchard.get(path, timeout=20)
        print(f"\n  stale-if-error (origin down): {r}", flush=True)
        self.assertWhole(r, name, size)
        orchard.stop(expect_exit=0)

    # -- request directives ------------------------------------------------

    def test_only_if_cached_uncached_is_504(self):
        """Claim: `Cache-Control: only-if-cached` for an object not stored ->
        504, and nothing reaches the origin."""
        path = gen_path("fresh-oic", 1000)
        r = self.get(path, headers={"Cache-Control": "only-if-cached"})
        self.assertEqual(r.status, 504, f"{r} {r.header_list}")
        self.assertEqual(self.origin.count(path), 0)

    # -- invalidation ------------------------------------------------------

    def test_post_invalidates(self):
        """Claim: a successful POST to a stored URI invalidates it: the next
        GET goes to the origin."""
        name, size = "fresh-post-inval", 40_000
        path = gen_path(name, size)
        self.assertWhole(self.get(path), name, size)
        self.get_hit(path, name, size)
        self.assertEqual(self.origin.count(path, method="GET"), 1)

        r = self.orchard.request("POST", path, {"Host": "swcdn.apple.com",
                                               "Content-Type": "application/octet-stream"},
                                 body=b"x" * 100)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.origin.count(path, method="POST"), 1, "the POST must reach the origin")

        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertFalse(r.is_hit(), f"served from the store after a POST invalidated it: "
                                     f"{r.cache_status!r}")
        self.assertEqual(self.origin.count(path, method="GET"), 2,
                         "the GET after the POST must reach the origin")


if __name__ == "__main__":
    unittest.main()
