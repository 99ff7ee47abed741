"""The store survives a restart, and the config checker names bad keys.

  - GET an object, SIGTERM (exit 0), start again on the same state dir: the
    first GET is a hit and the origin still saw one request;
  - the same after kill -9 once the object was committed (a crash keeps what
    was complete);
  - many small objects, a restart, then hits on random ones right after
    `orchardd ready`: only compact index entries are in memory then, so each
    hit reads its record from RocksDB, and none may reach the origin;
  - `orchardd --check-config` exits non-zero naming each bad key (with its
    line), 0 on a good file; `--config` with a bad file refuses to start."""

import os
import re
import time
import unittest

from harness import (Orchard, Origin, config_toml, free_port, gen_path, make_tempdir,
                     orchardd_path, remove_tempdir, run, OrchardCase)


class RestartTest(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        self.tmp = make_tempdir()
        self.addCleanup(remove_tempdir, self.tmp)
        self.origin = Origin().start()
        self.addCleanup(self.origin.stop)
        self.orchard = Orchard(self.origin.port, workdir=self.tmp)
        self.addCleanup(self.orchard.kill9)

    # Borrow the assertion helpers of the shared base class.
    assertWhole = OrchardCase.assertWhole
    assertMiss = OrchardCase.assertMiss
    assertHit = OrchardCase.assertHit

    def get(self, target, **kw):
        return self.orchard.get(target, **kw)

    def _fill_and_confirm(self, name, size):
        path = gen_path(name, size)
        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertMiss(r)
        return path

    def test_store_survives_sigterm_restart(self):
        self.orchard.start()
        name, size = "restart-term", 3 * 1024 * 1024 + 17
        path = self._fill_and_confirm(name, size)
        self.orchard.stop(expect_exit=0)

        self.orchard.start()
        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertHit(r)
        self.assertEqual(self.origin.count(path), 1, "restart lost the stored object")
        # The source form finds the same object after the restart too.
        r = self.get(path + "?source=swcdn.apple.com", host=self.orchard.host)
        self.assertWhole(r, name, size)
        self.assertHit(r)
        self.assertEqual(self.origin.count(path), 1)
        self.orchard.stop(expect_exit=0)

    def test_random_hits_right_after_ready_come_from_the_store(self):
        import random
        self.orchard.start()
        paths = []
        for i in range(120):
            name = f"many-{i}"
            paths.append((self._fill_and_confirm(name, 1000 + i), name, 1000 + i))
        deadline = time.monotonic() + 5
        for path, name, size in paths:  # every one committed before the restart
            while not self.get(path).is_hit() and time.monotonic() < deadline:
                time.sleep(0.02)
        self.orchard.stop(expect_exit=0)

        self.orchard.start()
        rng = random.Random(9)
        for path, name, size in rng.sample(paths, 40):
            r = self.get(path)
            self.assertWhole(r, name, size)
            self.assertHit(r)
            self.assertEqual(self.origin.count(path), 1, f"{path} went to the origin after the restart")
        self.orchard.stop(expect_exit=0)

    def test_store_survives_kill9_after_commit(self):
        self.orchard.start()
        name, size = "restart-kill", 500_000
        path = self._fill_and_confirm(name, size)
        # Wait until it is served from the store (committed), then crash.
        deadline = time.monotonic() + 3
        while True:
            r = self.get(path)
            self.assertWhole(r, name, size)
            if r.is_hit() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertHit(r)
        # Index writes may be batched; give them the moment a real crash
        # after an idle period would have had.
        time.sleep(2)
        self.orchard.kill9()

        self.orchard.start()
        r = self.get(path)
        self.assertWhole(r, name, size)
        if self.origin.count(path) == 1:
            self.assertHit(r)
        # Either way what it serves is whole; a second GET is a hit.
        r = self.get(path)
        self.assertWhole(r, name, size)
        self.assertHit(r)
        self.assertLessEqual(self.origin.count(path), 2)
        self.orchard.stop(expect_exit=0)


class CheckConfigTest(unittest.TestCase):

    def setUp(self):
        self.binary = orchardd_path()
        self.tmp = make_tempdir()
        self.addCleanup(remove_tempdir, self.tmp)

    def _write(self, fname, text):
        path = os.path.join(self.tmp, fname)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_good_config(self):
        good = self._write("good.toml", config_toml(free_port(), free_port(),
                                                    os.path.join(self.tmp, "state")))
        p = run([self.binary, "--check-config", good], timeout=30, cwd=self.tmp)
        self.assertEqual(p.returncode, 0, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")

    def test_bad_config_names_each_key(self):
        text = (
            "[server]\n"                                         # 1
            f'listen = ["127.0.0.1:{free_port()}"]\n'            # 2
            "frobnicate_level = 3\n"                             # 3  unknown key
            "\n"                                                 # 4
            "[storage]\n"                                        # 5
            f'dir = "{os.path.join(self.tmp, "state")}"\n'       # 6
            'cache_limit = "12 parsecs"\n'                       # 7  bad size
            "\n"
            "[upstream]\n"
            'allow = ["swcdn.apple.com"]\n'
        )
        bad = self._write("bad.toml", text)
        p = run([self.binary, "--check-config", bad], timeout=30, cwd=self.tmp)
        out = p.stdout + p.stderr
        self.assertNotEqual(p.returncode, 0, f"bad config accepted:\n{out}")
        for key, line in (("frobnicate_level", 3), ("cache_limit", 7)):
            with self.subTest(key=key):
                self.assertIn(key, out, "every problem must be reported, naming its key")
                mentions = [l for l in out.splitlines() if key in l]
                self.assertTrue(any(re.search(rf"(?<!\d){line}(?!\d)", l) for l in mentions),
                                f"{key}: no line number {line} in {mentions}")

    def test_daemon_refuses_bad_config(self):
        bad = self._write("bad.toml", config_toml(free_port(), free_port(),
                                                  os.path.join(self.tmp, "state"))
                          + "\n[admin]\nno_such_key = true\n")
        p = run([self.binary, "--config", bad], timeout=20, cwd=self.tmp)
        out = p.stdout + p.stderr
        self.assertNotEqual(p.returncode, 0, out)
        self.assertNotIn("orchardd ready", out)
        self.assertIn("no_such_key", out)


if __name__ == "__main__":
    unittest.main()
