"""Black-box: a publish cut short leaves no trace, and a big one costs no memory (issue 10).

Role: kill -9 orchardd in the middle of an upload and restart it: nothing
is listed or served, and storage.dir/packages/tmp is empty again (swept at
start). A client that disconnects half way leaves nothing either, on a box
that keeps running. A 2 GiB publish, streamed, keeps the daemon's RSS
growth under 64 MiB (the body never sits in memory) and its bytes come
back whole.
"""

import os
import time
import unittest

from catalog_case import TOKEN, CatalogCase
from harness import GiB, MiB, request, rss_kb
from upload import api, pattern_piece, pattern_sha256, put_stream


class CutShort(CatalogCase):
    limit = "8GiB"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmpdir = os.path.join(cls.pkgdir, "tmp")

    def put(self, name, size, seed, **kw):
        return put_stream(self.orchard.port, f"/api/v1/packages/{name}/1/{name}.dmg?bundle_id=org.example.{name}",
                          size, pattern_piece(seed),
                          headers={"Authorization": f"Bearer {TOKEN}",
                                   "X-Checksum-Sha256": pattern_sha256(seed, size)}, **kw)

    def wait_empty(self, path, timeout=10.0):
        deadline = time.monotonic() + timeout
        while os.listdir(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        return os.listdir(path)

    def test_kill9_mid_upload_leaves_no_trace(self):
        def kill_half_way(sock, sent):
            if sent >= 40 * MiB and self.orchard.alive():
                # the temp file exists while the upload runs
                self.assertTrue(os.listdir(self.tmpdir))
                self.orchard.kill9()
        try:
            self.put("killed", 100 * MiB, "k", on_sent=kill_half_way)
        except OSError:
            pass
        self.assertFalse(self.orchard.alive())
        self.orchard.start()
        port = self.orchard.port
        self.assertEqual(api(port, "GET", "/api/v1/packages/killed", token=TOKEN)[0], 404)
        self.assertEqual(request(port, "GET", "/pkgs/killed/1/killed.dmg").status, 404)
        self.assertEqual(os.listdir(self.tmpdir), [], "temp files are swept at start")
        blobs = os.path.join(self.orchard.state_dir, "packages", "blobs")
        killed = pattern_sha256("k", 100 * MiB)
        self.assertNotIn(killed, [f for _, _, fs in os.walk(blobs) for f in fs])
        # And the box publishes normally afterwards.
        self.assertEqual(self.put("after", 2 * MiB, "after")[0], 201)

    def test_client_gone_mid_upload_leaves_nothing(self):
        self.assertIsNone(self.put("gone", 30 * MiB, "g", stop_after=12 * MiB))
        self.assertEqual(self.wait_empty(self.tmpdir), [], "the abandoned upload's temp file is removed")
        self.assertEqual(api(self.orchard.port, "GET", "/api/v1/packages/gone", token=TOKEN)[0], 404)
        # Its reservation is given back: the same version publishes now.
        self.assertEqual(self.put("gone", 3 * MiB, "g2")[0], 201)

    def test_2gib_publish_keeps_rss_flat(self):
        size = 2 * GiB
        before = rss_kb(self.orchard.pid)["VmRSS"]
        peak = [before]

        def sample(sock, sent):
            if sent % (64 * MiB) == 0:
                peak[0] = max(peak[0], rss_kb(self.orchard.pid)["VmRSS"])
        status, _, body, _ = self.put("huge", size, "huge", on_sent=sample, timeout=300)
        self.assertEqual(status, 201, body)
        peak[0] = max(peak[0], rss_kb(self.orchard.pid)["VmHWM"])  # the high-water mark
        growth_mib = (peak[0] - before) / 1024
        self.assertLess(growth_mib, 64, f"RSS grew {growth_mib:.1f} MiB during a 2 GiB publish")
        r = request(self.orchard.port, "GET", "/pkgs/huge/1/huge.dmg", keep_body=False, timeout=300)
        self.assertEqual((r.status, r.sha256), (200, body["sha256"]))
        self.assertEqual(api(self.orchard.port, "DELETE", "/api/v1/packages/huge/1", token=TOKEN)[0], 200)


if __name__ == "__main__":
    unittest.main()
