#!/usr/bin/env python3
"""Writes corpus/object_meta/*.bin: ObjectMeta records in format versions 2
(no block checksums) and 3 (with them; see cache/object_meta.cc), the seeds
of the object_meta fuzz target.
Run from tests/fuzz/; the output is committed, rerun only when the format
changes."""
import os


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def svarint(v):
    return varint(((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF)


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return varint(len(b)) + b


def meta(key, status=200, reason="OK", size=0, headers=(), etag="", lm="", req=0, resp=0, access=0,
         kind=0, gen=0, block_size=0, blocks=b"", vary="", sums=None):
    # sums: None = version 2; else the checksums as encoded (Complete: one per
    # block; Partial: one per block set in `blocks`), version 3.
    out = bytes([2 if sums is None else 3]) + s(key) + varint(status) + s(reason) + varint(size) + varint(len(headers))
    for n, v in headers:
        out += s(n) + s(v)
    out += s(etag) + s(lm) + svarint(req) + svarint(resp) + svarint(access)
    out += bytes([kind]) + varint(gen) + varint(block_size) + s(blocks) + s(vary)
    if sums is not None:
        out += varint(len(sums)) + b"".join(x.to_bytes(8, "little") for x in sums)
    return out


seeds = {
    "complete.bin": meta("http://swcdn.apple.com/content/x.pkg", size=12 << 30,
                         headers=[("Content-Type", "application/octet-stream"), ("Cache-Control", "max-age=3600"),
                                  ("Date", "Tue, 14 Nov 2023 22:13:21 GMT")],
                         etag='"abc123"', lm="Tue, 14 Nov 2023 22:13:20 GMT", req=1700000000, resp=1700000001,
                         access=-5, gen=7),
    "partial.bin": meta("http://origin.test/big", size=10 * 65536 + 1, kind=1, gen=3, block_size=65536,
                        blocks=b"\xff\x05", headers=[("ETag", '"b"')], req=1700000000, resp=1700000000),
    "varystub.bin": meta("http://origin.test/vary", kind=2, vary="accept-encoding,x-fuzz",
                         headers=[("Vary", "Accept-Encoding, X-Fuzz")]),
    "empty.bin": meta(""),
    "heuristic.bin": meta("http://h/p", status=404, reason="Not Found", size=5,
                          headers=[("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"), ("Age", "100"),
                                   ("Expires", "Sun, 06 Nov 1994 08:49:37 GMT"), ("Vary", "*")],
                          req=1699990000, resp=1699990002, access=1699990002),
    "times.bin": meta("http://h/t", headers=[("Cache-Control", "stale-while-revalidate=10, stale-if-error=99")],
                      req=1700000000, resp=1699999990, access=-(1 << 40)),
    "complete-sums.bin": meta("http://swcdn.apple.com/content/y.pkg", size=3 * 65536 + 7, etag='"s"', gen=9,
                              block_size=65536, sums=[0x0123456789ABCDEF, 0, 0xFFFFFFFFFFFFFFFF, 42]),
    "partial-sums.bin": meta("http://origin.test/big2", size=10 * 65536 + 1, kind=1, gen=4, block_size=65536,
                             blocks=b"\x05\x04", headers=[("ETag", '"c"')], req=1700000000, resp=1700000000,
                             sums=[1, 2, 3]),
    # Reproducer (fails until fixed): times far apart overflow currentAge().
    "repro-age-overflow.bin": meta("", req=-(1 << 62), resp=1 << 62),
}
os.makedirs("corpus/object_meta", exist_ok=True)
for stale in ("bigtimes.bin",):
    if os.path.exists(os.path.join("corpus/object_meta", stale)):
        os.remove(os.path.join("corpus/object_meta", stale))
for name, data in seeds.items():
    with open(os.path.join("corpus/object_meta", name), "wb") as f:
        f.write(data)
