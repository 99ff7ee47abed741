"""Black-box: large bodies over every send path of the built orchardd.

ORCHARD_SEND_PATH picks how stored files are sent: copy (the default,
pread + write through a 256 KiB buffer), sendfile, splice, or einval (a
kernel path that fails as on a file system without sendfile: the body must
fall back to copying). For each, a 12 MiB object is fetched as a miss (the
fill in progress streams to the client), as a hit and as a range hit, each
body checked by SHA-256; the counters say which path the hits took. A bad
value of ORCHARD_SEND_PATH stops the daemon at start-up.
"""

import hashlib
import subprocess
import unittest

from harness import Orchard, Origin, gen_path, make_tempdir, orchardd_path, remove_tempdir, MiB
from origin_content import expected_bytes, expected_sha256

SIZE = 12 * MiB + 321


def metric(orchard, name):
    r = orchard.get("/metrics", host=orchard.host)
    for line in r.body.decode().splitlines():
        if line.startswith(f"orchard_{name} "):
            return int(float(line.split()[1]))
    raise AssertionError(f"no metric orchard_{name}")


class SendPath(unittest.TestCase):
    path = None  # ORCHARD_SEND_PATH, None: the default (copy)
    kernel = False

    @classmethod
    def setUpClass(cls):
        if cls is SendPath:
            raise unittest.SkipTest("base class")
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        env = {"ORCHARD_SEND_PATH": cls.path} if cls.path else None
        cls.orchard = Orchard(cls.origin.port, workdir=cls.tmp, env=env)
        cls.addClassCleanup(cls.orchard.kill9)
        cls.addClassCleanup(cls.orchard.stop, expect_exit=0)
        cls.orchard.start()

    def sha(self, body):
        return hashlib.sha256(body).hexdigest()

    def test_miss_hit_and_range_are_byte_exact(self):
        name = f"paths-{self.path or 'default'}"
        p = gen_path(name, SIZE)
        want = expected_sha256(name, SIZE)
        miss = self.orchard.get(p)
        self.assertEqual(miss.status, 200)
        self.assertTrue(miss.complete)
        self.assertEqual(self.sha(miss.body), want, "the miss (fill in progress) differs")
        hit = self.orchard.get(p)
        self.assertIn("hit", hit.cache_status)
        self.assertTrue(hit.complete)
        self.assertEqual(self.sha(hit.body), want, "the hit differs")
        first, last = 1 * MiB + 7, 9 * MiB + 3
        r = self.orchard.get(p, headers=[("Range", f"bytes={first}-{last}")])
        self.assertEqual(r.status, 206)
        self.assertEqual(self.sha(r.body), self.sha(expected_bytes(name, last + 1, first)), "the range differs")
        kernel_bytes = metric(self.orchard, "bytes_kernel_path_total")
        if self.kernel:
            self.assertGreater(kernel_bytes, 0, "the kernel path was not used")
        else:
            self.assertEqual(kernel_bytes, 0)
        fallbacks = metric(self.orchard, "kernel_path_fallbacks_total")
        if self.path == "einval":
            self.assertGreater(fallbacks, 0, "no fallback to copying was counted")
        else:
            self.assertEqual(fallbacks, 0)


class DefaultPath(SendPath):
    pass


class SendfilePath(SendPath):
    path = "sendfile"
    kernel = True


class SplicePath(SendPath):
    path = "splice"
    kernel = True


class EinvalFallsBackToCopy(SendPath):
    path = "einval"


class BadSendPath(unittest.TestCase):
    def test_unknown_value_stops_the_daemon(self):
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        r = subprocess.run([orchardd_path()], capture_output=True, text=True,
                           env={"ORCHARD_SEND_PATH": "mmap", "PATH": "/usr/bin:/bin"}, timeout=30, cwd=tmp)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ORCHARD_SEND_PATH", r.stderr + r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
