"""Who may use the box, and the limits on what a client may send (issue 12).
Each test sends the exact bytes of one refusal and checks the answer, its
JSON error and its counter in /metrics:

  - tokens with names and scopes: a read token cannot publish, an mdm token
    cannot delete (403 naming the scope needed), no or an unknown token is
    401, and the audit log names the token that made each change;
  - catalog.max_upload: a publish declaring more is 413 before a byte of
    its body is asked for (no 100 Continue);
  - access.allow_clients governs the proxy and the Macs' routes, and
    admin.allow_clients the admin API: a box allowing only 10.0.0.0/8
    refuses a loopback client on the proxy while its admin API answers;
  - a token over plain HTTP from another host is refused (403) unless
    admin.allow_plain_http; an MDM server outside the client ranges reaches
    the API when admin.allow_clients lets it (a reload applies each step);
  - server.max_uri_length -> 414, server.max_header_count and
    server.max_header_bytes -> 431, server.header_timeout -> 408,
    server.max_connections_per_client -> 503 with Retry-After: 1.

"Another host" stays on loopback: the box listens on 127.0.0.1 only,
`admin.local_clients = ["127.0.0.1/32"]` says which addresses are the box
itself, and the other host's requests leave from 127.0.0.2.
"""

import http.client
import json
import os
import signal
import socket
import ssl
import time
import unittest

from harness import Orchard, free_port, make_tempdir, remove_tempdir
from origin import Origin
from upload import api, pattern_piece, pattern_sha256, put_stream

ADMIN = "admin-token-0123456789"
READ = "read-token-0123456789ab"
MDM = "mdm-token-0123456789abc"
PUBLISH = "publish-token-0123456789"
HOST = "swcdn.apple.com"


OTHER_HOST = "127.0.0.2"  # another host, as far as admin.local_clients = ["127.0.0.1/32"] goes


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(v)


class Box(Orchard):
    """An orchardd whose whole config is `self.keys` ({"section.key": value})
    plus `self.tokens` ([[admin.tokens]] entries); reload() rewrites it and
    sends SIGHUP."""

    def __init__(self, origin_port, workdir, keys, tokens=(), listen=None):
        self.keys = dict(keys)
        self.tokens = list(tokens)
        self.listen = listen
        super().__init__(origin_port, workdir=workdir)

    def _write_config(self):
        keys = {
            "server.listen": self.listen(self.port) if self.listen else [f"127.0.0.1:{self.port}"],
            "storage.dir": self.state_dir,
            "storage.cache_limit": "1GiB",
            "upstream.allow": [HOST, "127.0.0.1"],
            "access.allow_clients": ["127.0.0.0/8"],
            "admin.token": ADMIN,
            "catalog.limit": "256MiB",
        }
        keys.update(self.keys)
        sections = {}
        for k, v in keys.items():
            sec, _, key = k.partition(".")
            sections.setdefault(sec, []).append((key, v))
        out = []
        for sec, items in sections.items():
            out.append(f"[{sec}]")
            out += [f"{key} = {toml_value(v)}" for key, v in items]
            if sec == "upstream":
                out.append(f'resolve = {{ "{HOST}" = "127.0.0.1:{self.origin_port}" }}')
            out.append("")
        for t in self.tokens:
            out.append("[[admin.tokens]]")
            out += [f"{k} = {toml_value(v)}" for k, v in t.items()]
            out.append("")
        with open(self.config_path, "w") as f:
            f.write("\n".join(out))

    def reload(self, **changes):
        for k, v in changes.items():
            key = k.replace("__", ".")
            if v is None:
                self.keys.pop(key, None)
            else:
                self.keys[key] = v
        self._write_config()
        before = len(self.stderr_text())
        os.kill(self.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            new = self.stderr_text()[before:]
            if "applied as config generation" in new:
                return new
            if "reload: refused" in new:
                raise AssertionError("reload refused:\n" + new)
            time.sleep(0.02)
        raise AssertionError("no reload outcome logged:\n" + self.stderr_text(tail=3000))


def call(ip, port, method, target, token=None, body=None, headers=None, host=None, source=None, tls=None):
    """One request on a fresh connection to ip:port (from address `source`,
    over HTTPS with the ssl context `tls`); (status, headers, JSON or text)."""
    src = (source, 0) if source else None
    if tls is not None:
        c = http.client.HTTPSConnection(ip, port, timeout=20, source_address=src, context=tls)
    else:
        c = http.client.HTTPConnection(ip, port, timeout=20, source_address=src)
    h = {"Host": host or f"{ip}:{port}"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    c.request(method, target, body=data, headers=h)
    r = c.getresponse()
    raw = r.read()
    c.close()
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = raw.decode("latin-1")
    return r.status, {k.lower(): v for k, v in r.getheaders()}, payload


def raw_exchange(port, data, timeout=5.0, ip="127.0.0.1"):
    """Sends `data` on one connection, reads until the box closes it (or
    `timeout`). Returns (bytes received, closed_by_peer, seconds taken)."""
    t0 = time.monotonic()
    s = socket.create_connection((ip, port), timeout=timeout)
    try:
        if data:
            s.sendall(data)
        out = b""
        while time.monotonic() - t0 < timeout:
            s.settimeout(max(0.05, timeout - (time.monotonic() - t0)))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return out, False, time.monotonic() - t0
            except ConnectionResetError:
                return out, True, time.monotonic() - t0
            if not chunk:
                return out, True, time.monotonic() - t0
            out += chunk
        return out, False, time.monotonic() - t0
    finally:
        s.close()


def parse_answer(raw):
    """(status, {header: value}, JSON body) of the first answer in raw bytes."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    try:
        payload = json.loads(body[:n])
    except ValueError:
        payload = body[:n]
    return status, headers, payload


def metric(box, name):
    _, _, text = call("127.0.0.1", box.port, "GET", "/metrics")
    for line in text.splitlines():
        if line.startswith(f"orchard_{name} "):
            return int(float(line.split()[1]))
    raise AssertionError(f"no metric orchard_{name}")


class BoxCase(unittest.TestCase):
    keys = {}
    tokens = ()
    listen = None
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        cls.box = Box(cls.origin.port, cls.tmp, cls.keys, cls.tokens, cls.listen)
        cls.addClassCleanup(cls.box.kill9)
        cls.addClassCleanup(cls.box.stop, expect_exit=0)
        cls.box.start()
        cls.port = cls.box.port

    def tearDown(self):
        if not self.box.alive():
            self.fail("orchardd died; stderr:\n" + self.box.stderr_text(tail=4000))

    def local(self, method, target, token=None, **kw):
        return call("127.0.0.1", self.port, method, target, token=token, **kw)


class Scopes(BoxCase):
    keys = {"catalog.max_upload": "1MiB"}
    tokens = [
        {"name": "viewer", "token": READ, "scope": "read"},
        {"name": "jamf", "token": MDM, "scope": "mdm"},
        {"name": "ci", "token": PUBLISH, "scope": "publish"},
    ]

    def publish(self, token, name="Tool", version="1.0", size=4096, seed="s"):
        h = {"Authorization": f"Bearer {token}", "X-Checksum-Sha256": pattern_sha256(seed, size)}
        return put_stream(self.port, f"/api/v1/packages/{name}/{version}/{name}.dmg?bundle_id=com.example.{name}",
                          size, pattern_piece(seed), headers=h)

    def test_read_token_cannot_publish_and_mdm_token_cannot_delete(self):
        denied = metric(self.box, "scope_denied_total")
        status, headers, body, got_continue = self.publish(READ)
        self.assertEqual(status, 403, body)
        self.assertFalse(got_continue, "a refused publish must not be asked for its body")
        self.assertEqual(body["error"], "Forbidden")
        self.assertEqual(body["detail"],
                         'this route needs a token with the publish scope (or admin); token "viewer" has read')
        self.assertIn('scope="publish"', headers.get("www-authenticate", ""))
        # The publish token can; then the mdm token cannot delete it, admin can.
        status, _, body, _ = self.publish(PUBLISH)
        self.assertEqual(status, 201, body)
        status, _, body = self.local("DELETE", "/api/v1/packages/Tool/1.0", token=MDM)
        self.assertEqual(status, 403, body)
        self.assertEqual(body["detail"], 'this route needs a token with the admin scope; token "jamf" has mdm')
        self.assertEqual(self.local("GET", "/api/v1/packages/Tool", token=READ)[0], 200)  # still there
        self.assertEqual(metric(self.box, "scope_denied_total"), denied + 2)
        status, _, body = self.local("DELETE", "/api/v1/packages/Tool/1.0", token=ADMIN)
        self.assertEqual(status, 200, body)

    def test_each_scope_on_its_routes(self):
        dev = {"groups": ["finance"], "os_version": "14.5", "arch": "arm64"}
        cases = [
            # (token, method, target, body, status)
            (READ, "GET", "/api/v1/packages", None, 200),
            (READ, "GET", "/api/v1/devices", None, 200),
            (READ, "GET", "/api/v1/audit", None, 200),
            (READ, "PUT", "/api/v1/devices/C02READ0001", dev, 403),
            (MDM, "PUT", "/api/v1/devices/C02MDM00001", dev, 201),
            (MDM, "GET", "/api/v1/devices/C02MDM00001/installs", None, 200),
            (MDM, "GET", "/api/v1/devices/C02MDM00001/declarations", None, 200),
            (MDM, "PUT", "/api/v1/rings", {"rings": [{"name": "all", "percent": 100}]}, 403),
            (MDM, "DELETE", "/api/v1/devices/C02MDM00001", None, 403),
            (PUBLISH, "PUT", "/api/v1/devices/C02PUB00001", dev, 403),
            (PUBLISH, "DELETE", "/api/v1/pins/Tool", None, 403),
            (ADMIN, "DELETE", "/api/v1/devices/C02MDM00001", None, 200),
        ]
        for token, method, target, body, want in cases:
            with self.subTest(token=token, method=method, target=target):
                status, _, answer = self.local(method, target, token=token, body=body)
                self.assertEqual(status, want, answer)
                if want == 403:
                    self.assertIn("this route needs a token with the", answer["detail"])

    def test_no_or_unknown_token_is_401(self):
        before = metric(self.box, "unauthorized_total")
        status, headers, body = self.local("GET", "/api/v1/packages")
        self.assertEqual(status, 401, body)
        self.assertEqual(headers.get("www-authenticate"), "Bearer")
        status, headers, body = self.local("GET", "/api/v1/packages", token=READ + "x")
        self.assertEqual(status, 401, body)
        self.assertIn("invalid_token", headers.get("www-authenticate"))
        status, _, _ = self.local("GET", "/api/v1/packages", token=READ[:-1])
        self.assertEqual(status, 401)
        self.assertEqual(metric(self.box, "unauthorized_total"), before + 3)

    def test_audit_names_the_token(self):
        status, _, body, _ = self.publish(PUBLISH, name="Audited", seed="a")
        self.assertEqual(status, 201, body)
        status, _, body = self.local("PUT", "/api/v1/devices/C02AUDIT0001", token=MDM, body={"groups": ["x"]})
        self.assertEqual(status, 201, body)
        status, _, body = self.local("GET", "/api/v1/audit?limit=1000", token=READ)
        self.assertEqual(status, 200, body)
        by = {(e["action"], e["object"]): e["token"] for e in body["entries"]}
        self.assertEqual(by[("publish", "Audited/1.0")], "ci")
        self.assertEqual(by[("device-add", "device/C02AUDIT0001")], "jamf")

    def test_upload_over_max_upload_is_413_before_the_body(self):
        before = metric(self.box, "uploads_too_large_total")
        status, _, body, got_continue = self.publish(PUBLISH, name="Big", size=1024 * 1024 + 1, seed="b")
        self.assertEqual(status, 413, body)
        self.assertFalse(got_continue)
        self.assertEqual(body["detail"], "the package is 1048577 bytes; catalog.max_upload allows at most 1048576")
        self.assertEqual(metric(self.box, "uploads_too_large_total"), before + 1)
        # Exactly the limit is taken.
        status, _, body, _ = self.publish(PUBLISH, name="Big", size=1024 * 1024, seed="b")
        self.assertEqual(status, 201, body)


class ProxyClients(BoxCase):
    """A box allowing only 10.0.0.0/8 as clients: its loopback client is
    refused on the proxy and the Macs' routes, not on the admin API when
    admin.allow_clients lets it in."""
    keys = {"access.allow_clients": ["10.0.0.0/8"], "admin.allow_clients": ["127.0.0.0/8"]}

    def test_loopback_client_refused_on_the_proxy(self):
        denied = metric(self.box, "denied_total")
        raw, _, _ = raw_exchange(self.port, f"GET /gen/4096/a HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        status, _, body = parse_answer(raw)
        self.assertEqual(status, 403)
        self.assertEqual(body["detail"], "client address not allowed")
        raw, _, _ = raw_exchange(self.port, f"GET /gen/4096/a?source={HOST} HTTP/1.1\r\nHost: box\r\n\r\n".encode())
        self.assertEqual(parse_answer(raw)[0], 403)
        self.assertEqual(self.origin.count("/gen/"), 0, "a refused client must not reach the origin")
        # The Macs' routes follow access.allow_clients too.
        status, _, body = self.local("GET", "/pkgs/Tool/1.0/Tool.pkg")
        self.assertEqual(status, 403, body)
        self.assertEqual(metric(self.box, "denied_total"), denied + 3)

    def test_admin_api_answers_by_its_own_list(self):
        self.assertEqual(self.local("GET", "/api/v1/status")[0], 200)
        self.assertEqual(self.local("GET", "/api/v1/packages", token=ADMIN)[0], 200)


class PlainHttpFromAnotherHost(BoxCase):
    ip = OTHER_HOST
    tls_port = free_port()
    keys = {"access.allow_clients": ["127.0.0.0/8"], "admin.local_clients": ["127.0.0.1/32"],
            "tls.listen": [f"127.0.0.1:{tls_port}"]}
    tokens = [{"name": "jamf", "token": MDM, "scope": "mdm"}]

    def outside(self, method, target, token=None, **kw):
        return call("127.0.0.1", self.port, method, target, token=token, source=OTHER_HOST, **kw)

    def test_steps(self):
        # 1. Tokens over plain HTTP from another host: refused, right or wrong.
        before = metric(self.box, "plain_http_tokens_total")
        for token in (MDM, "not-a-token-at-all-here"):
            status, _, body = self.outside("GET", "/api/v1/devices", token=token)
            self.assertEqual(status, 403, body)
            self.assertEqual(body["detail"], "tokens are not accepted over plain HTTP from other hosts; use HTTPS "
                                             "or set admin.allow_plain_http")
        self.assertEqual(metric(self.box, "plain_http_tokens_total"), before + 2)
        # Without a token the open documents answer, and from the box itself the token is taken.
        self.assertEqual(self.outside("GET", "/api/v1/status")[0], 200)
        self.assertEqual(self.local("GET", "/api/v1/devices", token=MDM)[0], 200)

        # 2. admin.allow_plain_http: the token is taken from another host (scopes still apply).
        self.box.reload(admin__allow_plain_http=True)
        self.assertEqual(self.outside("GET", "/api/v1/devices", token=MDM)[0], 200)
        self.assertEqual(self.outside("DELETE", "/api/v1/devices/X", token=MDM)[0], 403)

        # 3. admin.allow_clients without that host: the API refuses it, its Macs' routes do not.
        self.box.reload(admin__allow_clients=["127.0.0.1/32"])
        admin_denied = metric(self.box, "admin_denied_total")
        status, _, body = self.outside("GET", "/api/v1/devices", token=MDM)
        self.assertEqual(status, 403, body)
        self.assertEqual(body["detail"], "client address not in admin.allow_clients")
        self.assertEqual(self.outside("GET", "/metrics")[0], 403)
        self.assertEqual(self.outside("GET", "/pkgs/Tool/1.0/Tool.pkg")[0], 404)  # reached: no such package
        self.assertEqual(metric(self.box, "admin_denied_total"), admin_denied + 2)

        # 4. An MDM server outside the branch's client ranges: no proxy, but the API.
        self.box.reload(access__allow_clients=["127.0.0.1/32"], admin__allow_clients=[f"{self.ip}/32"])
        status, _, body = self.outside("GET", "/gen/4096/m", host=HOST)
        self.assertEqual(status, 403, body)
        self.assertEqual(self.outside("GET", "/api/v1/devices", token=MDM)[0], 200)
        status, _, body = self.outside("PUT", "/api/v1/devices/C02OUTSIDE01", token=MDM, body={"groups": ["a"]})
        self.assertEqual(status, 201, body)
        # ... and the loopback admin is now outside admin.allow_clients itself.
        self.assertEqual(self.local("GET", "/api/v1/devices", token=ADMIN)[0], 403)

        # 5. Empty admin.allow_clients: any address with a token (the token decides);
        #    the open documents follow access.allow_clients.
        self.box.reload(admin__allow_clients=[])
        self.assertEqual(self.outside("GET", "/api/v1/devices", token=MDM)[0], 200)
        self.assertEqual(self.outside("GET", "/api/v1/devices")[0], 401)
        self.assertEqual(self.outside("GET", "/metrics")[0], 403)
        self.assertEqual(self.local("GET", "/metrics")[0], 200)

        # 6. Over HTTPS the token is taken from another host without admin.allow_plain_http.
        self.box.reload(admin__allow_plain_http=False, access__allow_clients=["127.0.0.0/8"])
        self.assertEqual(self.outside("GET", "/api/v1/devices", token=MDM)[0], 403)
        ctx = ssl.create_default_context(cafile=os.path.join(self.box.state_dir, "tls", "ca.pem"))
        status, _, body = call("127.0.0.1", self.tls_port, "GET", "/api/v1/devices", token=MDM, source=OTHER_HOST,
                               tls=ctx)
        self.assertEqual(status, 200, body)


class Limits(BoxCase):
    keys = {"server.max_uri_length": "1KiB", "server.max_header_count": 20, "server.max_header_bytes": "4KiB",
            "server.header_timeout": "1s"}

    def refused(self, data, status):
        raw, closed, _ = raw_exchange(self.port, data)
        got, headers, body = parse_answer(raw)
        self.assertEqual(got, status, raw[:300])
        self.assertTrue(closed, "the connection must close after the refusal")
        self.assertEqual(headers.get("content-type"), "application/json")
        return body

    def test_uri_too_long_is_414(self):
        before = metric(self.box, "uri_too_long_total")
        target = "/" + "a" * 1024  # 1025 bytes
        body = self.refused(f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode(), 414)
        self.assertEqual(body["detail"], "request target longer than server.max_uri_length (1024 bytes)")
        self.assertEqual(metric(self.box, "uri_too_long_total"), before + 1)
        # Exactly the limit gets through to the proxy.
        raw, _, _ = raw_exchange(self.port, f"GET /{'a' * 1023} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
                                 .encode())
        self.assertNotEqual(parse_answer(raw)[0], 414)

    def test_too_many_fields_is_431(self):
        before = metric(self.box, "heads_too_large_total")
        fields = "".join(f"X-F{i}: v\r\n" for i in range(20))  # with Host: 21
        body = self.refused(f"GET /gen/10/f HTTP/1.1\r\nHost: {HOST}\r\n{fields}\r\n".encode(), 431)
        self.assertEqual(body["detail"], "request head over server.max_header_bytes (4096 bytes) or "
                                         "server.max_header_count (20 fields)")
        fields = "".join(f"X-F{i}: v\r\n" for i in range(18))  # with Host and Connection: 20
        raw, _, _ = raw_exchange(self.port, f"GET /api/v1/status HTTP/1.1\r\nHost: box\r\n{fields}"
                                 "Connection: close\r\n\r\n".encode())
        self.assertEqual(parse_answer(raw)[0], 200)
        self.assertEqual(metric(self.box, "heads_too_large_total"), before + 1)

    def test_head_over_max_header_bytes_is_431(self):
        before = metric(self.box, "heads_too_large_total")
        self.refused(f"GET /gen/10/b HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {'v' * 4096}\r\n\r\n".encode(), 431)
        self.assertEqual(metric(self.box, "heads_too_large_total"), before + 1)

    def test_slow_head_gets_408(self):
        before = metric(self.box, "header_timeouts_total")
        # Half a head, then nothing: 408 after server.header_timeout (1 s), then close.
        raw, closed, took = raw_exchange(self.port, f"GET /gen/10/s HTTP/1.1\r\nHost: {HOST}\r\n".encode(), timeout=6)
        status, _, body = parse_answer(raw)
        self.assertEqual(status, 408, raw)
        self.assertEqual(body["detail"], "no whole request head within server.header_timeout")
        self.assertTrue(closed)
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 4.0)
        # Connected and silent: the same.
        raw, closed, took = raw_exchange(self.port, b"", timeout=6)
        self.assertEqual(parse_answer(raw)[0], 408)
        self.assertTrue(closed)
        self.assertEqual(metric(self.box, "header_timeouts_total"), before + 2)

    def test_idle_keep_alive_is_not_a_slow_head(self):
        # Between requests server.idle_timeout (60 s) is in charge: a pause
        # longer than header_timeout before the next request is fine.
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            req = b"GET /api/v1/status HTTP/1.1\r\nHost: box\r\n\r\n"
            for _ in range(2):
                s.sendall(req)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += s.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                self.assertIn(b" 200 ", head.split(b"\r\n")[0])
                n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
                while len(rest) < n:
                    rest += s.recv(65536)
                time.sleep(1.5)
        finally:
            s.close()


class PerClientConnections(BoxCase):
    keys = {"server.max_connections_per_client": 4}

    def test_fifth_connection_gets_503_with_retry_after(self):
        before = metric(self.box, "client_limit_refusals_total")
        held = [socket.create_connection(("127.0.0.1", self.port), timeout=5) for _ in range(4)]
        try:
            # Make sure all four are accepted (a request on each answers).
            for s in held:
                s.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: box\r\n\r\n")
                self.assertIn(b" 200 ", s.recv(65536).split(b"\r\n")[0])
            # The fifth, its request sent at once (the answer is written at
            # accept, before it is read).
            raw, closed, _ = raw_exchange(self.port, b"GET /api/v1/status HTTP/1.1\r\nHost: box\r\n\r\n")
            status, headers, body = parse_answer(raw)
            self.assertEqual(status, 503, raw)
            self.assertEqual(headers.get("retry-after"), "1")
            self.assertIn("server.max_connections_per_client (4)", body["detail"])
            self.assertTrue(closed)
        finally:
            held.pop().close()
        # One closed: a new connection is served again (once the box has seen the close).
        deadline = time.monotonic() + 5
        early = 0  # refused because the box had not seen the close yet: counted too
        while True:
            raw, _, _ = raw_exchange(self.port, b"GET /api/v1/status HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n")
            if parse_answer(raw)[0] == 200 or time.monotonic() > deadline:
                break
            early += 1
            time.sleep(0.05)
        self.assertEqual(parse_answer(raw)[0], 200)
        for s in held:
            s.close()
        self.assertEqual(metric(self.box, "client_limit_refusals_total"), before + 1 + early)


if __name__ == "__main__":
    unittest.main(verbosity=2)
