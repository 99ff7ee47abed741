"""Ranges, HEAD and client conditionals on a stored object, checked from
outside (issue 3, "Done when": a 5 MB object: range, suffix range,
multi-range, 416, HEAD and client 304 are all answered from the store with
one origin request in total).

StoredObjectTest: one 5 000 000-byte object is fetched whole once (a miss)
in setUpClass; every test then sends one kind of request for it and checks
the answer (status, Content-Range, bytes), that it came from the store
(Cache-Status `orchard; hit...`) and that the origin has still seen exactly
one request for it.

ColdRangeTest: a range request on a cold 8 MiB object (range inside the
first MiB) gets the right 206 bytes, and the object then becomes a hit
(the rest of it filled behind the range)."""

import re
import time
import unittest

from harness import OrchardCase, expected_bytes, gen_path, MiB
from origin import LAST_MODIFIED

SIZE = 5_000_000
NAME = "ranges-5mb"


def parse_content_range(value):
    """'bytes a-b/len' -> (a, b, len); raises on anything else."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not m:
        raise ValueError(f"bad Content-Range {value!r}")
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)), total


def parse_multipart_byteranges(content_type, body):
    """Split a multipart/byteranges body into [(headers dict, data)].
    Raises ValueError if the framing is wrong."""
    m = re.search(r'boundary="?([^";,]+)"?', content_type or "", re.I)
    if not content_type or not content_type.lower().startswith("multipart/byteranges") or not m:
        raise ValueError(f"not multipart/byteranges with a boundary: {content_type!r}")
    delim = b"--" + m.group(1).encode("latin-1")
    pos = body.find(delim)
    if pos < 0:
        raise ValueError("no first boundary in the body")
    parts = []
    while True:
        pos += len(delim)
        if body[pos:pos + 2] == b"--":
            return parts  # close delimiter
        if body[pos:pos + 2] != b"\r\n":
            raise ValueError(f"boundary not followed by CRLF at {pos}")
        pos += 2
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            raise ValueError("part headers not terminated")
        headers = {}
        for line in body[pos:head_end].decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        data_start = head_end + 4
        cr = headers.get("content-range")
        if cr is None:
            raise ValueError(f"part without Content-Range: {headers}")
        a, b, _ = parse_content_range(cr)
        data_end = data_start + (b - a + 1)
        if body[data_end:data_end + 2 + len(delim)] != b"\r\n" + delim:
            raise ValueError(f"part {len(parts)} ({cr}) not followed by CRLF + boundary")
        parts.append((headers, body[data_start:data_end]))
        pos = data_end + 2


class StoredObjectTest(OrchardCase):
    path = gen_path(NAME, SIZE)
    data = None
    etag = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data = expected_bytes(NAME, SIZE)
        r = cls.orchard.get(cls.path)
        assert r.status == 200 and r.complete and r.body == cls.data, f"first GET failed: {r}"
        cls.first = r
        cls.etag = r.header("etag")
        # Committed once the last byte is on disk: wait (bounded) for a hit.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            r = cls.orchard.get(cls.path, keep_body=False)
            if r.is_hit():
                break
            time.sleep(0.05)

    def setUp(self):
        super().setUp()
        self.assertIsNotNone(self.etag, f"the origin's ETag did not reach the client: "
                                        f"{self.first.header_list}")

    def tearDown(self):
        super().tearDown()
        self.assertEqual(self.origin.count(self.path), 1,
                         "the stored object must be answered from the store: origin requests "
                         f"{[(r.method, r.headers.get('range'), r.headers.get('if-none-match')) for r in self.origin.matching(self.path)]}")

    def ask(self, method="GET", **headers):
        hdrs = [("Host", "swcdn.apple.com")] + [(k.replace("_", "-"), v) for k, v in headers.items()]
        return self.orchard.request(method, self.path, hdrs)

    def assertFromStore(self, r):
        self.assertTrue(r.is_hit(), f"expected Cache-Status 'orchard; hit...': {r} {r.header_list}")

    def assertRange(self, r, first, last):
        self.assertEqual(r.status, 206, f"{r} {r.header_list}")
        self.assertTrue(r.complete, r)
        self.assertEqual(parse_content_range(r.header("content-range")), (first, last, SIZE),
                         r.header_list)
        self.assertEqual(int(r.header("content-length", "-1")), last - first + 1, r.header_list)
        self.assertEqual(r.length, last - first + 1, r)
        self.assertTrue(r.body == self.data[first:last + 1], "range bytes differ from the origin's")

    # -- the stored object itself

    def test_full_get_is_hit_with_accept_ranges(self):
        """Claim: the whole object is a hit and advertises Accept-Ranges: bytes."""
        r = self.ask()
        self.assertWhole(r, NAME, SIZE)
        self.assertHit(r)
        self.assertEqual(r.header("accept-ranges", "").lower(), "bytes", r.header_list)

    # -- single ranges

    def test_single_range(self):
        """Claim: `bytes=a-b` -> 206, Content-Range a-b/5000000, those bytes, from the store."""
        r = self.ask(Range="bytes=1000000-1999999")
        self.assertRange(r, 1_000_000, 1_999_999)
        self.assertFromStore(r)

    def test_single_range_past_end_is_clamped(self):
        """Claim: a last-byte-pos past the end is clamped to the length (RFC 9110 14.1.1)."""
        r = self.ask(Range="bytes=4999000-9999999")
        self.assertRange(r, 4_999_000, SIZE - 1)
        self.assertFromStore(r)

    def test_suffix_range(self):
        """Claim: `bytes=-500` -> the last 500 bytes."""
        r = self.ask(Range="bytes=-500")
        self.assertRange(r, SIZE - 500, SIZE - 1)
        self.assertFromStore(r)

    def test_open_range(self):
        """Claim: `bytes=N-` -> from N to the end."""
        r = self.ask(Range="bytes=4000000-")
        self.assertRange(r, 4_000_000, SIZE - 1)
        self.assertFromStore(r)

    # -- multiple ranges

    def test_multi_range(self):
        """Claim: several ranges -> 206 multipart/byteranges; each part has the
        right Content-Range and bytes, in the order asked."""
        want = [(0, 99), (1_000_000, 1_000_999), (SIZE - 100, SIZE - 1)]
        r = self.ask(Range="bytes=0-99,1000000-1000999,-100")
        self.assertEqual(r.status, 206, f"{r} {r.header_list}")
        self.assertTrue(r.complete, r)
        self.assertFromStore(r)
        self.assertIsNone(r.header("content-range"),
                          "a multipart answer has no top-level Content-Range")
        try:
            parts = parse_multipart_byteranges(r.header("content-type"), r.body)
        except ValueError as e:
            self.fail(f"bad multipart/byteranges answer: {e}; headers {r.header_list}; "
                      f"body starts {r.body[:300]!r}")
        self.assertEqual(len(parts), len(want), [h for h, _ in parts])
        for (headers, data), (a, b) in zip(parts, want):
            with self.subTest(part=f"{a}-{b}"):
                self.assertEqual(parse_content_range(headers.get("content-range")), (a, b, SIZE),
                                 headers)
                self.assertTrue(data == self.data[a:b + 1], f"part {a}-{b}: bytes differ")
        cl = r.header("content-length")
        if cl is not None:
            self.assertEqual(int(cl), r.length, r.header_list)

    # -- unsatisfiable

    def test_unsatisfiable_range_is_416(self):
        """Claim: a range starting at/after the end -> 416 with `Content-Range: bytes */5000000`."""
        r = self.ask(Range="bytes=5000000-")
        self.assertEqual(r.status, 416, f"{r} {r.header_list}")
        self.assertEqual((r.header("content-range") or "").strip(), f"bytes */{SIZE}", r.header_list)
        self.assertTrue(r.complete, r)

    # -- HEAD

    def test_head(self):
        """Claim: HEAD -> 200, Content-Length 5000000, no body, from the store."""
        r = self.ask("HEAD")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(int(r.header("content-length", "-1")), SIZE, r.header_list)
        self.assertEqual(r.length, 0)
        self.assertFromStore(r)
        self.assertEqual(r.header("etag"), self.etag, r.header_list)

    def test_head_no_body_bytes_on_the_wire(self):
        """Claim: after a HEAD the connection carries no body bytes (a
        keep-alive GET on the same socket parses cleanly)."""
        import socket
        s = socket.create_connection(("127.0.0.1", self.orchard.port), timeout=10)
        try:
            req = (f"HEAD {self.path} HTTP/1.1\r\nHost: swcdn.apple.com\r\n\r\n"
                   f"GET {self.path} HTTP/1.1\r\nHost: swcdn.apple.com\r\nRange: bytes=0-9\r\n"
                   "Connection: close\r\n\r\n").encode()
            s.sendall(req)
            buf = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
        finally:
            s.close()
        first_end = buf.find(b"\r\n\r\n")
        self.assertGreater(first_end, 0, buf[:200])
        rest = buf[first_end + 4:]
        self.assertTrue(rest.startswith(b"HTTP/1.1 206"),
                        f"after the HEAD's head the next bytes must be the GET's status line: {rest[:80]!r}")
        self.assertTrue(rest.endswith(self.data[:10]), rest[-40:])

    # -- client conditionals

    def test_if_none_match_304(self):
        """Claim: `If-None-Match: <etag>` -> 304 from the store, with the ETag."""
        r = self.ask(If_None_Match=self.etag)
        self.assertEqual(r.status, 304, f"{r} {r.header_list}")
        self.assertEqual(r.length, 0)
        self.assertFromStore(r)
        self.assertEqual(r.header("etag"), self.etag, r.header_list)

    def test_if_none_match_other_etag_200(self):
        """Claim: `If-None-Match` with another ETag -> 200 whole, from the store."""
        r = self.ask(If_None_Match='"something-else"')
        self.assertWhole(r, NAME, SIZE)
        self.assertFromStore(r)

    def test_if_modified_since_304(self):
        """Claim: `If-Modified-Since: <Last-Modified>` -> 304 from the store."""
        r = self.ask(If_Modified_Since=LAST_MODIFIED)
        self.assertEqual(r.status, 304, f"{r} {r.header_list}")
        self.assertEqual(r.length, 0)
        self.assertFromStore(r)

    def test_if_modified_since_older_200(self):
        """Claim: `If-Modified-Since` before Last-Modified -> 200 whole, from the store."""
        r = self.ask(If_Modified_Since="Sat, 01 Jan 2000 00:00:00 GMT")
        self.assertWhole(r, NAME, SIZE)
        self.assertFromStore(r)

    # -- If-Range

    def test_if_range_matching_etag_206(self):
        """Claim: Range + `If-Range: <current etag>` -> 206 with the range."""
        r = self.ask(Range="bytes=100-199", If_Range=self.etag)
        self.assertRange(r, 100, 199)
        self.assertFromStore(r)

    def test_if_range_wrong_etag_200_whole(self):
        """Claim: Range + `If-Range: <another etag>` -> 200 with the whole object."""
        r = self.ask(Range="bytes=100-199", If_Range='"not-the-etag"')
        self.assertWhole(r, NAME, SIZE)
        self.assertFromStore(r)
        self.assertIsNone(r.header("content-range"), r.header_list)


class ColdRangeTest(OrchardCase):

    def test_range_on_cold_object_then_hit(self):
        """Claim: a range (inside the first MiB) on a cold 8 MiB object -> the
        right 206 bytes; afterwards the whole object is a hit."""
        name, size = "ranges-cold-8mib", 8 * MiB
        path = gen_path(name, size)
        first, last = 300_000, 799_999
        r = self.get(path, headers={"Range": f"bytes={first}-{last}"})
        self.assertEqual(r.status, 206, f"{r} {r.header_list}")
        self.assertTrue(r.complete, r)
        self.assertEqual(parse_content_range(r.header("content-range")), (first, last, size),
                         r.header_list)
        self.assertTrue(r.body == expected_bytes(name, size)[first:last + 1],
                        "cold range bytes differ from the origin's")
        self.assertFalse(r.is_hit(), f"a cold object cannot be a hit: {r.cache_status!r}")
        # The rest fills behind the range: bounded wait for the whole object to be a hit.
        self.origin.wait_idle(path, min_bytes=size, timeout=20)
        self.get_hit(path, name, size, grace=5.0)
        reqs = [(q.method, q.range, q.if_range) for q in self.origin.matching(path)]
        print(f"\n  cold range: origin requests for the object: {reqs}; "
              f"bytes sent {self.origin.bytes_sent(path)}")
        self.assertLessEqual(self.origin.bytes_sent(path), 2 * size, reqs)


if __name__ == "__main__":
    unittest.main()
