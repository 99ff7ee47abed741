"""The server side of the box's own requests (server/apple/box_fetch.h,
server/proxy/internal_request.h) and the mirror bandwidth cap
(apple.mirror_rate, origin -> box only).

The box's jobs GET /path?source=host through their own loopback listener
with `X-Orchard-Internal: <secret>[; capped]`. The secret is random at each
start and in no file; these tests start orchardd with the test-only
ORCHARD_TEST_INTERNAL_SECRET so they can send what the jobs send.

  test_capped_fill_takes_the_time_the_cap_implies
      (a) a capped internal GET of a 10 MiB object at mirror_rate 2MiB takes
      5 s +/- 10 %, while a plain GET of another object through the same box
      runs at origin speed; once stored, the object is a hit at full speed,
      for a Mac and for the mirror (hits are never capped)
  test_mac_joining_lifts_the_cap
      (b) a plain client joining a capped 20 MiB fill after 1 s gets the
      rest at origin speed: both downloads end long before the 10 s the cap
      would take
  test_reload_to_no_cap_lifts_it_mid_fill
      apple.mirror_rate is reloadable: set to 0B (SIGHUP) one second into a
      capped 20 MiB fill, the rest comes at origin speed
  test_dropping_the_mirror_stops_the_origin
      (c) the mirror hanging up mid-fill stops origin traffic within about
      1 s (the origin's byte count stops growing, far below the object's
      size), and a later GET resumes with a Range request from the recorded
      blocks and gets the whole object right
  test_internal_header_is_never_forwarded
      (d) a bogus X-Orchard-Internal (from anyone) and the real one never
      reach the origin, on shared fills and on a pass; a bogus `capped` caps
      nothing
  test_allow_clients_bypass_needs_the_secret
      (e) with access.allow_clients excluding loopback, only the right
      secret from loopback gets through (proxy and the Macs' local routes,
      never the admin ones); the same box started without the test variable
      refuses that secret: it is not a constant
"""

import os
import signal
import threading
import time
import unittest

from harness import (MiB, Orchard, Origin, expected_bytes, expected_sha256, gen_path, make_tempdir,
                     remove_tempdir, request)

SECRET = "5eed" * 8                     # 32 lower-case hex characters
WRONG = "5eed" * 7 + "5eee"
RATE = 2 * MiB                          # apple.mirror_rate
MIRROR_TOML = '[apple]\nmirror_rate = "2MiB"\n'
HOST = "swcdn.apple.com"


def source_target(path):
    return f"{path}?source={HOST}"


class MirrorPathTest(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        cls.box = Orchard(cls.origin.port, workdir=cls.tmp, extra_toml=MIRROR_TOML,
                          env={"ORCHARD_TEST_INTERNAL_SECRET": SECRET})
        cls.addClassCleanup(cls.box.kill9)
        cls.addClassCleanup(cls.box.stop, expect_exit=0)
        cls.box.start()

    def tearDown(self):
        if not self.box.alive():
            self.fail("orchardd died during the test; stderr:\n" + self.box.stderr_text(tail=4000))

    # -- clients
    def internal_get(self, path, capped=True, secret=SECRET, box=None, **kw):
        """What the box's own jobs send: the content-cache form to the box's
        loopback listener, with the internal header."""
        box = box or self.box
        value = secret + ("; capped" if capped else "")
        return request(box.port, "GET", source_target(path),
                       [("Host", box.host), ("X-Orchard-Internal", value)], keep_body=False, **kw)

    def mac_get(self, path, headers=None, **kw):
        """A Mac by DNS intercept."""
        return request(self.box.port, "GET", path, [("Host", HOST)] + list(headers or []),
                       keep_body=False, **kw)

    def assertWhole(self, r, name, size):
        self.assertEqual(r.status, 200, f"{r} {r.header_list}")
        self.assertTrue(r.complete, r)
        self.assertEqual(r.length, size, r)
        self.assertEqual(r.sha256, expected_sha256(name, size), "body differs from the origin's")

    @staticmethod
    def timed(fn):
        t0 = time.monotonic()
        r = fn()
        r.elapsed = time.monotonic() - t0
        return r

    # -- (a)
    def test_capped_fill_takes_the_time_the_cap_implies(self):
        size = 10 * MiB
        mirror_path, plain_path = gen_path("cap-a", size), gen_path("plain-a", size)
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "mirror", self.timed(lambda: self.internal_get(mirror_path, timeout=60))))
        t.start()
        time.sleep(0.5)  # the capped fill is running
        plain = self.timed(lambda: self.mac_get(plain_path, timeout=60))
        t.join(60)
        mirror = out["mirror"]
        self.assertWhole(mirror, "cap-a", size)
        self.assertIn("fwd=miss", mirror.cache_status.replace(" ", ""), mirror.cache_status)
        want = size / RATE
        self.assertGreaterEqual(mirror.elapsed, want * 0.9,
                                f"capped 10 MiB at 2 MiB/s took {mirror.elapsed:.2f} s")
        self.assertLessEqual(mirror.elapsed, want * 1.1,
                             f"capped 10 MiB at 2 MiB/s took {mirror.elapsed:.2f} s")
        self.assertWhole(plain, "plain-a", size)
        self.assertLess(plain.elapsed, 2.0, f"an uncapped 10 MiB miss beside the mirror took {plain.elapsed:.2f} s")
        # Stored: a hit at full speed, for a Mac and for the mirror itself.
        deadline = time.monotonic() + 3
        while True:
            hit = self.timed(lambda: self.mac_get(mirror_path, timeout=30))
            if hit.is_hit() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertTrue(hit.is_hit(), hit.cache_status)
        self.assertWhole(hit, "cap-a", size)
        self.assertLess(hit.elapsed, 2.0, f"a hit took {hit.elapsed:.2f} s")
        again = self.timed(lambda: self.internal_get(mirror_path, timeout=30))
        self.assertTrue(again.is_hit(), again.cache_status)
        self.assertWhole(again, "cap-a", size)
        self.assertLess(again.elapsed, 2.0, f"the mirror's own hit took {again.elapsed:.2f} s")
        self.assertEqual(self.origin.count(mirror_path), 1, self.origin.matching(mirror_path))

    # -- (b)
    def test_mac_joining_lifts_the_cap(self):
        size = 20 * MiB  # 10 s at the cap
        path = gen_path("join-b", size)
        out = {}
        progress = [0]

        def seen(resp):
            progress[0] = resp.length
        t0 = time.monotonic()
        t = threading.Thread(target=lambda: out.setdefault(
            "mirror", self.internal_get(path, timeout=60, on_progress=seen)))
        t.start()
        time.sleep(1.0)
        got = progress[0]  # what the mirror had after 1 s
        mac = self.mac_get(path, timeout=60)
        mac_done = time.monotonic() - t0
        t.join(60)
        mirror = out["mirror"]
        mirror_done = mirror.t_done - t0
        self.assertWhole(mac, "join-b", size)
        self.assertWhole(mirror, "join-b", size)
        self.assertIn("collapsed", mac.cache_status, mac.cache_status)  # it joined the mirror's fill
        # After 1 s the cap held the mirror to about 2 MiB; uncapped it would
        # have been done.
        self.assertLess(got, 4 * MiB, f"the mirror had {got} bytes after the first second")
        self.assertGreater(got, 0, "the mirror had nothing after the first second")
        self.assertLess(mac_done, 4.0, f"the Mac's download ended {mac_done:.2f} s in (cap: 10 s)")
        self.assertLess(mirror_done, 4.5, f"the mirror's download ended {mirror_done:.2f} s in (cap: 10 s)")
        self.assertEqual(self.origin.count(path), 1, self.origin.matching(path))

    # -- the rate is reloadable
    def test_reload_to_no_cap_lifts_it_mid_fill(self):
        size = 20 * MiB
        path = gen_path("reload-f", size)
        out = {}
        t0 = time.monotonic()
        t = threading.Thread(target=lambda: out.setdefault("mirror", self.internal_get(path, timeout=60)))
        t.start()
        time.sleep(1.0)
        try:
            self.reload_rate("0B")
            t.join(60)
        finally:
            self.reload_rate("2MiB")
        mirror = out["mirror"]
        self.assertWhole(mirror, "reload-f", size)
        done = mirror.t_done - t0
        self.assertLess(done, 4.5, f"the mirror's download ended {done:.2f} s in (cap: 10 s)")

    def reload_rate(self, rate, timeout=10.0):
        self.box.extra_toml = f'[apple]\nmirror_rate = "{rate}"\n'
        self.box._write_config()
        before = len(self.box.stderr_text())
        os.kill(self.box.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = self.box.stderr_text()[before:]
            if "applied as config generation" in new:
                return
            self.assertNotIn("reload: refused", new)
            time.sleep(0.02)
        self.fail("no reload outcome logged; stderr:\n" + self.box.stderr_text(tail=3000))

    # -- (c)
    def test_dropping_the_mirror_stops_the_origin(self):
        # Larger than what the socket buffers between the origin and the box
        # can take ahead of a paused reader (tcp_rmem's maximum is 32 MiB here).
        size = 96 * MiB
        name = "drop-c"
        path = gen_path(name, size)
        r = self.internal_get(path, max_body=3 * MiB, timeout=30)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.stopped_early, r)
        time.sleep(1.0)
        b1 = self.origin.bytes_sent(path)
        time.sleep(1.5)
        b2 = self.origin.bytes_sent(path)
        self.assertEqual(b1, b2, "origin bytes still flowing after the mirror hung up")
        self.assertLess(b1, size * 6 // 10, f"the origin sent {b1} of {size} bytes for a dropped mirror fill")
        self.assertEqual(self.origin.in_flight(path), 0)
        # Later (the window opens again, or a Mac asks): resumed, not refetched.
        later = self.mac_get(path, timeout=60)
        self.assertWhole(later, name, size)
        ranged = self.origin.ranged(path)
        self.assertTrue(ranged, f"no Range request resumed the fill: {self.origin.matching(path)}")
        start = ranged[0].range_start()
        self.assertIsNotNone(start, ranged[0].range)
        self.assertGreaterEqual(start, 2 * MiB, f"resumed from {start}: the recorded blocks were not kept")
        self.assertEqual(start % MiB, 0, start)

    # -- (d)
    def test_internal_header_is_never_forwarded(self):
        size = 10 * MiB
        bogus_path = gen_path("bogus-d", size)
        # A bogus value, with `capped`, from a plain client: forwarded? capped?
        r = self.timed(lambda: self.mac_get(bogus_path, headers=[("X-Orchard-Internal", WRONG + "; capped")],
                                            timeout=30))
        self.assertWhole(r, "bogus-d", size)
        self.assertLess(r.elapsed, 2.0, f"a bogus capped header held the fill back ({r.elapsed:.2f} s)")
        # The real one, capped and not.
        real_path = gen_path("real-d", 64 * 1024)
        r = self.internal_get(real_path, capped=True, timeout=30)
        self.assertWhole(r, "real-d", 64 * 1024)
        real2_path = gen_path("real2-d", 64 * 1024)
        r = self.internal_get(real2_path, capped=False, timeout=30)
        self.assertWhole(r, "real2-d", 64 * 1024)
        # A pass (not cached): the same request template.
        r = request(self.box.port, "POST", "/echo/d", [("Host", HOST), ("X-Orchard-Internal", "anything")],
                    body=b"x" * 10)
        self.assertEqual(r.status, 200, r)
        for p in (bogus_path, real_path, real2_path, "/echo/d"):
            seen = self.origin.matching(p)
            self.assertTrue(seen, f"the origin never saw {p}")
            for q in seen:
                self.assertNotIn("x-orchard-internal", q.headers, f"forwarded upstream on {p}: {q.headers}")
                for v in q.headers.values():
                    self.assertNotIn(SECRET, v)

    # -- (e)
    def test_allow_clients_bypass_needs_the_secret(self):
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        box = FencedBox(self.origin.port, workdir=tmp, extra_toml=MIRROR_TOML,
                        env={"ORCHARD_TEST_INTERNAL_SECRET": SECRET})
        self.addCleanup(box.kill9)
        box.start()
        path = gen_path("fence-e", 4096)

        def get(headers, target=source_target(path)):
            return request(box.port, "GET", target, [("Host", box.host)] + headers, timeout=10)

        self.assertEqual(get([]).status, 403)
        self.assertEqual(get([("X-Orchard-Internal", WRONG)]).status, 403)
        self.assertEqual(get([("X-Orchard-Internal", WRONG + "; capped")]).status, 403)
        self.assertEqual(get([("X-Orchard-Internal", SECRET + "; bogus")]).status, 403)
        self.assertEqual(get([("X-Orchard-Internal", SECRET), ("X-Orchard-Internal", SECRET)]).status, 403)
        self.assertEqual(get([("X-Orchard-Internal", SECRET.upper())]).status, 403)
        r = get([("X-Orchard-Internal", SECRET)])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, expected_bytes("fence-e", 4096))
        r = get([("X-Orchard-Internal", SECRET + "; capped")])
        self.assertEqual(r.status, 200, r)
        # A Mac's local route (access.allow_clients): the box's jobs may read
        # its packages; an admin route stays the admin's.
        pkg = "/pkgs/none/1.0/none.pkg"
        self.assertEqual(get([], target=pkg).status, 403)
        self.assertEqual(get([("X-Orchard-Internal", WRONG)], target=pkg).status, 403)
        self.assertEqual(get([("X-Orchard-Internal", SECRET)], target=pkg).status, 404)
        self.assertEqual(get([("X-Orchard-Internal", SECRET)], target="/metrics").status, 403)
        box.stop(expect_exit=0)
        # Without the test variable the secret is a random one of this start.
        box.env = None
        box.start()
        self.assertEqual(get([("X-Orchard-Internal", SECRET)]).status, 403)
        self.assertEqual(get([("X-Orchard-Internal", SECRET)], target=pkg).status, 403)
        box.stop(expect_exit=0)
        self.assertNotIn(SECRET, box.stderr_text())


class FencedBox(Orchard):
    """A box whose access.allow_clients leaves loopback out."""

    def _write_config(self):
        super()._write_config()
        with open(self.config_path) as f:
            text = f.read()
        fenced = text.replace('allow_clients = ["127.0.0.0/8"]', 'allow_clients = ["10.0.0.0/8"]')
        assert fenced != text
        with open(self.config_path, "w") as f:
            f.write(fenced)


if __name__ == "__main__":
    unittest.main(verbosity=2)
