"""Disk full during a fill (issue 3, "Eviction and disk"): the fill turns
into a pass-through for its clients, nothing partial is recorded as
complete, and the box keeps serving hits.

The state dir lives on a small tmpfs (48 MiB) while storage.cache_limit
claims 1 GiB, so the evictor does not prevent the ENOSPC. Needs root to
mount tmpfs; skipped otherwise. The origin is throttled like a WAN link
(clients read faster than the origin sends, as on a branch LAN), which is
the case the relay window is made for.

  - a small object is stored and is a hit;
  - a 100 MiB object (more than the disk) arrives whole and byte-identical;
  - it is not stored (the next GET goes to the origin again) and no object
    file of it is left on the disk;
  - a new object is still stored and served as a hit afterwards, and the
    daemon stops cleanly (the index kept the space it needs)."""

import os
import subprocess
import tempfile
import time
import unittest

from harness import Orchard, Origin, gen_path, make_tempdir, remove_tempdir, MiB
from origin import expected_sha256


def mount_tmpfs(path, size):
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                       capture_output=True)
    return r.returncode == 0


class DiskFull(unittest.TestCase):
    def setUp(self):
        self.tmp = make_tempdir()
        self.addCleanup(remove_tempdir, self.tmp)
        self.disk = os.path.join(self.tmp, "disk")
        os.makedirs(self.disk)
        if not mount_tmpfs(self.disk, "48m"):
            self.skipTest("cannot mount a tmpfs here (needs root)")
        self.addCleanup(subprocess.run, ["umount", "-l", self.disk], capture_output=True)
        self.origin = Origin().start()
        self.addCleanup(self.origin.stop)
        self.orchard = Orchard(self.origin.port, workdir=self.tmp,
                               state_dir=os.path.join(self.disk, "state"), cache_limit="1GiB")
        self.addCleanup(self.orchard.kill9)
        self.addCleanup(self.orchard.stop, expect_exit=0)
        self.orchard.start()

    def test_fill_passes_through_when_the_disk_is_full(self):
        small = gen_path("df-small", 64 * 1024)
        self.assertEqual(self.orchard.get(small).status, 200)
        self.assertIn("hit", self.orchard.get(small).cache_status or "")

        size = 100 * MiB
        big = gen_path("df-big", size, rate=50 * MiB)
        r = self.orchard.get(big, keep_body=False)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.complete, f"the pass-through was cut: {r}")
        self.assertEqual(r.length, size)
        self.assertEqual(r.sha256, expected_sha256("df-big", size))

        again = self.orchard.get(big, keep_body=False)
        self.assertEqual(self.origin.count(big), 2, "the object of a disk-full fill was stored")
        self.assertNotIn("hit", again.cache_status or "")
        # The box keeps caching: (the evictor may have made room by dropping
        # older objects) a new object is stored and then a hit. The ENOSPC
        # asked the evictor for room beyond its low watermark; let that pass
        # run first (it runs on request and every second), or on a loaded
        # machine it may take the new object too, which is what it was asked.
        time.sleep(2.5)
        small2 = gen_path("df-small2", 64 * 1024)
        self.assertEqual(self.orchard.get(small2).status, 200)
        self.assertIn("hit", self.orchard.get(small2).cache_status or "",
                      "hits stopped working after the disk filled up")
        used = sum(os.path.getsize(os.path.join(d, f))
                   for d, _, files in os.walk(os.path.join(self.disk, "state", "objects")) for f in files)
        self.assertLess(used, 40 * MiB, "files of the failed fill were left behind")


if __name__ == "__main__":
    unittest.main()
