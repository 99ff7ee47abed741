"""Generated content and header parsing for the black-box test origin.

Role: the pure functions behind origin.py's /gen/<size>/<name> answers: the
deterministic byte stream of a name (a repeating 1 MiB block seeded from the
name, see `expected_bytes` / `expected_sha256`, which tests use to check a
body), ETags, Vary/content variants (`variant_name`), Range / HTTP-date /
size parsing and `gen_path()` to build a target. No sockets, no threads.
Re-exported by origin.py.
"""

import email.utils
import functools
import hashlib
import random
import urllib.parse

BLOCK = 1 << 20            # the repeating unit of every generated stream
WRITE_SIZE = 256 << 10     # body write size
LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


# ---------------------------------------------------------------- content

@functools.lru_cache(maxsize=16)
def _block2(name):
    """Two copies of name's 1 MiB block back to back, so any slice of up to
    BLOCK bytes starting anywhere in the block is contiguous."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest(), "big")
    block = random.Random(seed).randbytes(BLOCK)
    return memoryview(block + block)


def stream_slice(name, offset, n):
    """n <= BLOCK bytes of name's stream starting at offset (a memoryview)."""
    assert 0 <= n <= BLOCK
    o = offset % BLOCK
    return _block2(name)[o:o + n]


def expected_bytes(name, size, offset=0):
    """The bytes /gen/<size>/<name> serves, from offset to size."""
    out = bytearray()
    pos = offset
    while pos < size:
        n = min(BLOCK - pos % BLOCK, size - pos)
        out += stream_slice(name, pos, n)
        pos += n
    return bytes(out)


@functools.lru_cache(maxsize=64)
def expected_sha256(name, size):
    """Hex sha256 of the whole body of /gen/<size>/<name> (computed cheaply)."""
    h = hashlib.sha256()
    block = _block2(name)[:BLOCK]
    full, rest = divmod(size, BLOCK)
    for _ in range(full):
        h.update(block)
    h.update(block[:rest])
    return h.hexdigest()


def etag_for(name, size):
    return '"' + hashlib.sha256(f"{name}:{size}".encode()).hexdigest()[:24] + '"'


def variant_name(name, value=None, content=None):
    """The stream name /gen/<size>/<name> serves for a content= tag and a
    vary= header value (None: header absent)."""
    if content:
        name = f"{name}#{content}"
    if value is not None:
        name = f"{name}|{value}"
    return name


def parse_range(value, size):
    """Parse a Range header against a body of `size` bytes.
    Returns None (ignore: malformed, not bytes, or several ranges),
    'unsatisfiable', or (first, last) inclusive."""
    if value is None:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if len(items) != 1:
        return None
    a, dash, b = items[0].partition("-")
    a, b = a.strip(), b.strip()
    if not dash:
        return None
    try:
        if a == "":
            n = int(b)
            if n < 0:
                return None
            if n == 0 or size == 0:
                return "unsatisfiable"
            return (max(0, size - n), size - 1)
        first = int(a)
        last = int(b) if b != "" else size - 1
    except ValueError:
        return None
    if first < 0 or (b != "" and last < first):
        return None
    if first >= size:
        return "unsatisfiable"
    return (first, min(last, size - 1))


def parse_http_date(text):
    """Seconds since the epoch, or None."""
    try:
        dt = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    return dt.timestamp()


def _opaque(tag):
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def parse_size(text):
    mult = {"k": KiB, "m": MiB, "g": GiB}
    t = text.strip().lower()
    for suffix in ("ib", "b"):
        if t.endswith(suffix) and len(t) > len(suffix) and t[-len(suffix) - 1] in mult:
            t = t[:-len(suffix)]
    if t and t[-1] in mult:
        return int(t[:-1]) * mult[t[-1]]
    return int(t)


def gen_path(name, size, **opts):
    """Build '/gen/<size>/<name>?k=v...' (options in the given order)."""
    path = f"/gen/{size}/{name}"
    if opts:
        path += "?" + urllib.parse.urlencode([(k, str(v)) for k, v in opts.items()])
    return path
