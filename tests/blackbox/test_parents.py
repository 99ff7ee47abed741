"""Black-box: parents (issue 15), several orchardd boxes on loopback ports
in front of one local origin, checked from outside (the origin's request
records, each box's access log, /api/v1/status and /metrics).

  TwoChildrenTest     two children, one parent: a cold object through child
                      A costs the origin one request, through child B none
                      (B's Cache-Status shows the parent's hit), and the
                      parent's TotalBytesReturnedToChildren covers both while
                      its TotalBytesReturnedToClients does not count them;
                      50 concurrent cold requests spread over both children:
                      one origin request, every body byte-exact; Cache-Status
                      lists the parent's entry first and the child's last
                      (a miss through a parent that missed, then a hit)
  GrandparentTest     a child, its parent and the parent's parent: one origin
                      request, three Cache-Status entries (the grandparent's
                      first), three Via names at the origin; with the middle
                      box purged the child's miss is the grandparent's hit
  RangeThroughParentTest
                      a cold 1 MiB range at 500 MB of a 1 GiB object through
                      a child: first byte and last byte within 2x what the
                      same range of another cold 1 GiB object takes directly
                      at the parent (best of 3 each)
  ParentKilledTest    the parent kill -9'd mid-fill under three readers at
                      the child: every reader gets the whole object
                      byte-exact; the origin then saw a range request not
                      from 0 carrying If-Range; the child's later hit is
                      byte-exact; after its restart the parent stores nothing
                      torn (the object is not there, a GET of it is a miss)
  PathHashTest        url-path-hash over 3 parents: 60 objects through one
                      child reach exactly one parent each (the parents'
                      access logs and the child's Parents[].requests sum to
                      60), every parent gets some; the same keys through a
                      second child go to the same parents, no new origin
                      request
  AllParentsDownTest  every parent stopped: misses go to the origin
                      directly, Parents[].state is "down" (and the metric
                      orchard_upstream_node_up 0); a restarted parent is "up"
                      again after parent_down_time plus a probe, and new
                      misses go to it
  LoopTest            A parents B and B parents A: a miss ends in 508
                      quickly, the origin sees at most one request, each box
                      a bounded number; a Via naming the box itself: 508;
                      more than max_hops Via entries (one field or several):
                      508, exactly max_hops: served
  HttpsParentTest     a parent over HTTPS (its own CA, given to the child as
                      upstream.ca_file): misses go through it; a child
                      without that CA cannot verify it and goes to the
                      origin instead, the parent marked down

Small objects and workers = 1 per box keep the file within a few minutes
on two cores. Each class has boxes of its own; objects have names no other
name is a prefix of (origin counts match the path exactly).
"""

import re
import time
import unittest

from harness import GiB, MiB, expected_bytes, free_port, gen_path, run_parallel
from multibox import (MultiBoxCase, cache_status_entries, entry_fwd, entry_is_hit, last_is_hit,
                      wait_until)


def exact(path):
    """The path part of a target (what the origin and a box log saw)."""
    return path.split("?", 1)[0]


class ParentCase(MultiBoxCase):

    def origin_count(self, path):
        """Origin requests whose path (query stripped) is exactly `path`'s."""
        want = exact(path)
        return sum(1 for r in self.origin.snapshot() if exact(r.path) == want)

    def child_lines(self, box, path):
        """`box`'s access log lines of content-cache (`?source=`) requests for
        exactly `path`: what children asked it."""
        want = exact(path)
        return [l for l in box.from_children() if exact(l.target) == want]

    def child_count(self, box, path, want):
        """How many child requests for `path` `box` logged, once it has logged
        `want` of them or 3 s passed (a log line trails its response)."""
        wait_until(lambda: len(self.child_lines(box, path)) >= want, 3)
        return len(self.child_lines(box, path))


# ---------------------------------------------------------------- two children

class TwoChildrenTest(ParentCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.parent = cls.box("parent")
        cls.a = cls.box("child-a", parents=[cls.parent.address])
        cls.b = cls.box("child-b", parents=[cls.parent.address])
        cls.start_all(cls.parent, cls.a, cls.b)

    def setUp(self):
        self.assertAlive(self.parent, self.a, self.b)

    def test_cold_object_costs_the_origin_once_for_both_children(self):
        name, size = "two-cold-x", 1 * MiB
        path = gen_path(name, size)
        p0 = self.parent.status()
        a0 = self.a.status()

        ra = self.a.fetch(path)
        self.assertWhole(ra, name, size)
        self.assertEqual(self.origin_count(path), 1, "child A's miss: one origin request")
        self.assertEqual(self.child_count(self.parent, path, 1), 1,
                         f"child A's miss should reach the parent in the ?source= form once: "
                         f"{self.parent.proxied(exact(path))}")
        e = cache_status_entries(ra)
        self.assertEqual(len(e), 2, f"one entry per cache, parent's first: {ra.header_list}")
        self.assertEqual(entry_fwd(e[0]), "miss", f"the parent missed: {e}")
        self.assertEqual(entry_fwd(e[1]), "miss", f"the child missed: {e}")

        rb = self.b.fetch(path)
        self.assertWhole(rb, name, size)
        self.assertEqual(self.origin_count(path), 1, "child B must be served from the parent's store")
        e = cache_status_entries(rb)
        self.assertEqual(len(e), 2, f"{rb.header_list}")
        self.assertTrue(entry_is_hit(e[0]), f"B's Cache-Status should show the parent's hit first: {e}")
        self.assertEqual(entry_fwd(e[1]), "miss", f"B itself missed: {e}")
        self.assertEqual(self.child_count(self.parent, path, 2), 2)

        # Counters: the parent returned both bodies to children, not to clients.
        def parent_sent():
            s = self.parent.status()
            return s if s["TotalBytesReturnedToChildren"] - p0["TotalBytesReturnedToChildren"] >= 2 * size else None
        p1 = wait_until(parent_sent, 5) or self.parent.status()
        self.assertGreaterEqual(p1["TotalBytesReturnedToChildren"] - p0["TotalBytesReturnedToChildren"], 2 * size, p1)
        self.assertLess(p1["TotalBytesReturnedToClients"] - p0["TotalBytesReturnedToClients"], size,
                        "bytes to children are not counted as bytes to clients")
        self.assertGreaterEqual(p1["TotalBytesStoredFromOrigin"] - p0["TotalBytesStoredFromOrigin"], size)
        a1 = self.a.status()
        self.assertGreaterEqual(a1["TotalBytesStoredFromParents"] - a0["TotalBytesStoredFromParents"], size, a1)
        self.assertEqual(a1["TotalBytesStoredFromOrigin"] - a0["TotalBytesStoredFromOrigin"], 0,
                         "child A got the object from its parent, not the origin")
        node = self.a.node("Parents", self.parent.address)
        self.assertIsNotNone(node, f"child A's status should list its parent: {a1.get('Parents')}")
        self.assertEqual(node["state"], "up", node)
        self.assertGreaterEqual(node["requests"], 1, node)
        self.assertGreaterEqual(node["bytes"], size, node)
        for key in ("url", "failures", "last_error"):
            self.assertIn(key, node)
        text = self.a.metrics()
        self.assertEqual(self.a.metric("orchard_upstream_node_up", {"kind": "parent", "node": self.parent.address},
                                       text), 1.0, "orchard_upstream_node_up{kind=parent} of an up parent")
        self.assertGreaterEqual(self.a.metric("orchard_bytes_from_parents_total", text=text) or 0, size)
        self.assertGreaterEqual(self.parent.metric("orchard_bytes_to_children_total") or 0, 2 * size)

    def test_cache_status_order_miss_then_hit(self):
        name, size = "two-cs-y", 64 * 1024
        path = gen_path(name, size)
        r = self.a.fetch(path)
        self.assertWhole(r, name, size)
        e = cache_status_entries(r)
        # orchard; fwd=miss; stored, orchard; fwd=miss; stored  (parent first, child last)
        self.assertEqual([n for n, _ in e], ["orchard", "orchard"], r.header_list)
        for entry in e:
            self.assertEqual(entry_fwd(entry), "miss", e)
            self.assertIn("stored", entry[1], e)
        # A later hit at the child: the stored upstream entry first, this box's hit last.
        hit = self.a.fetch_hit(path)
        self.assertTrue(hit, "the child never answered the object as a hit")
        self.assertWhole(hit, name, size)
        e = cache_status_entries(hit)
        self.assertGreaterEqual(len(e), 2, f"the parent's stored entry should come first: {hit.header_list}")
        self.assertEqual(e[-1][0], "orchard")
        self.assertTrue(entry_is_hit(e[-1]), e)
        self.assertFalse(entry_is_hit(e[0]), f"the parent's entry is the one stored with the object: {e}")
        self.assertEqual(self.origin_count(path), 1)

    def test_50_concurrent_cold_requests_over_both_children(self):
        name, size = "two-conc-z", 16 * MiB
        path = gen_path(name, size)
        # About 1 s of origin transfer, so all 50 overlap the fill (server-side: not in the key).
        self.origin.set_options(exact(path), rate=16 * MiB)
        boxes = [self.a, self.b] * 25

        def one(box):
            return lambda: box.fetch(path, keep_body=False, timeout=60)

        results = run_parallel([one(b) for b in boxes], timeout=120)
        bad = []
        for i, r in enumerate(results):
            try:
                self.assertWhole(r, name, size)
            except AssertionError as e:
                bad.append(f"client {i} via {boxes[i].name}: {str(e)[:300]}")
        self.assertEqual(bad, [], f"{len(bad)} of 50 clients did not get the whole body")
        self.assertEqual(self.origin_count(path), 1,
                         f"50 concurrent requests over two children must cost the origin one request; "
                         f"parent saw {self.child_lines(self.parent, path)}")
        self.parent.settle_log()
        self.assertLessEqual(len(self.child_lines(self.parent, path)), 2,
                             "each child should coalesce its 25 clients into one request to the parent")


# ---------------------------------------------------------------- a grandparent

class GrandparentTest(ParentCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.grand = cls.box("grandparent")
        cls.parent = cls.box("parent", parents=[cls.grand.address])
        cls.child = cls.box("child", parents=[cls.parent.address])
        cls.start_all(cls.grand, cls.parent, cls.child)

    def test_a_chain_of_two_parents(self):
        name, size = "grand-chain-a", 512 * 1024
        path = gen_path(name, size)
        r = self.child.fetch(path)
        self.assertWhole(r, name, size)
        e = cache_status_entries(r)
        self.assertEqual(len(e), 3, f"one entry per box, the grandparent's first: {r.header_list}")
        self.assertEqual([entry_fwd(x) for x in e], ["miss"] * 3, e)
        self.assertEqual(self.origin_count(path), 1)
        self.assertEqual(self.child_count(self.parent, path, 1), 1)
        self.assertEqual(self.child_count(self.grand, path, 1), 1, "the parent asked its own parent")
        rec = [x for x in self.origin.snapshot() if exact(x.path) == exact(path)][0]
        self.assertEqual(len(re.findall(r"orchard-[0-9a-f]{8}", rec.headers.get("via", ""))), 3,
                         f"the origin's request should name the three boxes in Via: {rec.headers.get('via')!r}")
        # The parent purged: the child's next miss is a hit at the grandparent.
        self.parent.purge_all()
        self.child.purge_all()
        r = self.child.fetch(path)
        self.assertWhole(r, name, size)
        e = cache_status_entries(r)
        self.assertEqual(len(e), 3, r.header_list)
        self.assertTrue(entry_is_hit(e[0]), f"the grandparent's entry (first) should be its hit: {e}")
        self.assertEqual(self.origin_count(path), 1)


# ---------------------------------------------------------------- range on a miss through a child

class RangeThroughParentTest(ParentCase):
    FIRST = 500 * 1000 * 1000
    LEN = 1 * MiB
    RUNS = 3

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.parent = cls.box("parent", cache_limit="16GiB")
        cls.child = cls.box("child", parents=[cls.parent.address], cache_limit="16GiB")
        cls.start_all(cls.parent, cls.child)

    def _range(self, box, name):
        path = gen_path(name, GiB)
        # A WAN-like origin: 0.15 s before each answer, 64 MiB/s per response,
        # so a box that reads from 0 to the range (or waits a round trip too
        # many) shows, and the fill behind the range stays cheap.
        self.origin.set_options(exact(path), delay=0.15, rate=64 * MiB)
        last = self.FIRST + self.LEN - 1
        t0 = time.monotonic()
        r = box.fetch(path, headers={"Range": f"bytes={self.FIRST}-{last}"}, timeout=60)
        r.ttfb = (r.t_headers or r.t_done) - t0
        r.total = r.t_done - t0
        self.assertEqual(r.status, 206, f"{box.name}: {r} {r.header_list}")
        self.assertTrue(r.complete, r)
        self.assertEqual(r.header("content-range"), f"bytes {self.FIRST}-{last}/{GiB}", r.header_list)
        self.assertTrue(r.body == expected_bytes(name, last + 1, self.FIRST), "range bytes differ from the origin's")
        return r

    def test_cold_range_through_child_within_2x_of_the_parent_direct(self):
        child, direct = [], []
        for i in range(self.RUNS):
            # Alternate so drift on a shared machine lands on both sides.
            order = [("direct", self.parent), ("child", self.child)]
            for what, box in (order if i % 2 == 0 else order[::-1]):
                r = self._range(box, f"rng-{what}-{i}-big")
                (child if what == "child" else direct).append(r)
            # The fills behind the ranges must not load the next run: a restart
            # drops them (and their origin connections).
            for b in (self.child, self.parent):
                b.kill9()
            self.start_all(self.parent, self.child)
        best = lambda rs, k: min(getattr(r, k) for r in rs)  # noqa: E731
        msg = (f"child ttfb {[round(r.ttfb, 3) for r in child]} total {[round(r.total, 3) for r in child]}; "
               f"direct ttfb {[round(r.ttfb, 3) for r in direct]} total {[round(r.total, 3) for r in direct]}")
        print(f"\n  {msg}", flush=True)
        self.assertLessEqual(best(child, "ttfb"), 2 * best(direct, "ttfb"), msg)
        self.assertLessEqual(best(child, "total"), 2 * best(direct, "total"), msg)
        for r in child:
            e = cache_status_entries(r)
            self.assertEqual(len(e), 2, f"the child's range went through the parent: {r.header_list}")


# ---------------------------------------------------------------- parent killed mid-fill

class ParentKilledTest(ParentCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.parent = cls.box("parent")
        cls.child = cls.box("child", parents=[cls.parent.address])
        cls.start_all(cls.parent, cls.child)

    def test_parent_kill9_mid_fill_child_resumes_byte_exact(self):
        name, size = "killed-mid-fill", 48 * MiB
        path = gen_path(name, size)
        self.origin.set_options(exact(path), rate=12 * MiB)  # ~4 s, so the kill lands mid-body

        def reader():
            return self.child.fetch(path, keep_body=False, timeout=60)

        def killer():
            got = wait_until(lambda: self.origin.bytes_sent(exact(path)) >= 12 * MiB, 20, 0.01)
            self.parent.kill9()
            return got

        results = run_parallel([reader, reader, reader, killer], timeout=120)
        self.assertTrue(results[3], "the origin never sent 12 MiB: the kill did not land mid-body")
        for i, r in enumerate(results[:3]):
            with self.subTest(reader=i):
                self.assertWhole(r, name, size)
        reqs = [r for r in self.origin.snapshot() if exact(r.path) == exact(path)]
        resumed = [r for r in reqs if (r.range_start() or 0) > 0]
        self.assertTrue(resumed, f"the child should resume from where the parent died with a range: "
                                 f"{[(r.range, r.if_range) for r in reqs]}")
        self.assertTrue(all(r.if_range for r in resumed),
                        f"a resumed range must carry If-Range: {[(r.range, r.if_range) for r in resumed]}")
        n = self.origin_count(path)

        hit = self.child.fetch_hit(path, timeout=5, keep_body=False)
        self.assertTrue(hit, "the child never answered the resumed object as a hit")
        self.assertWhole(hit, name, size)
        self.assertEqual(self.origin_count(path), n, "a hit costs the origin nothing")

        # The parent after its restart: nothing torn stored.
        self.parent.start()
        s = self.parent.status()
        self.assertEqual(s["Objects"], 0, f"the parent stored something of a fill it died in: {s}")
        self.origin.clear_options(exact(path))
        r = self.parent.fetch(path, keep_body=False, timeout=60)
        self.assertWhole(r, name, size)
        self.assertFalse(last_is_hit(r), f"a torn object answered as a hit at the parent: {r.cache_status!r}")


# ---------------------------------------------------------------- url-path-hash

class PathHashTest(ParentCase):
    N = 60

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.parents = [cls.box(f"parent-{i}") for i in range(3)]
        addrs = [p.address for p in cls.parents]
        cls.x = cls.box("child-x", parents=addrs, parent_policy="url-path-hash")
        cls.y = cls.box("child-y", parents=addrs, parent_policy="url-path-hash")
        cls.start_all(*cls.parents, cls.x, cls.y)

    def owners(self, paths):
        """{path: [parent indexes whose log has a child request for it]}."""
        for p in self.parents:
            p.settle_log()
        logs = [{exact(l.target) for l in p.from_children()} for p in self.parents]
        return {p: [i for i, seen in enumerate(logs) if exact(p) in seen] for p in paths}

    def test_each_key_goes_to_one_parent_and_the_same_one_from_every_child(self):
        paths = [gen_path(f"hash-{i:03d}-k", 4096 + i) for i in range(self.N)]
        for i, p in enumerate(paths):
            self.assertWhole(self.x.fetch(p), f"hash-{i:03d}-k", 4096 + i)
        self.assertEqual(sum(self.origin_count(p) for p in paths), self.N)
        first = self.owners(paths)
        self.assertEqual({p: len(v) for p, v in first.items() if len(v) != 1}, {},
                         "every key should reach exactly one parent")
        per = [sum(1 for v in first.values() if v == [i]) for i in range(3)]
        self.assertEqual(sum(per), self.N)
        self.assertTrue(all(n > 0 for n in per), f"every parent should own some of {self.N} keys: {per}")
        xs = self.x.nodes("Parents")
        self.assertEqual(sorted(xs), sorted(p.address for p in self.parents), xs)
        self.assertEqual(sum(n["requests"] for n in xs.values()), self.N,
                         f"the child's Parents[].requests should sum to {self.N}: {xs}")
        self.assertEqual([xs[p.address]["requests"] for p in self.parents], per,
                         "the child's per-parent counts should match the parents' logs")

        for i, p in enumerate(paths):
            r = self.y.fetch(p)
            self.assertWhole(r, f"hash-{i:03d}-k", 4096 + i)
            self.assertTrue(entry_is_hit(cache_status_entries(r)[0]),
                            f"{p} through the second child: the parent's entry should be a hit: {r.cache_status!r}")
        self.assertEqual(sum(self.origin_count(p) for p in paths), self.N,
                         "the second child's requests must not reach the origin")
        second = self.owners(paths)
        self.assertEqual({p: second[p] for p in paths if second[p] != first[p]}, {},
                         "the second child sent some keys to another parent than the first did")
        twice = [len(self.child_lines(self.parents[first[p][0]], p)) for p in paths]
        self.assertEqual(twice, [2] * self.N, "each key's parent should have seen it from both children")
        ys = self.y.nodes("Parents")
        self.assertEqual({a: n["requests"] for a, n in ys.items()}, {a: n["requests"] for a, n in xs.items()})


# ---------------------------------------------------------------- all parents down

class AllParentsDownTest(ParentCase):
    DOWN = 2.0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.p1 = cls.box("parent-1")
        cls.p2 = cls.box("parent-2")
        cls.child = cls.box("child", parents=[cls.p1.address, cls.p2.address], parent_down_time=f"{cls.DOWN:g}s")
        cls.start_all(cls.p1, cls.p2, cls.child)

    def test_all_down_goes_direct_then_back_to_a_restarted_parent(self):
        warm = gen_path("down-warm-a", 8192)
        self.assertWhole(self.child.fetch(warm), "down-warm-a", 8192)
        self.p1.settle_log()
        self.p2.settle_log()
        self.assertEqual(len(self.child_lines(self.p1, warm)) + len(self.child_lines(self.p2, warm)), 1,
                         "with both parents up the miss goes through one of them")

        self.p1.stop()
        self.p2.stop()
        paths = [gen_path(f"down-direct-{i}-b", 8192) for i in range(3)]
        t0 = time.monotonic()
        for i, p in enumerate(paths):
            self.assertWhole(self.child.fetch(p, timeout=30), f"down-direct-{i}-b", 8192)
            self.assertEqual(self.origin_count(p), 1)
        self.assertLess(time.monotonic() - t0, 10, "refused parents must not slow misses down for long")
        for p in (self.p1, self.p2):
            n = self.child.node("Parents", p.address)
            self.assertIsNotNone(n, self.child.status().get("Parents"))
            self.assertEqual(n["state"], "down", n)
            self.assertGreaterEqual(n["failures"], 1, n)
            self.assertTrue(n["last_error"], n)
            self.assertEqual(self.child.metric("orchard_upstream_node_up", {"kind": "parent", "node": p.address}),
                             0.0)
        s = self.child.status()
        self.assertGreaterEqual(s["TotalBytesStoredFromOrigin"], 3 * 8192, s)

        # One parent back: "up" again after parent_down_time and a probe.
        self.p1.start()
        up = wait_until(lambda: (self.child.node("Parents", self.p1.address) or {}).get("state") == "up",
                        self.DOWN + 8, 0.1)
        self.assertTrue(up, f"a restarted parent should be up within {self.DOWN + 8:.0f} s: "
                            f"{self.child.nodes('Parents')}")
        probes = [l for l in self.p1.access_lines() if l.method == "GET" and l.target == "/"]
        self.assertTrue(probes, "the child should probe the parent with GET / before using it again")
        later = [gen_path(f"down-back-{i}-c", 8192) for i in range(3)]
        for i, p in enumerate(later):
            self.assertWhole(self.child.fetch(p), f"down-back-{i}-c", 8192)
            self.assertEqual(self.child_count(self.p1, p, 1), 1,
                             f"with parent-2 still down, new misses go to the restarted parent-1: {p}")
        self.assertEqual(self.child.node("Parents", self.p2.address)["state"], "down")


# ---------------------------------------------------------------- loops and hops

class LoopTest(ParentCase):
    HOPS = 3

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        pa, pb = free_port(), free_port()
        cls.a = cls.box("loop-a", port=pa, parents=[f"127.0.0.1:{pb}"])
        cls.b = cls.box("loop-b", port=pb, parents=[f"127.0.0.1:{pa}"])
        cls.hops = cls.box("hops", max_hops=cls.HOPS)
        cls.start_all(cls.a, cls.b, cls.hops)

    def test_two_boxes_parenting_each_other_end_in_508(self):
        path = gen_path("loop-obj-a", 4096)
        t0 = time.monotonic()
        r = self.a.fetch(path, timeout=30)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 508, f"a loop should end in 508: {r} {r.header_list}")
        self.assertLess(took, 5, f"the loop took {took:.1f} s to end")
        time.sleep(1.0)  # anything still bouncing would show now
        self.assertLessEqual(self.origin_count(path), 1, "the loop reached the origin more than once")
        na, nb = len(self.a.proxied(exact(path))), len(self.b.proxied(exact(path)))
        self.assertGreaterEqual(na, 1, "box A's access log should show the client's request")
        self.assertLessEqual(na, 3, f"box A saw {na} requests for one client request (a storm?)")
        self.assertLessEqual(nb, 3, f"box B saw {nb} requests for one client request (a storm?)")
        time.sleep(1.0)
        self.assertEqual((len(self.a.proxied(exact(path))), len(self.b.proxied(exact(path)))), (na, nb),
                         "requests kept arriving after the client's answer")

    def via_name(self):
        """The box's Via pseudonym, as the origin saw it on a miss."""
        path = gen_path("hops-name-z", 100)
        self.assertWhole(self.hops.fetch(path), "hops-name-z", 100)
        rec = [r for r in self.origin.snapshot() if exact(r.path) == exact(path)][-1]
        via = rec.headers.get("via", "")
        self.assertRegex(via, r"orchard-[0-9a-f]{8}")
        return via.split()[-1]

    def test_via_naming_this_box_is_508(self):
        name = self.via_name()
        r = self.hops.fetch(gen_path("hops-self-y", 100), headers={"Via": f"1.1 other, 1.1 {name}"})
        self.assertEqual(r.status, 508, r)

    def test_more_than_max_hops_via_entries_is_508(self):
        vias = [f"1.1 orchard-{i:08x}" for i in range(1, self.HOPS + 2)]
        r = self.hops.fetch(gen_path("hops-many-x", 100), headers={"Via": ", ".join(vias)})
        self.assertEqual(r.status, 508, f"{len(vias)} Via entries with max_hops {self.HOPS}: {r}")
        # The same entries over several field lines.
        r = self.hops.fetch(gen_path("hops-lines-x", 100), headers=[("Via", v) for v in vias])
        self.assertEqual(r.status, 508, f"{len(vias)} Via field lines with max_hops {self.HOPS}: {r}")
        self.assertEqual(self.origin_count(gen_path("hops-many-x", 100)) + self.origin_count(
            gen_path("hops-lines-x", 100)), 0)
        # Exactly max_hops is still served.
        r = self.hops.fetch(gen_path("hops-ok-x", 100), headers={"Via": ", ".join(vias[:self.HOPS])})
        self.assertWhole(r, "hops-ok-x", 100)


# ---------------------------------------------------------------- HTTPS parent

class HttpsParentTest(ParentCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.parent = cls.box("parent", tls_port=free_port())
        cls.parent.start()  # makes its CA, which the child's config names
        url = f"https://127.0.0.1:{cls.parent.tls_port}"
        cls.child = cls.box("child", parents=[url], upstream=f'ca_file = "{cls.parent.ca_path}"')
        cls.stranger = cls.box("stranger", parents=[url], upstream='connect_timeout = "2s"')
        cls.start_all(cls.child, cls.stranger)

    def test_misses_go_through_a_verified_https_parent(self):
        name, size = "tls-parent-a", 2 * MiB
        path = gen_path(name, size)
        r = self.child.fetch(path)
        self.assertWhole(r, name, size)
        self.assertEqual(len(cache_status_entries(r)), 2, f"through the parent: {r.header_list}")
        self.assertEqual(self.child_count(self.parent, path, 1), 1, "the parent saw the child's request")
        self.assertEqual(self.origin_count(path), 1)
        node = self.child.node("Parents", f"127.0.0.1:{self.parent.tls_port}")
        self.assertIsNotNone(node, self.child.status().get("Parents"))
        self.assertEqual(node["state"], "up", node)
        self.assertTrue(node["url"].startswith("https://"), node)
        self.assertGreaterEqual(self.parent.status()["TotalBytesReturnedToChildren"], size)

    def test_an_unverifiable_https_parent_is_skipped(self):
        name, size = "tls-parent-b", 64 * 1024
        path = gen_path(name, size)
        r = self.stranger.fetch(path, timeout=30)
        self.assertWhole(r, name, size)
        self.parent.settle_log()
        self.assertEqual(self.child_lines(self.parent, path), [],
                         "a parent whose certificate does not verify must not be used")
        self.assertEqual(self.origin_count(path), 1, "the box went to the origin itself")
        node = self.stranger.node("Parents", f"127.0.0.1:{self.parent.tls_port}")
        self.assertIsNotNone(node, self.stranger.status().get("Parents"))
        self.assertEqual(node["state"], "down", node)
        self.assertTrue(node["last_error"], node)


if __name__ == "__main__":
    unittest.main()
