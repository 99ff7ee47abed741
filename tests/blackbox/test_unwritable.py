"""An unwritable store while orchardd runs (security issue, item 4): every
miss is still answered from the origin, as a pass-through, never a 502.

The store's object directories and tmp/ are made immutable with
`chattr +i` (root ignores file modes, not the immutable attribute), so
creating an object file, a temp file or a spare fails with EPERM. Skipped
when chattr +i does not work here (not root, or a file system without it).

  - an object stored before keeps being a hit;
  - new objects (a small one, a 12 MiB one, a chunked one, a pass-through
    one, and a 40 MiB one read by a client slower than the origin, whom
    the relay waits for) arrive whole and byte-identical with status 200,
    and are not stored
    (Cache-Status has no "stored", the next GET goes to the origin again);
  - /api/v1/status says CacheStatus DEGRADED with a CacheProblems entry
    naming the failing write; /metrics counts store write errors;
  - made writable again, a new object is stored and then a hit, and the
    status is back to OK with an empty CacheProblems list."""

import glob
import json
import os
import subprocess
import unittest

from harness import OrchardCase, gen_path, run_parallel, MiB


def chattr(flag, paths):
    r = subprocess.run(["chattr", flag] + list(paths), capture_output=True)
    return r.returncode == 0


def chattr_works(probe_dir):
    d = os.path.join(probe_dir, "chattr-probe")
    os.makedirs(d, exist_ok=True)
    try:
        if os.geteuid() != 0 or not chattr("+i", [d]):
            return False
        try:
            open(os.path.join(d, "x"), "w").close()
            return False  # immutable did not stop us
        except OSError:
            return True
    finally:
        chattr("-i", [d])
        os.rmdir(d)


class UnwritableStore(OrchardCase):
    def status(self):
        r = self.orchard.request("GET", "/api/v1/status", [("Host", self.orchard.host)])
        self.assertEqual(r.status, 200, r)
        return json.loads(r.body)

    def metric(self, name):
        r = self.orchard.request("GET", "/metrics", [("Host", self.orchard.host)])
        self.assertEqual(r.status, 200, r)
        for line in r.body.decode().splitlines():
            if line.startswith(name + " "):
                return int(line.split()[1])
        self.fail(f"no metric {name} in /metrics")

    def store_dirs(self):
        state = self.orchard.state_dir
        return sorted(glob.glob(os.path.join(state, "objects", "*"))) + [os.path.join(state, "tmp")]

    def test_misses_pass_through_while_the_store_is_unwritable(self):
        if not chattr_works(self.tmp):
            self.skipTest("chattr +i does not stop writes here (needs root on ext4/xfs/btrfs)")
        st = self.status()
        self.assertEqual(st["CacheStatus"], "OK", st)
        self.assertEqual(st["CacheProblems"], [], st)
        errors0 = self.metric("orchard_store_write_errors_total")

        hot = gen_path("uw-hot", 200 * 1024)
        self.assertMiss(self.get(hot))
        self.get_hit(hot, "uw-hot", 200 * 1024)

        dirs = self.store_dirs()
        self.assertTrue(chattr("+i", dirs), "chattr +i failed")
        self.addCleanup(chattr, "-i", dirs)

        cases = [("uw-small", 64 * 1024, {}), ("uw-big", 12 * MiB, {}), ("uw-chunked", 3 * MiB, {"chunked": 1})]
        for name, size, opts in cases:
            path = gen_path(name, size, **opts)
            for attempt in range(2):
                r = self.get(path, keep_body=size <= 8 * MiB)
                self.assertWhole(r, name, size)
                self.assertNotIn("stored", r.cache_status, f"{name}: claims to be stored: {r.cache_status!r}")
                self.assertFalse(r.is_hit(), f"{name}: a hit from an unwritable store? {r.cache_status!r}")
            self.assertEqual(self.origin.count(path), 2, f"{name}: not fetched again, so it was stored")

        # A slow client of a fast origin, on a body larger than the 16 MiB
        # relay window: the relay waits for the client (backpressure) instead
        # of cutting it once it falls behind.
        slow = gen_path("uw-slow", 40 * MiB)
        r = self.get(slow, keep_body=False, read_rate=12 * MiB, timeout=60)
        self.assertWhole(r, "uw-slow", 40 * MiB)

        # Clients asking at once still share one origin fetch (the relay
        # waits for the slowest of them), though nothing can be stored.
        shared = gen_path("uw-shared", 24 * MiB, delay=0.5)
        results = run_parallel([lambda: self.get(shared, keep_body=False, timeout=60) for _ in range(4)])
        for r in results:
            self.assertNotIsInstance(r, BaseException, r)
            self.assertWhole(r, "uw-shared", 24 * MiB)
        self.assertEqual(self.origin.count(shared), 1, "simultaneous clients fetched the object separately")
        self.assertEqual(sum("collapsed" in r.cache_status for r in results), 3)

        # A private pass-through (uncacheable answer) needs a temp file: also unwritable.
        private = gen_path("uw-private", 256 * 1024, cc="no-store")
        self.assertWhole(self.get(private), "uw-private", 256 * 1024)

        # Hits keep working.
        self.get_hit(hot, "uw-hot", 200 * 1024)

        st = self.status()
        self.assertEqual(st["CacheStatus"], "DEGRADED", st)
        self.assertTrue(any("store writes failing" in p for p in st["CacheProblems"]), st)
        self.assertTrue(any("objects/" in p or "tmp/" in p for p in st["CacheProblems"]), st)
        self.assertGreaterEqual(self.metric("orchard_store_write_errors_total"), errors0 + 4)
        self.assertEqual(self.metric("orchard_store_degraded"), 1)

        # Writable again: objects are stored again and the status clears.
        self.assertTrue(chattr("-i", dirs), "chattr -i failed")
        fresh = gen_path("uw-fresh", 300 * 1024)
        r = self.get(fresh)
        self.assertWhole(r, "uw-fresh", 300 * 1024)
        self.assertIn("stored", r.cache_status)
        self.get_hit(fresh, "uw-fresh", 300 * 1024)
        self.assertEqual(self.origin.count(fresh), 1)
        st = self.status()
        self.assertEqual(st["CacheStatus"], "OK", st)
        self.assertEqual(st["CacheProblems"], [], st)
        self.assertEqual(self.metric("orchard_store_degraded"), 0)


if __name__ == "__main__":
    unittest.main()
