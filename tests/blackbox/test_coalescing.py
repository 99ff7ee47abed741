"""One origin fetch per object, streamed to everyone (read-while-write),
checked from outside with real concurrent clients:

  normal               40 concurrent cold GETs of 64 MiB -> 40 whole bodies,
                       one origin request
  error mid-body       origin closes mid-body under 5 clients -> none sees a
                       complete-looking body; nothing stored
  error before headers origin answers 500 first -> clients get 5xx or the
                       whole body, never a truncated 200; then it is stored
  first client leaves  the fill goes on for the follower and completes into
                       the store
  follower leaves      the first client is unaffected
  slow follower        the fill runs at origin speed, not at the reader's

The origin is rate-limited where requests must overlap, and each test has
object names of its own (one orchardd + origin for the class)."""

import threading
import time
import unittest

from harness import OrchardCase, gen_path, run_parallel, MiB


class CoalescingTest(OrchardCase):

    def test_40_concurrent_cold_gets_one_origin_fetch(self):
        name, size, clients = "coal-40", 64 * MiB, 40
        # ~1 s of origin transfer, so all 40 requests land during the fill.
        path = gen_path(name, size, rate=64 * MiB)

        def one():
            return self.get(path, keep_body=False, timeout=45)

        results = run_parallel([one] * clients, timeout=90)
        bad = []
        for i, r in enumerate(results):
            try:
                self.assertNotIsInstance(r, BaseException, r)
                self.assertWhole(r, name, size)
            except AssertionError as e:
                bad.append(f"client {i}: {str(e)[:300]}")
        self.assertEqual(bad, [], f"{len(bad)} of {clients} clients did not get the whole body")
        self.assertEqual(self.origin.count(path), 1,
                         "40 concurrent GETs must make exactly one origin request")
        self.get_hit(path, name, size, keep_body=False)
        self.assertEqual(self.origin.count(path), 1)

    def test_origin_abort_mid_body(self):
        name, size, clients = "coal-abort", 8 * MiB, 5
        # Headers after 0.5 s (all 5 attach to one fill), then 2 MiB at 8 MiB/s,
        # then the origin closes; only the first origin request aborts.
        path = gen_path(name, size, delay=0.5, rate=8 * MiB, abort_at=2 * MiB, abort_first=1)

        def one():
            return self.get(path, keep_body=False, timeout=30)

        results = run_parallel([one] * clients, timeout=60)
        for i, r in enumerate(results):
            with self.subTest(client=i):
                if isinstance(r, (ConnectionError, ValueError)):
                    continue  # closed before/inside the head: a failure, fine
                self.assertNotIsInstance(r, BaseException, r)
                self.assertFalse(r.timed_out, f"client hung instead of seeing the failure: {r}")
                if r.status == 200:
                    self.assertFalse(r.complete, f"truncated body passed off as complete: {r}")
                    self.assertLess(r.length, size, r)
                else:
                    self.assertGreaterEqual(r.status, 500, r)
        self.assertEqual(self.origin.count(path), 1, "the 5 clients should share one origin fetch")

        # Nothing was stored: the next GET goes to the origin (which now
        # completes), and only then is it a hit.
        r = self.get(path, keep_body=False)
        self.assertWhole(r, name, size)
        self.assertFalse(r.is_hit(), f"a failed fill was served from the store: {r}")
        self.assertEqual(self.origin.count(path), 2)
        self.get_hit(path, name, size, keep_body=False)
        self.assertEqual(self.origin.count(path), 2)

    def test_origin_error_before_headers(self):
        name, size, clients = "coal-fail-first", 1 * MiB, 3
        path = gen_path(name, size, delay=0.3, fail_first=1)

        def one():
            return self.get(path, keep_body=False, timeout=30)

        for i, r in enumerate(run_parallel([one] * clients, timeout=60)):
            with self.subTest(client=i):
                self.assertNotIsInstance(r, BaseException, r)
                self.assertFalse(r.timed_out, r)
                if r.status == 200:
                    self.assertWhole(r, name, size)
                else:
                    self.assertGreaterEqual(r.status, 500, r)
                    self.assertTrue(r.complete, r)
        # The 500 was not stored; a good answer is, once.
        r = self.get(path, keep_body=False)
        self.assertWhole(r, name, size)
        n = self.origin.count(path)
        self.assertLessEqual(n, 1 + clients)
        self.get_hit(path, name, size, keep_body=False)
        self.assertEqual(self.origin.count(path), n)

    def _leader_and_follower(self, name, size, path, leaver):
        """Client A starts the fill; B attaches once A has its headers; then
        `leaver` ('A' or 'B') hangs up after 1 MiB while the other reads all."""
        a_headers = threading.Event()
        b_headers = threading.Event()
        out = {}

        def wait_b(resp):
            a_headers.set()
            b_headers.wait(20)

        def client_a():
            out["A"] = self.get(path, keep_body=False, timeout=30, on_headers=wait_b,
                                max_body=1 * MiB if leaver == "A" else None)

        def client_b():
            a_headers.wait(20)
            out["B"] = self.get(path, keep_body=False, timeout=30,
                                on_headers=lambda r: b_headers.set(),
                                max_body=1 * MiB if leaver == "B" else None)

        ta = threading.Thread(target=client_a, daemon=True)
        tb = threading.Thread(target=client_b, daemon=True)
        ta.start()
        tb.start()
        ta.join(60)
        tb.join(60)
        self.assertFalse(ta.is_alive() or tb.is_alive(), "clients did not finish")
        self.assertTrue(a_headers.is_set() and b_headers.is_set(), f"no headers: {out}")
        stayer = "B" if leaver == "A" else "A"
        self.assertTrue(out[leaver].stopped_early, out[leaver])
        self.assertWhole(out[stayer], name, size)
        self.assertEqual(self.origin.count(path), 1, "A and B should share one origin fetch")
        # The fill completed into the store.
        self.get_hit(path, name, size, keep_body=False, grace=5.0)
        self.assertEqual(self.origin.count(path), 1)

    def test_first_client_disconnects(self):
        name, size = "coal-first-leaves", 32 * MiB
        self._leader_and_follower(name, size, gen_path(name, size, rate=16 * MiB), leaver="A")

    def test_follower_disconnects(self):
        name, size = "coal-follower-leaves", 16 * MiB
        self._leader_and_follower(name, size, gen_path(name, size, rate=16 * MiB), leaver="B")

    def test_slow_follower_does_not_slow_the_fill(self):
        name, size = "coal-slow", 64 * MiB
        path = gen_path(name, size)              # origin at full speed
        read_rate = 8 * MiB                      # the client needs ~8 s
        progress = {}

        def track(resp):
            progress["len"] = resp.length

        t0 = time.monotonic()
        box = {}
        t = threading.Thread(target=lambda: box.setdefault(
            "r", self.get(path, keep_body=False, read_rate=read_rate, timeout=60,
                          on_progress=track)), daemon=True)
        t.start()
        done = self.origin.wait_finished(path, 1, timeout=30)
        self.assertEqual(len(done), 1, "origin response did not end")
        self.assertTrue(done[0].ok, f"origin could not send the whole body: {done[0]}")
        read_when_origin_done = progress.get("len", 0)
        origin_secs = done[0].time - t0
        # While the slow client is still early in its read, a new client gets
        # the whole object at full speed (from the store or the finished fill).
        fast = self.get_hit(path, name, size, keep_body=False, grace=5.0)
        t.join(60)
        self.assertFalse(t.is_alive(), "slow client did not finish")
        self.assertWhole(box["r"], name, size)
        # A fill paced by the reader would end its origin read only ~20 MiB
        # (socket buffers on both sides) before the client's end, i.e. at ~44
        # MiB read; at origin speed it ends within the first ~10 MiB.
        self.assertLess(read_when_origin_done, size // 3,
                        f"the fill waited for the slow reader: origin done after {origin_secs:.1f}s "
                        f"when the client had read {read_when_origin_done} bytes")
        self.assertLess(fast.t_done, box["r"].t_done, "the fast client finished after the slow one")
        self.assertEqual(self.origin.count(path), 1)


if __name__ == "__main__":
    unittest.main()
