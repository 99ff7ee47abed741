"""Stored bytes that changed on disk are never served, and start-up errors
say where and how to recover (security issue items 11 and 12).

  - an object file overwritten in place with other bytes of the same size
    while orchardd is stopped: after a restart the next GET is a refetch with
    the right body (the corruption is found before anything is sent), and
    /metrics (orchard_store_corrupt_objects_total) and /api/v1/status
    (CorruptObjectsFound) count it; for an object larger than what is checked
    before the head, a corrupt later block ends that response uncleanly and
    the next GET is right;
  - the same while orchardd runs, with storage.scrub_interval = "2s": the
    background scrub finds it within a few intervals, and the next GET gets
    the right bytes;
  - a garbled index (CURRENT) makes orchardd exit non-zero naming the index
    path and `--repair-index`; `orchardd --repair-index` then exits 0 and a
    normal start serves the stored object as a hit;
  - a storage.dir under a regular file (mkdir fails even for root) makes
    orchardd exit non-zero naming the path."""

import os
import re
import time
import unittest

from harness import (MiB, Orchard, Origin, OrchardCase, gen_path, make_tempdir, remove_tempdir, run)


def object_files(state_dir):
    """Every object file under storage.dir/objects/ab/<hex>.<gen>."""
    out = []
    root = os.path.join(state_dir, "objects")
    for sub in sorted(os.listdir(root)):
        d = os.path.join(root, sub)
        if os.path.isdir(d):
            out.extend(os.path.join(d, f) for f in sorted(os.listdir(d)))
    return out


def corrupt_in_place(path, offset, n=64):
    """Overwrites n bytes at offset with other bytes; the size stays."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(n)
        f.seek(offset)
        f.write(bytes((b ^ 0x5A) for b in old))
        f.flush()
        os.fsync(f.fileno())
    assert os.path.getsize(path) == size


class ScrubOrchard(Orchard):
    """An Orchard whose [storage] table also sets scrub_interval."""

    scrub_interval = None

    def _write_config(self):
        super()._write_config()
        if self.scrub_interval is None:
            return
        with open(self.config_path) as f:
            text = f.read()
        line = f'cache_limit = "{self.cache_limit}"\n'
        assert line in text
        text = text.replace(line, line + f'scrub_interval = "{self.scrub_interval}"\n', 1)
        with open(self.config_path, "w") as f:
            f.write(text)


class CorruptionTest(unittest.TestCase):
    maxDiff = 4000

    assertWhole = OrchardCase.assertWhole
    assertMiss = OrchardCase.assertMiss
    assertHit = OrchardCase.assertHit

    def setUp(self):
        self.tmp = make_tempdir()
        self.addCleanup(remove_tempdir, self.tmp)
        self.origin = Origin().start()
        self.addCleanup(self.origin.stop)

    def make_orchard(self, scrub_interval=None):
        ScrubOrchard.scrub_interval = scrub_interval
        o = ScrubOrchard(self.origin.port, workdir=self.tmp)
        self.addCleanup(o.kill9)
        return o

    def metric(self, orchard, name):
        r = orchard.get("/metrics", host=orchard.host)
        self.assertEqual(r.status, 200, r)
        m = re.search(rb"^orchard_" + name.encode() + rb" (\d+)$", r.body, re.M)
        self.assertIsNotNone(m, f"no {name} in /metrics")
        return int(m.group(1))

    def status_field(self, orchard, field):
        r = orchard.get("/api/v1/status", host=orchard.host)
        self.assertEqual(r.status, 200, r)
        m = re.search(rb'"' + field.encode() + rb'":(\d+)', r.body)
        self.assertIsNotNone(m, f"no {field} in /api/v1/status: {r.body!r}")
        return int(m.group(1))

    def fill_until_hit(self, orchard, name, size):
        path = gen_path(name, size)
        r = orchard.get(path)
        self.assertWhole(r, name, size)
        self.assertMiss(r)
        deadline = time.monotonic() + 5
        while True:
            r = orchard.get(path)
            self.assertWhole(r, name, size)
            if r.is_hit() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertHit(r)
        return path

    def test_corrupted_while_stopped_is_refetched_after_restart(self):
        orchard = self.make_orchard()
        orchard.start()
        small, small_size = "corrupt-small", 3 * MiB + 17    # checked whole before the head
        large, large_size = "corrupt-large", 6 * MiB + 5     # its last block only after bytes went out
        small_path = self.fill_until_hit(orchard, small, small_size)
        small_file = object_files(orchard.state_dir)
        self.assertEqual(len(small_file), 1, small_file)
        large_path = self.fill_until_hit(orchard, large, large_size)
        large_file = [f for f in object_files(orchard.state_dir) if f not in small_file]
        self.assertEqual(len(large_file), 1, large_file)
        orchard.stop(expect_exit=0)

        corrupt_in_place(small_file[0], 2 * MiB + 1000)  # block 2 of 4
        corrupt_in_place(large_file[0], 6 * MiB)         # block 6, the last
        orchard.start()
        self.assertEqual(self.metric(orchard, "store_corrupt_objects_total"), 0)

        # Found before the head: this GET is a miss with the origin's bytes.
        r = orchard.get(small_path)
        self.assertWhole(r, small, small_size)
        self.assertMiss(r)
        self.assertEqual(self.origin.count(small_path), 2, "not refetched")
        self.assertEqual(self.metric(orchard, "store_corrupt_objects_total"), 1)
        self.assertEqual(self.status_field(orchard, "CorruptObjectsFound"), 1)
        self.assertFalse(os.path.exists(small_file[0]), "the corrupt file stays")

        # Found after bytes went out: the response must not look whole.
        r = orchard.get(large_path)
        self.assertFalse(r.complete and r.status == 200 and r.length == large_size and r.is_hit(),
                         f"a corrupt object was served as a whole hit: {r}")
        self.assertEqual(self.metric(orchard, "store_corrupt_objects_total"), 2)
        r = orchard.get(large_path)
        self.assertWhole(r, large, large_size)
        self.assertEqual(self.origin.count(large_path), 2)

        # The refetched objects are hits again.
        time.sleep(0.2)
        self.assertHit(orchard.get(small_path))
        orchard.stop(expect_exit=0)

    def test_scrub_finds_corruption_while_running(self):
        orchard = self.make_orchard(scrub_interval="2s")
        orchard.start()
        name, size = "corrupt-scrub", 2 * MiB + 333
        path = self.fill_until_hit(orchard, name, size)
        files = object_files(orchard.state_dir)
        self.assertEqual(len(files), 1, files)
        # Every block of this generation passed already (served once): only
        # the scrub reads it again.
        corrupt_in_place(files[0], MiB + 5)
        deadline = time.monotonic() + 15
        while self.metric(orchard, "store_corrupt_objects_total") == 0:
            self.assertLess(time.monotonic(), deadline, "the scrub did not find the corruption; stderr:\n"
                            + orchard.stderr_text(tail=3000))
            time.sleep(0.2)
        self.assertEqual(self.status_field(orchard, "CorruptObjectsFound"), 1)
        self.assertGreaterEqual(self.metric(orchard, "store_scrub_passes_total"), 1)
        r = orchard.get(path)
        self.assertWhole(r, name, size)
        self.assertMiss(r)
        self.assertEqual(self.origin.count(path), 2)
        orchard.stop(expect_exit=0)


class StartupErrorTest(unittest.TestCase):

    def setUp(self):
        self.tmp = make_tempdir()
        self.addCleanup(remove_tempdir, self.tmp)
        self.origin = Origin().start()
        self.addCleanup(self.origin.stop)

    def test_garbled_index_names_path_and_repair_works(self):
        orchard = Orchard(self.origin.port, workdir=self.tmp)
        self.addCleanup(orchard.kill9)
        orchard.start()
        name, size = "index-repair", 300_000
        path = gen_path(name, size)
        r = orchard.get(path)
        self.assertEqual(r.status, 200, r)
        deadline = time.monotonic() + 5
        while not orchard.get(path).is_hit() and time.monotonic() < deadline:
            time.sleep(0.05)
        orchard.stop(expect_exit=0)

        index = os.path.join(orchard.state_dir, "index")
        with open(os.path.join(index, "CURRENT"), "wb") as f:
            f.write(b"\x00garbage, not a manifest name")
        p = run([orchard.binary, "--config", orchard.config_path], timeout=30, cwd=self.tmp)
        out = p.stdout + p.stderr
        self.assertNotEqual(p.returncode, 0, out)
        self.assertNotIn("orchardd ready", out)
        self.assertIn(index, out, "the message must name the index path")
        self.assertIn("--repair-index", out)

        p = run([orchard.binary, "--config", orchard.config_path, "--repair-index"], timeout=60, cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(index, p.stderr)

        orchard.start()
        r = orchard.get(path)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.is_hit(), f"the repaired index lost the object: {r}")
        self.assertEqual(self.origin.count(path), 1)
        orchard.stop(expect_exit=0)

    def test_repair_without_index_fails(self):
        orchard = Orchard(self.origin.port, workdir=self.tmp)
        p = run([orchard.binary, "--config", orchard.config_path, "--repair-index"], timeout=30, cwd=self.tmp)
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(os.path.join(orchard.state_dir, "index"), p.stderr)

    def test_storage_dir_under_a_file_names_the_path(self):
        blocker = os.path.join(self.tmp, "file")
        with open(blocker, "w") as f:
            f.write("a regular file, not a directory\n")
        state = os.path.join(blocker, "sub")
        orchard = Orchard(self.origin.port, workdir=self.tmp, state_dir=state)
        p = run([orchard.binary, "--config", orchard.config_path], timeout=30, cwd=self.tmp)
        out = p.stdout + p.stderr
        self.assertNotEqual(p.returncode, 0, out)
        self.assertNotIn("orchardd ready", out)
        self.assertIn(state, out, "the message must name the directory it could not make")


if __name__ == "__main__":
    unittest.main()
