"""One orchardd per address and per store (security issue, item 5).

SO_REUSEPORT lets a second daemon of the same user bind a port the first
listens on, and the kernel would then split clients between them; two
daemons on one storage dir would clear and reconcile each other's files.

  - a second orchardd on the same address (another storage dir) exits
    non-zero before `orchardd ready`, saying
    "server.listen 127.0.0.1:PORT: address already in use by another process",
    and the first keeps serving every request (its request counter sees them
    all, on fresh connections);
  - a second orchardd on the same storage dir (another address) exits
    non-zero naming the dir and the pid holding its lock, and the first's
    objects are untouched (still hits);
  - after the first exits (SIGTERM, and again after kill -9), a new one
    starts on the same address and dir (the kernel released the flock and the
    port) and serves what was stored."""

import os
import unittest

from harness import (Orchard, OrchardCase, Origin, gen_path, make_tempdir, remove_tempdir, run,
                     READY_LINE)


class Exclusive(unittest.TestCase):
    maxDiff = 4000
    assertWhole = OrchardCase.assertWhole
    assertHit = OrchardCase.assertHit

    def setUp(self):
        self.tmp = make_tempdir()
        self.addCleanup(remove_tempdir, self.tmp)
        self.origin = Origin().start()
        self.addCleanup(self.origin.stop)
        os.makedirs(os.path.join(self.tmp, "first"))
        self.first = Orchard(self.origin.port, workdir=os.path.join(self.tmp, "first"))
        self.addCleanup(self.first.kill9)
        self.first.start()

    def second(self, name, **kw):
        """Runs another orchardd to its exit; returns (exit code, stderr)."""
        workdir = os.path.join(self.tmp, name)
        os.makedirs(workdir, exist_ok=True)
        o = Orchard(self.origin.port, workdir=workdir, **kw)
        r = run([o.binary, "--config", o.config_path], timeout=30, cwd=workdir)
        return r.returncode, r.stderr

    def requests_seen(self):
        r = self.first.request("GET", "/metrics", [("Host", self.first.host)])
        self.assertEqual(r.status, 200, r)
        for line in r.body.decode().splitlines():
            if line.startswith("orchard_requests_total "):
                return int(line.split()[1])
        self.fail("no orchard_requests_total in /metrics")

    def test_second_daemon_on_the_same_address_is_refused(self):
        rc, err = self.second("same-port", port=self.first.port)
        self.assertNotEqual(rc, 0, err)
        self.assertIn(f"server.listen 127.0.0.1:{self.first.port}: address already in use by another process", err)
        self.assertNotIn(READY_LINE, err)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "same-port", "state", "index")),
                         "the refused daemon opened its store")
        # Every request reaches the first daemon.
        path = gen_path("ex-one", 32 * 1024)
        before = self.requests_seen()
        n = 40
        for _ in range(n):
            self.assertWhole(self.first.get(path), "ex-one", 32 * 1024)
        self.assertEqual(self.requests_seen() - before, n + 1, "requests went somewhere else")
        self.assertEqual(self.origin.count(path), 1)

    def test_second_daemon_on_the_same_store_is_refused(self):
        path = gen_path("ex-two", 48 * 1024)
        self.assertWhole(self.first.get(path), "ex-two", 48 * 1024)
        rc, err = self.second("same-dir", state_dir=self.first.state_dir)
        self.assertNotEqual(rc, 0, err)
        self.assertIn(f"storage.dir {self.first.state_dir}: in use by another orchardd", err)
        self.assertIn(f"pid {self.first.pid}", err)
        self.assertNotIn(READY_LINE, err)
        r = self.first.get(path)
        self.assertWhole(r, "ex-two", 48 * 1024)
        self.assertHit(r)
        self.assertEqual(self.origin.count(path), 1)

    def test_restart_after_exit_and_after_kill9(self):
        path = gen_path("ex-three", 64 * 1024)
        self.assertWhole(self.first.get(path), "ex-three", 64 * 1024)
        self.first.stop(expect_exit=0)
        # Same address, same dir, right after a clean exit.
        self.first.start()
        self.assertHit(self.first.get(path))
        self.first.kill9()
        # And after kill -9: no stale lock, no port left behind.
        self.first.start()
        r = self.first.get(path)
        self.assertWhole(r, "ex-three", 64 * 1024)
        self.assertHit(r)
        self.assertEqual(self.origin.count(path), 1)
        self.first.stop(expect_exit=0)


if __name__ == "__main__":
    unittest.main()
