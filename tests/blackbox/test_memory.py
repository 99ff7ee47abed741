"""Memory stays bounded whatever the object size: a 1 GiB object pushed through
orchardd cold (origin at full speed, client reading at full speed and hashing
as it streams) and then served again as a hit must each grow orchardd's
peak resident set (VmHWM) by less than 64 MiB over its value after start-up.

Needs ~1 GiB for the stored object (plus headroom): skipped when the temp
filesystem has under 3 GiB free."""

import shutil
import tempfile
import time
import unittest

from harness import OrchardCase, gen_path, expected_sha256, GiB, MiB

SIZE = 1 * GiB
BOUND_KB = 64 * 1024


def _free_tmp():
    return shutil.disk_usage(tempfile.gettempdir()).free


@unittest.skipIf(_free_tmp() < 3 * GiB,
                 f"needs 3 GiB free in {tempfile.gettempdir()} (has {_free_tmp() // MiB} MiB)")
class MemoryTest(OrchardCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        time.sleep(0.5)  # let start-up allocations settle
        cls.baseline = cls.orchard.rss_kb()

    def _check_bound(self, when):
        now = self.orchard.rss_kb()
        grew = now["VmHWM"] - self.baseline["VmHWM"]
        self.assertLess(grew, BOUND_KB,
                        f"{when}: VmHWM grew by {grew} kB (start-up {self.baseline}, now {now})")
        return now

    def test_1gib_cold_then_hit(self):
        name = "memory-1g"
        path = gen_path(name, SIZE)
        want = expected_sha256(name, SIZE)  # computed before, not while streaming

        t0 = time.monotonic()
        r = self.get(path, keep_body=False, timeout=60)
        cold_secs = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.complete, r)
        self.assertEqual(r.length, SIZE, r)
        self.assertEqual(r.sha256, want, "cold body differs from the origin's")
        self.assertMiss(r)
        after_cold = self._check_bound("after the cold 1 GiB fill")

        t0 = time.monotonic()
        r = self.get_hit(path, name, SIZE, keep_body=False, timeout=60, grace=5.0)
        hit_secs = time.monotonic() - t0
        self.assertEqual(r.sha256, want)
        after_hit = self._check_bound("after the 1 GiB hit")
        self.assertEqual(self.origin.count(path), 1)
        print(f"\n  1 GiB cold {cold_secs:.2f}s, hit {hit_secs:.2f}s; VmHWM kB start "
              f"{self.baseline['VmHWM']}, after cold {after_cold['VmHWM']}, "
              f"after hit {after_hit['VmHWM']}", flush=True)


if __name__ == "__main__":
    unittest.main()
