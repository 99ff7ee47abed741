"""RFC 9111 / 9213 / 9110 behaviours checked from outside (issue 9): Age
from the origin, targeted cache control (CDN-Cache-Control and
Orchard-Cache-Control), interim (1xx) answers, close-delimited answers,
stale answers when the origin cannot be reached, and requests with
credentials. Each test names the section it checks; the unit tables in
tests/unit/cache/{policy,policy_table,targeted_control,request_decision}
_test.cc hold the edge cases, these prove the daemon carries them out.

One orchardd + origin serve the class (object names are per test); the
origin-down cases run their own pair."""

import socket
import time
import unittest

from harness import OrchardCase, Orchard, Origin, gen_path, make_tempdir, remove_tempdir

STALE_WAIT = 2.2  # > max-age=1 plus a whole-second clock step


def raw_exchange(port, request, timeout=10.0):
    """Sends raw request bytes and reads until the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    finally:
        s.close()


class ConformanceTest(OrchardCase):

    def age(self, r):
        v = r.header("age")
        self.assertIsNotNone(v, f"no Age: {r.header_list}")
        return int(v)

    # -- Age (RFC 9111 §4.2.3, §5.1) ---------------------------------------

    def test_origin_age_passed_on_and_counts_towards_freshness(self):
        """Claim: the origin's `Age: 100` reaches the client on the first
        answer (corrected initial age >= 100) and on the hit after it."""
        name, size = "conf-age-100", 10_000
        path = gen_path(name, size, cc="max-age=3600", age="100")
        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertGreaterEqual(self.age(r), 100)
        r = self.get_hit(path, name, size)
        self.assertGreaterEqual(self.age(r), 100)
        self.assertEqual(self.origin.count(path), 1)

    def test_age_over_lifetime_is_stale_at_once(self):
        """Claim: `max-age=3600` with `Age: 7200` is stale on arrival: the
        next request goes to the origin again."""
        name, size = "conf-age-old", 10_000
        path = gen_path(name, size, cc="max-age=3600", age="7200")
        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertGreaterEqual(self.age(r), 7200)
        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertFalse(r.is_hit(), r.cache_status)
        self.assertEqual(self.origin.count(path), 2)

    def test_age_first_member_of_a_list_counts(self):
        """Claim: `Age: 7200, 0` is old (its first member), not invalid."""
        name, size = "conf-age-list", 10_000
        path = gen_path(name, size, cc="max-age=3600", age="7200, 0")
        self.assertWhole(self.get(path), name, size)
        r = self.get(path)
        self.assertFalse(r.is_hit(), r.cache_status)

    def test_invalid_age_is_ignored(self):
        """Claim: `Age: 7200.0` is not delta-seconds: ignored, the object is fresh."""
        name, size = "conf-age-float", 10_000
        path = gen_path(name, size, cc="max-age=3600", age="7200.0")
        self.assertWhole(self.get(path), name, size)
        r = self.get_hit(path, name, size)
        self.assertLess(self.age(r), 3600)

    # -- Targeted cache control (RFC 9213) ---------------------------------

    def test_cdn_cache_control_overrides_cache_control(self):
        """Claim: `Cache-Control: no-store` + `CDN-Cache-Control: max-age=3600`
        is stored and hit; CDN-Cache-Control is passed on to the client."""
        name, size = "conf-cdn-fresh", 10_000
        path = gen_path(name, size, cc="no-store", cdn="max-age=3600")
        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertEqual(r.header("cdn-cache-control"), "max-age=3600")
        r = self.get_hit(path, name, size)
        self.assertEqual(r.header("cdn-cache-control"), "max-age=3600")
        self.assertEqual(self.origin.count(path), 1)

    def test_cdn_no_store_wins_over_fresh_cache_control(self):
        """Claim: `CDN-Cache-Control: no-store` with a fresh Cache-Control is not stored."""
        name, size = "conf-cdn-nostore", 10_000
        path = gen_path(name, size, cc="max-age=3600", cdn="no-store")
        self.assertWhole(self.get(path), name, size)
        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertFalse(r.is_hit(), r.cache_status)
        self.assertEqual(self.origin.count(path), 2)

    def test_invalid_cdn_cache_control_is_ignored(self):
        """Claim: a CDN-Cache-Control that is not a Structured Field
        Dictionary (`max-age=3600, &&&`) is ignored: Cache-Control: no-store
        governs."""
        name, size = "conf-cdn-invalid", 10_000
        path = gen_path(name, size, cc="no-store", cdn="max-age=3600, &&&")
        self.assertWhole(self.get(path), name, size)
        r = self.get(path)
        self.assertFalse(r.is_hit(), r.cache_status)
        self.assertEqual(self.origin.count(path), 2)

    def test_cdn_max_age_overrides_expires(self):
        """Claim: `CDN-Cache-Control: max-age=3600` beats an Expires in the past."""
        name, size = "conf-cdn-expires", 10_000
        path = gen_path(name, size, cc="", cdn="max-age=3600", expires="Thu, 01 Jan 1970 00:00:00 GMT")
        self.assertWhole(self.get(path), name, size)
        self.get_hit(path, name, size)

    def test_orchard_cache_control_first_and_not_forwarded(self):
        """Claim: `Orchard-Cache-Control: max-age=3600` beats CDN-Cache-Control
        and Cache-Control no-store, and never reaches the client."""
        name, size = "conf-occ", 10_000
        path = gen_path(name, size, cc="no-store", cdn="no-store", occ="max-age=3600")
        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertIsNone(r.header("orchard-cache-control"), r.header_list)
        r = self.get_hit(path, name, size)
        self.assertIsNone(r.header("orchard-cache-control"), r.header_list)

    # -- Interim answers (RFC 9110 §15.2) -----------------------------------

    def test_interim_answer_passed_on_and_not_stored(self):
        """Claim: the origin's 103 Early Hints reaches the client before the
        final 200, which is stored; the hit after it carries neither the 103
        nor its headers."""
        name, size = "conf-early", 2_000
        path = gen_path(name, size, cc="max-age=3600", early="1")
        req = (f"GET {path} HTTP/1.1\r\nHost: swcdn.apple.com\r\nConnection: close\r\n\r\n").encode()
        data = raw_exchange(self.orchard.port, req)
        self.assertTrue(data.startswith(b"HTTP/1.1 103 Early Hints\r\n"), data[:200])
        interim, _, rest = data.partition(b"\r\n\r\n")
        self.assertIn(b"Link: </hint.css>; rel=preload", interim)
        self.assertTrue(rest.startswith(b"HTTP/1.1 200 "), rest[:200])
        final_head = rest.partition(b"\r\n\r\n")[0].lower()
        self.assertNotIn(b"x-hint-only", final_head)
        r = self.get_hit(path, name, size)
        self.assertIsNone(r.header("x-hint-only"), r.header_list)
        self.assertIsNone(r.header("link"), r.header_list)
        data = raw_exchange(self.orchard.port, req)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:200])

    def test_interim_answer_not_sent_to_http10_client(self):
        """Claim: an HTTP/1.0 client, which cannot read 1xx, gets only the final answer."""
        name, size = "conf-early-10", 2_000
        path = gen_path(name, size, cc="max-age=3600", early="1")
        data = raw_exchange(self.orchard.port, f"GET {path} HTTP/1.0\r\nHost: swcdn.apple.com\r\n\r\n".encode())
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:200])

    # -- Close-delimited answers (RFC 9112 §6.3): passed on, never stored ----

    def test_close_delimited_answer_passed_on_not_stored(self):
        """Claim: an answer without Content-Length or chunks reaches the
        client whole (it ends at the origin's close) but is never stored:
        its end cannot be told from a cut."""
        name, size = "conf-close", 300_000
        path = gen_path(name, size, cc="max-age=3600", close="1")
        self.assertWhole(self.get(path), name, size)
        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertFalse(r.is_hit(), r.cache_status)
        self.assertEqual(self.origin.count(path), 2)

    def test_close_delimited_answer_cut_by_reset_not_stored(self):
        """Claim: the same answer cut by a TCP reset is never stored or served whole."""
        name, size = "conf-close-rst", 300_000
        path = gen_path(name, size, cc="max-age=3600", close="1", abort_at="100000", abort_first="1")
        r = self.get(path, timeout=20)
        self.assertFalse(r.complete and r.length == size and r.status == 200 and r.is_hit(), r)
        r = self.get(path, timeout=20)
        self.assertWhole(r, name, size)
        self.assertFalse(r.is_hit(), f"a body cut by a reset was stored: {r.cache_status}")
        self.assertEqual(self.origin.count(path), 2)

    # -- Invalidation of a varying URI (RFC 9111 §4.4) ----------------------

    def test_post_invalidates_every_variant(self):
        """Claim: after a POST to a URI stored in two variants (Accept-Language
        de and en), neither variant is served unvalidated: each next GET
        reaches the origin (a full fetch or a conditional request)."""
        name, size = "conf-vary-inval", 8_000
        path = gen_path(name, size, cc="max-age=3600", vary="Accept-Language")
        de, en = {"Accept-Language": "de"}, {"Accept-Language": "en"}
        for h in (de, en):
            r = self.get(path, headers=h)
            self.assertEqual(r.status, 200, r)
        for h in (de, en):
            r = self.get(path, headers=h)
            self.assertTrue(r.is_hit(), r.cache_status)
        gets = self.origin.count(path, method="GET")
        self.assertEqual(gets, 2)
        r = self.orchard.request("POST", path, {"Host": "swcdn.apple.com",
                                               "Content-Type": "application/octet-stream"}, body=b"x" * 10)
        self.assertEqual(r.status, 200, r)
        for i, h in enumerate((de, en)):
            r = self.get(path, headers=h)
            self.assertEqual(r.status, 200, r)
            self.assertFalse(r.is_hit() and "fwd" not in r.cache_status,
                             f"variant {h} served unvalidated after the POST: {r.cache_status}")
            self.assertEqual(self.origin.count(path, method="GET"), gets + i + 1,
                             f"variant {h} did not reach the origin after the POST")
        for h in (de, en):  # validated again: hits
            r = self.get(path, headers=h)
            self.assertTrue(r.is_hit(), r.cache_status)

    def test_cold_range_past_the_end_is_416(self):
        """Claim: a range far past the end of an object nobody fetched yet
        gets the origin's 416 with `Content-Range: bytes */size`, not a 502."""
        name, size = "conf-416", 10_000
        path = gen_path(name, size, cc="max-age=3600")
        r = self.get(path, headers={"Range": "bytes=99999999-"})
        self.assertEqual(r.status, 416, r)
        self.assertEqual(r.header("content-range"), f"bytes */{size}")

    # -- Credentials (RFC 9111 §3.5) ------------------------------------------

    def test_authorization_answer_shared_only_when_public(self):
        """Claim: a request with Authorization gets a `public` answer stored
        and reused for the next such request; a plain max-age answer is not."""
        auth = {"Authorization": "Basic dTpw"}
        name, size = "conf-auth-public", 5_000
        path = gen_path(name, size, cc="public, max-age=3600")
        self.assertWhole(self.get(path, headers=auth), name, size)
        self.get_hit(path, name, size, headers=auth)
        name2 = "conf-auth-plain"
        path2 = gen_path(name2, size, cc="max-age=3600")
        self.assertWhole(self.get(path2, headers=auth), name2, size)
        r = self.get(path2, headers=auth)
        self.assertWhole(r, name2, size)
        self.assertFalse(r.is_hit(), r.cache_status)
        self.assertEqual(self.origin.count(path2), 2)


class OriginUnreachableTest(unittest.TestCase):
    """RFC 9111 §4.2.4: a stale answer may be used when the origin cannot be
    reached, unless a directive forbids it."""

    def run_down(self, name, cc):
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        origin = Origin().start()
        self.addCleanup(origin.stop)
        orchard = Orchard(origin.port, workdir=tmp)
        self.addCleanup(orchard.kill9)
        orchard.start()
        path = gen_path(name, 20_000, cc=cc)
        r = orchard.get(path)
        self.assertEqual(r.status, 200, r)
        origin.stop()
        time.sleep(STALE_WAIT)
        r = orchard.get(path, timeout=20)
        orchard.stop(expect_exit=0)
        return r

    def test_stale_served_when_origin_refuses(self):
        """Claim: `max-age=1`, stale, origin down: the stored object, marked origin-unreachable."""
        r = self.run_down("conf-down-plain", "max-age=1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.length, 20_000, r)
        self.assertIn("origin-unreachable", r.cache_status)

    def test_must_revalidate_never_served_stale(self):
        """Claim: `max-age=1, must-revalidate`, stale, origin down: 504, never the
        stale object (RFC 9111 §5.2.2.2)."""
        r = self.run_down("conf-down-mr", "max-age=1, must-revalidate")
        self.assertEqual(r.status, 504, r)


if __name__ == "__main__":
    unittest.main()
