"""A range far into a big cold object does not wait for the bytes before it
(issue 3, "Done when": a 200 MiB object behind an origin limited to
20 MiB/s: a cold request for 1 MB at offset 150 000 000 completes in under
4 s), and the rest of the object fills behind it without fetching the
object twice.

The origin throttles every response (one per connection at a time) to
20 MiB/s, so reading the 150 MB before the range would take about 7 s: only
a daemon that asks the origin for the range's own blocks can answer in
under 4 s.

  test_cold_range_then_fills      range under 4 s with the right bytes; then
                                  (bounded wait) the whole object is a hit,
                                  byte-identical, and the origin sent fewer
                                  than 1.3 x 200 MiB body bytes for it
  test_follower_from_zero         the same range plus a concurrent client
                                  reading the object from offset 0: both
                                  get the right bytes, the range still
                                  under 4 s, same origin byte budget

Each test uses an object of its own; one orchardd + origin for the class."""

import time
import unittest

from harness import OrchardCase, expected_bytes, expected_sha256, gen_path, run_parallel, MiB

SIZE = 200 * MiB
RATE = 20971520            # 20 MiB/s per origin connection
FIRST, LAST = 150_000_000, 150_999_999
RANGE_DEADLINE = 4.0       # seconds, from the issue
BYTE_BUDGET = 1.3          # origin body bytes / object size
FILL_WAIT = 90.0           # bound for the rest of the object to arrive


class RangeMissTest(OrchardCase):

    def _range(self, path):
        t0 = time.monotonic()
        r = self.get(path, headers={"Range": f"bytes={FIRST}-{LAST}"}, timeout=30)
        r.elapsed = time.monotonic() - t0
        r.t0 = t0
        return r

    def _check_range(self, r, name):
        self.assertEqual(r.status, 206, f"{r} {r.header_list}")
        self.assertTrue(r.complete, r)
        self.assertEqual((r.header("content-range") or "").strip(),
                         f"bytes {FIRST}-{LAST}/{SIZE}", r.header_list)
        self.assertEqual(r.length, LAST - FIRST + 1, r)
        self.assertTrue(r.body == expected_bytes(name, LAST + 1, FIRST),
                        "range bytes differ from the origin's")
        self.assertLess(r.elapsed, RANGE_DEADLINE,
                        f"cold 1 MB range at offset {FIRST} took {r.elapsed:.2f} s "
                        f"(Cache-Status {r.cache_status!r})")

    def _report(self, path, label):
        reqs = [(q.method, q.range, q.if_range) for q in self.origin.matching(path)]
        fins = self.origin.finished_for(path)
        print(f"\n  {label}: origin requests {reqs}\n  responses {fins}\n"
              f"  origin body bytes {self.origin.bytes_sent(path)} "
              f"({self.origin.bytes_sent(path) / SIZE:.2f} x object)", flush=True)
        return reqs

    def _wait_filled_then_hit(self, path, name):
        # The rest fills behind the range: wait (bounded) until the origin has
        # sent at least the object's size for this path and is idle.
        filled = self.origin.wait_idle(path, min_bytes=SIZE, timeout=FILL_WAIT, settle=0.5)
        reqs = self._report(path, name)
        self.assertTrue(filled, f"the rest of the object did not fill within {FILL_WAIT:.0f} s: "
                                f"origin sent {self.origin.bytes_sent(path)} of {SIZE} bytes, "
                                f"{self.origin.in_flight(path)} responses in flight; requests {reqs}")
        hit = self.get_hit(path, name, SIZE, keep_body=False, timeout=60, grace=5.0)
        self.assertEqual(hit.sha256, expected_sha256(name, SIZE))
        sent = self.origin.bytes_sent(path)
        self.assertLess(sent, BYTE_BUDGET * SIZE,
                        f"origin sent {sent} body bytes ({sent / SIZE:.2f} x the object) for "
                        f"one 200 MiB object; requests {reqs}")

    def test_cold_range_then_fills(self):
        """Claim: a cold 1 MB range at offset 150 000 000 of a 200 MiB object
        at 20 MiB/s completes in < 4 s with the right bytes; the rest of the
        object then fills behind it (whole, byte-identical hit) with < 1.3 x
        its size sent by the origin."""
        name = "rangemiss-cold"
        path = gen_path(name, SIZE, rate=RATE)
        r = self._range(path)
        print(f"\n  cold range: {r.elapsed:.2f} s, first byte after "
              f"{(r.t_headers or r.t_done) - r.t0:.2f} s, "
              f"Cache-Status {r.cache_status!r}", flush=True)
        self._check_range(r, name)
        self.assertFalse(r.is_hit(), f"a cold object cannot be a hit: {r.cache_status!r}")
        self._wait_filled_then_hit(path, name)

    def test_follower_from_zero(self):
        """Claim: a client reading the object from offset 0 while the range
        client is served gets the whole object byte-identical; the range
        client still finishes in < 4 s; < 1.3 x the size from the origin."""
        name = "rangemiss-follower"
        path = gen_path(name, SIZE, rate=RATE)

        def ranged():
            return self._range(path)

        def whole():
            time.sleep(0.3)  # attach after the range client started the fill
            t0 = time.monotonic()
            r = self.get(path, keep_body=False, timeout=60)
            r.elapsed = time.monotonic() - t0
            return r

        rng, full = run_parallel([ranged, whole], timeout=120)
        self.assertNotIsInstance(rng, BaseException, rng)
        self.assertNotIsInstance(full, BaseException, full)
        print(f"\n  follower case: range {rng.elapsed:.2f} s ({rng.cache_status!r}), "
              f"whole {full.elapsed:.2f} s ({full.cache_status!r})", flush=True)
        with self.subTest("follower from offset 0"):
            self.assertWhole(full, name, SIZE)
        with self.subTest("range client"):
            self._check_range(rng, name)
        self._wait_filled_then_hit(path, name)


if __name__ == "__main__":
    unittest.main()
