"""Black-box: peers (issue 15), three orchardd boxes on loopback ports that
list each other (and themselves) in upstream.peers with peer_policy
"url-path-hash" and access.peer_clients = 127.0.0.1/32, in front of one
local origin.

  test_1_each_object_stored_once_on_its_owner
      300 distinct small objects, each fetched through all three boxes:
      every body byte-exact; the origin sees 300 requests; the boxes' object
      counts (/api/v1/status Objects) sum to 300, not 900; every key was
      asked in the content-cache form of exactly one box (its owner), and
      each box stores exactly the keys it owns; TotalBytesReturnedToPeers
      and TotalBytesFromPeers cover two copies of every object while
      TotalBytesStoredFromPeers stays 0 (a non-owner relays, it does not
      store); PeerSelf names the box, Peers[] lists the others as "up"
  test_2_a_peer_down_is_skipped
      the owner of some keys stopped: a box asked for those keys fetches
      them itself (no error to the client, one more origin request each,
      stored there), the stopped peer is "down" in Peers[] and in
      orchard_upstream_node_up; fresh keys through any box are answered
      too; the peer restarted is "up" again after parent_down_time and a
      probe

The owner of a key is learnt from outside: a box asked for a key another
box owns sends it to that owner in the content-cache form (`?source=`),
which the owner's access log shows. Objects are small and each box has
one worker, so the file runs in well under a minute.
"""

import concurrent.futures
import time
import unittest

from multibox import MultiBoxCase, cache_status_entries, wait_until
from harness import free_port, gen_path


def exact(path):
    return path.split("?", 1)[0]


class ThreePeersTest(MultiBoxCase):
    N = 300
    DOWN = 2.0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        ports = [free_port() for _ in range(3)]
        peers = [f"127.0.0.1:{p}" for p in ports]
        cls.peers = [cls.box(f"peer-{i}", port=ports[i], peers=peers, peer_policy="url-path-hash",
                             peer_clients=["127.0.0.1/32"], parent_down_time=f"{cls.DOWN:g}s")
                     for i in range(3)]
        cls.start_all(*cls.peers)

    def setUp(self):
        self.assertAlive(*self.peers)

    # -- helpers
    def origin_count(self, path):
        want = exact(path)
        return sum(1 for r in self.origin.snapshot() if exact(r.path) == want)

    def owners(self, paths):
        """{path: [indexes of the boxes that were asked for it as a peer]}."""
        for b in self.peers:
            if b.alive():
                b.settle_log()
        seen = [{exact(l.target) for l in b.from_children()} for b in self.peers]
        return {p: [i for i in range(3) if exact(p) in seen[i]] for p in paths}

    @staticmethod
    def obj(tag, i):
        name, size = f"{tag}-{i:04d}-o", 1024 + i
        return name, size, gen_path(name, size)

    def fetch_all(self, jobs):
        """jobs: [(box, name, size, path)]; fetched 6 at a time; every answer
        checked whole and byte-exact."""
        def one(job):
            box, name, size, path = job
            return job, box.fetch(path, timeout=30)
        bad = []
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            for (box, name, size, path), r in ex.map(one, jobs):
                try:
                    self.assertWhole(r, name, size)
                except AssertionError as e:
                    bad.append(f"{path} via {box.name}: {str(e)[:200]}")
        self.assertEqual(bad[:5], [], f"{len(bad)} of {len(jobs)} answers were wrong")

    # -- tests
    def test_1_each_object_stored_once_on_its_owner(self):
        objs = [self.obj("peer", i) for i in range(self.N)]
        before = [b.status() for b in self.peers]
        # Every object through all three boxes, the asking order rotated.
        jobs = []
        for k in range(3):
            for i, (name, size, path) in enumerate(objs):
                jobs.append((self.peers[(i + k) % 3], name, size, path))
        self.fetch_all(jobs)

        self.assertEqual(sum(self.origin_count(p) for _, _, p in objs), self.N,
                         "each object should cost the origin one request in all")
        total = wait_until(lambda: (lambda n: n if n >= self.N else None)(sum(b.objects() for b in self.peers)), 5) \
            or sum(b.objects() for b in self.peers)
        counts = [b.objects() for b in self.peers]
        self.assertEqual(total, self.N, f"objects stored per box {counts}: each should be stored once, on its owner")

        paths = [p for _, _, p in objs]
        own = self.owners(paths)
        self.assertEqual({p: v for p, v in own.items() if len(v) != 1}, {},
                         "every key should have been asked as a peer's of exactly one box (its owner)")
        per = [sum(1 for v in own.values() if v == [i]) for i in range(3)]
        self.assertEqual(per, counts, "each box should store exactly the keys it owns")
        for n in per:
            self.assertGreater(n, self.N // 6, f"a lopsided split of {self.N} keys over 3 owners: {per}")
        # Each key's owner got it from the two other boxes.
        asked = [[l for l in b.from_children()] for b in self.peers]
        for i in range(3):
            self.assertEqual(len(asked[i]), 2 * per[i],
                             f"{self.peers[i].name} should be asked for each of its keys by the two others")

        # Asked through a box that does not own it, a key's answer carries the
        # owner's Cache-Status entry first and the asking box's (not stored) last.
        p0 = paths[0]
        owner = own[p0][0]
        name0, size0, _ = objs[0]
        resp = self.peers[(owner + 1) % 3].fetch(p0)
        self.assertWhole(resp, name0, size0)
        entries = cache_status_entries(resp)
        self.assertEqual(len(entries), 2, entries)
        self.assertIn("hit", entries[0][1], f"the owner holds it: {entries}")
        self.assertNotIn("stored", entries[-1][1], f"the asking box relays, never stores: {entries}")

        after = [b.status() for b in self.peers]

        def delta(key):
            return sum(a[key] - b[key] for a, b in zip(after, before))
        sizes = sum(s for _, s, _ in objs)
        to_peers, from_peers = delta("TotalBytesReturnedToPeers"), delta("TotalBytesFromPeers")
        self.assertGreater(to_peers, 0, after)
        self.assertGreater(from_peers, 0, after)
        self.assertGreaterEqual(to_peers, 2 * sizes, "every owner sent each of its objects to two peers")
        self.assertGreaterEqual(from_peers, 2 * sizes, "every non-owner got each object from its owner")
        # What comes through a peer is relayed, not stored (the owner stores it).
        self.assertEqual(delta("TotalBytesStoredFromPeers"), 0, after)
        self.assertEqual(delta("TotalBytesStoredFromOrigin"), sizes, "the owners stored each object once")
        # A peer's bytes are not a client's.
        to_clients = sum(a["TotalBytesReturnedToClients"] - b["TotalBytesReturnedToClients"]
                         for a, b in zip(after, before))
        self.assertLess(to_clients, 3 * sizes + 1 * 1024 * 1024, after)
        self.assertGreaterEqual(to_clients, 3 * sizes)
        for i, (b, s) in enumerate(zip(self.peers, after)):
            self.assertEqual(s.get("PeerSelf"), b.address, f"{b.name}'s PeerSelf")
            others = {p.address for p in self.peers if p is not b}
            listed = {n.get("id"): n for n in s.get("Peers") or []}
            self.assertTrue(others <= set(listed), f"{b.name}'s Peers should list {others}: {s.get('Peers')}")
            for a in others:
                self.assertEqual(listed[a]["state"], "up", listed[a])
            self.assertEqual(b.metric("orchard_upstream_node_up", {"kind": "peer",
                                                                    "node": self.peers[(i + 1) % 3].address}), 1.0)
        self.assertGreater(sum(b.metric("orchard_bytes_to_peers_total") or 0 for b in self.peers), 0)
        self.assertGreater(sum(b.metric("orchard_bytes_from_peers_total") or 0 for b in self.peers), 0)

    def test_2_a_peer_down_is_skipped(self):
        a, b, c = self.peers
        # Learn some keys' owners: 40 fresh keys through box a alone.
        objs = [self.obj("down", i) for i in range(40)]
        self.fetch_all([(a, n, s, p) for n, s, p in objs])
        own = self.owners([p for _, _, p in objs])
        of_c = [(n, s, p) for n, s, p in objs if own[p] == [2]]
        self.assertTrue(of_c, f"none of 40 keys is owned by {c.name}; owners seen: "
                              f"{sorted({tuple(v) for v in own.values()})}")
        objects_a, objects_b = a.objects(), b.objects()

        c.stop()
        try:
            # b asked for c's keys: c is down, so each goes to the next box
            # in that key's rendezvous order (the same on every box: the site
            # still stores it once), a or b itself.
            t0 = time.monotonic()
            self.fetch_all([(b, n, s, p) for n, s, p in of_c])
            self.assertLess(time.monotonic() - t0, 10 + len(of_c) * 0.2, "a down peer slowed the answers down")
            for n, s, p in of_c:
                self.assertEqual(self.origin_count(p), 2, f"{p}: stored only at the stopped owner, so b fetches it "
                                                          "from the origin once more")
            self.assertTrue(wait_until(lambda: a.objects() + b.objects() == objects_a + objects_b + len(of_c), 5),
                            f"a and b together should store the {len(of_c)} keys of their down peer once each: "
                            f"a {a.objects()}, b {b.objects()} (b was {objects_b})")
            # Asked again through the other box, every such key is a hit where it went.
            self.fetch_all([(a, n, s, p) for n, s, p in of_c])
            for n, s, p in of_c:
                self.assertEqual(self.origin_count(p), 2, f"{p}: fetched once for the down owner, then served")
            node = b.node("Peers", c.address)
            self.assertIsNotNone(node, b.status().get("Peers"))
            self.assertEqual(node["state"], "down", node)
            self.assertEqual(b.metric("orchard_upstream_node_up", {"kind": "peer", "node": c.address}), 0.0)
            # Fresh keys through either box left: all answered.
            fresh = [self.obj("fresh", i) for i in range(30)]
            self.fetch_all([([a, b][i % 2], n, s, p) for i, (n, s, p) in enumerate(fresh)])
            for n, s, p in fresh:
                self.assertEqual(self.origin_count(p), 1, p)
        finally:
            c.start()
        up = wait_until(lambda: (b.node("Peers", c.address) or {}).get("state") == "up", self.DOWN + 8, 0.1)
        self.assertTrue(up, f"the restarted peer should be up again: {b.status().get('Peers')}")


if __name__ == "__main__":
    unittest.main()
