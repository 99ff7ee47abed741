"""Black-box: SIGHUP reloads the config file (issue 8, item 6: config snapshots).

Role: for every key the parameter table marks reloadable, start orchardd on a
config file, change that one key, send SIGHUP and observe the new behaviour
from outside (a status, a refused or closed connection, a log line, an origin
that is or is not asked). Plus: a file with problems keeps the old config
(behaviour unchanged, counted in orchard_config_reload_failures_total and
logged), a restart-only key is logged "<key> changed: needs a restart" and
keeps its value, and a request in flight across a reload finishes on the
snapshot it started with.

Keys that nothing consumes yet (tls.certificate, tls.private_key,
upstream.ca_file, admin.token, admin.token_file) are observed here as far as
the outside can: the reload is applied and names the key, and a token file
that cannot be read refuses it. That the running snapshot holds their new
values is checked in-process by tests/integration/reload_test.cc
(Server::snapshot()).

Every orchardd and origin listens on 127.0.0.1; each test starts its own
orchardd (one worker) with short timeouts so the file stays well under a
minute.
"""

import http.server
import os
import subprocess
import re
import signal
import socket
import threading
import time
import unittest

from harness import Orchard, make_tempdir, remove_tempdir, request, gen_path, MiB
from origin import Origin

HOST = "swcdn.apple.com"


# ---------------------------------------------------------------- a counting origin

class CountingOrigin:
    """Answers every GET with 200, `Cache-Control: no-store` and its name as
    the body (keep-alive), and counts the connections it accepted."""

    def __init__(self, name):
        self.name = name.encode()
        self.connections = 0
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.requests += 1
                self.send_response(200)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(outer.name)))
                self.end_headers()
                self.wfile.write(outer.name)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, req, addr):
                outer.connections += 1
                super().process_request(req, addr)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- an orchardd whose file the test rewrites

class Box(Orchard):
    """orchardd on a config rendered from `keys` ({"server.idle_timeout":
    '"60s"', ...}: TOML value literals), one worker, its own state dir."""

    def __init__(self, origin_port, keys):
        self.keys = {}
        self.raw = None  # when set, written verbatim instead of the keys
        super().__init__(origin_port)
        self.keys = {
            "server.listen": f'["127.0.0.1:{self.port}"]',
            "server.workers": "1",
            "storage.dir": f'"{self.state_dir}"',
            "storage.cache_limit": '"64MiB"',
            "upstream.allow": f'["{HOST}"]',
            "upstream.resolve": f'{{ "{HOST}" = "127.0.0.1:{origin_port}" }}',
            "access.allow_clients": '["127.0.0.0/8"]',
        }
        self.keys.update(keys)
        self._write_config()

    def _write_config(self):
        if not getattr(self, "keys", None):
            return  # Orchard.__init__: the keys come next
        if self.raw is not None:
            text = self.raw
        else:
            sections = {}
            for k, v in self.keys.items():
                s, name = k.split(".", 1)
                if k == "server.listen":
                    v = f'["127.0.0.1:{self.port}"]'
                sections.setdefault(s, []).append(f"{name} = {v}")
            text = "".join(f"[{s}]\n" + "\n".join(lines) + "\n\n" for s, lines in sections.items())
        with open(self.config_path, "w") as f:
            f.write(text)

    def metric(self, name):
        r = request(self.port, "GET", "/metrics", [("Host", self.host)])
        assert r.status == 200, r
        for line in r.body.decode().splitlines():
            if line.startswith(f"orchard_{name} "):
                return int(float(line.split()[1]))
        raise AssertionError(f"no metric orchard_{name}")

    def status(self):
        import json
        r = request(self.port, "GET", "/api/v1/status", [("Host", self.host)])
        assert r.status == 200, r
        return json.loads(r.body)

    def reload(self, expect_ok=True, timeout=10.0, by_metric=False, **changes):
        """Rewrites the file with `changes` (key with dots as __: server__idle_timeout;
        None removes a key), sends SIGHUP and waits for the outcome's log line
        (by_metric: for orchard_config_reloads_total to grow instead, when the
        new log level hides the line). Returns the log written meanwhile."""
        for k, v in changes.items():
            key = k.replace("__", ".")
            if v is None:
                self.keys.pop(key, None)
            else:
                self.keys[key] = v
        self._write_config()
        before = len(self.stderr_text())
        count = self.metric("config_reloads_total") if by_metric else 0
        os.kill(self.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if by_metric:
                if self.metric("config_reloads_total") > count:
                    return self.stderr_text()[before:]
                time.sleep(0.02)
                continue
            new = self.stderr_text()[before:]
            if "applied as config generation" in new or "reload: refused" in new:
                ok = "applied as config generation" in new
                assert ok == expect_ok, f"reload {'failed' if expect_ok else 'applied'}:\n{new}"
                return new
            time.sleep(0.02)
        raise AssertionError("no reload outcome logged; stderr:\n" + self.stderr_text(tail=3000))


def recv_all(sock, timeout):
    """Reads until EOF or timeout; returns (bytes, eof, seconds)."""
    sock.settimeout(0.1)
    data = b""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data, True, time.monotonic() - t0
        if not chunk:
            return data, True, time.monotonic() - t0
        data += chunk
    return data, False, time.monotonic() - t0


def keepalive_get(sock, target, host):
    """One GET on an open connection; returns (status, body)."""
    sock.settimeout(5)
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a head")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ")[1])
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        rest += sock.recv(65536)
    return status, rest[:n]


# ---------------------------------------------------------------- tests

class Reload(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)

    def box(self, origin_port=None, **keys):
        b = Box(origin_port or self.origin.port, {k.replace("__", "."): v for k, v in keys.items()})
        self.addCleanup(remove_tempdir, b.workdir)
        self.addCleanup(b.kill9)
        b.start()
        return b

    def stop(self, b):
        b.stop(expect_exit=0)

    # -- [access] / [upstream] host rules

    def test_access_allow_clients(self):
        b = self.box()
        conn = socket.create_connection(("127.0.0.1", b.port))
        self.addCleanup(conn.close)
        self.assertEqual(keepalive_get(conn, "/metrics", b.host)[0], 200)
        b.reload(access__allow_clients='["10.0.0.0/8"]')
        # Re-checked per request: the keep-alive connection opened before the
        # reload gets the new verdict too, and so does a new one.
        self.assertEqual(keepalive_get(conn, "/metrics", b.host)[0], 403)
        self.assertEqual(b.get(gen_path("ac", 1024), host=HOST).status, 403)
        b.reload(access__allow_clients='["127.0.0.1/32"]')
        self.assertEqual(b.get(gen_path("ac", 1024), host=HOST).status, 200)
        self.assertEqual(keepalive_get(conn, "/metrics", b.host)[0], 200)
        self.stop(b)

    def test_upstream_allow(self):
        b = self.box(upstream__allow=f'["{HOST}", "updates.cdn-apple.com"]',
                     upstream__resolve=f'{{ "{HOST}" = "127.0.0.1:{self.origin.port}", '
                                       f'"updates.cdn-apple.com" = "127.0.0.1:{self.origin.port}" }}')
        self.assertEqual(b.get(gen_path("al", 1000), host=HOST).status, 200)
        b.reload(upstream__allow='["updates.cdn-apple.com"]')
        r = b.get(gen_path("al2", 1000), host=HOST)
        self.assertEqual(r.status, 403, r)
        self.assertEqual(b.get(gen_path("al3", 1000), host="updates.cdn-apple.com").status, 200)
        self.stop(b)

    def test_upstream_resolve(self):
        one, two = CountingOrigin("one"), CountingOrigin("two")
        self.addCleanup(one.stop)
        self.addCleanup(two.stop)
        b = self.box(upstream__resolve=f'{{ "{HOST}" = "127.0.0.1:{one.port}" }}')
        r = b.get("/r1", host=HOST)
        self.assertEqual((r.status, r.body), (200, b"one"))
        b.reload(upstream__resolve=f'{{ "{HOST}" = "127.0.0.1:{two.port}" }}')
        # The connection pooled to `one` is not reused: the new target answers.
        r = b.get("/r2", host=HOST)
        self.assertEqual((r.status, r.body), (200, b"two"))
        self.assertEqual((one.requests, two.requests), (1, 1))
        self.stop(b)

    # -- [server] connection limits and timeouts

    def test_server_max_connections(self):
        b = self.box(server__max_connections="100")
        held = []
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", b.port))
            self.addCleanup(s.close)
            self.assertEqual(keepalive_get(s, "/metrics", b.host)[0], 200)
            held.append(s)
        for s in held:
            s.close()
        b.reload(server__max_connections="2")
        held = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", b.port))
            self.addCleanup(s.close)
            self.assertEqual(keepalive_get(s, "/metrics", b.host)[0], 200)
            held.append(s)
        third = socket.create_connection(("127.0.0.1", b.port))
        self.addCleanup(third.close)
        _, eof, _ = recv_all(third, 3.0)
        self.assertTrue(eof, "a third connection over server.max_connections = 2 was not refused")
        self.assertEqual(keepalive_get(held[0], "/metrics", b.host)[0], 200)
        self.stop(b)

    def test_server_idle_timeout(self):
        b = self.box(server__idle_timeout='"60s"')
        b.reload(server__idle_timeout='"1s"')
        s = socket.create_connection(("127.0.0.1", b.port))
        self.addCleanup(s.close)
        self.assertEqual(keepalive_get(s, "/metrics", b.host)[0], 200)
        _, eof, took = recv_all(s, 5.0)
        self.assertTrue(eof, "an idle connection stayed open past the reloaded idle_timeout of 1 s")
        self.assertLess(took, 3.0)
        self.stop(b)

    def test_server_send_timeout(self):
        b = self.box(server__send_timeout='"60s"')
        path = gen_path("st", 16 * MiB)
        self.assertEqual(b.get(path, keep_body=False).status, 200)
        b.reload(server__send_timeout='"1s"')
        s = socket.socket()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", b.port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and b.metric("send_timeouts_total") < 1:
            time.sleep(0.2)
        self.assertEqual(b.metric("send_timeouts_total"), 1, "a client that stopped reading was not closed at 1 s")
        self.stop(b)

    def test_server_drain_timeout(self):
        b = self.box(server__drain_timeout='"30s"')
        b.reload(server__drain_timeout='"1s"')
        got_head = threading.Event()
        path = gen_path("drain", 8 * MiB, rate=100000)  # 80 s at the origin's pace
        t = threading.Thread(target=lambda: b.get(path, keep_body=False, timeout=20,
                                                   on_headers=lambda r: got_head.set()), daemon=True)
        t.start()
        self.assertTrue(got_head.wait(10))
        t0 = time.monotonic()
        rc = b.stop(expect_exit=0, timeout=15)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0)
        self.assertLess(took, 6.0, f"drain took {took:.1f} s with server.drain_timeout reloaded to 1 s")

    # -- [upstream] timeouts and pool

    def test_upstream_read_timeout(self):
        b = self.box(upstream__read_timeout='"60s"')
        b.reload(upstream__read_timeout='"1s"')
        t0 = time.monotonic()
        r = b.get(gen_path("rt", 1000, delay=4), host=HOST, timeout=10)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 504, r)
        self.assertLess(took, 3.0, f"the origin's silence lasted {took:.1f} s before the answer")
        self.stop(b)

    def test_upstream_connect_timeout(self):
        # A listener whose accept queue is full: further SYNs are dropped, so
        # a connect to it hangs until the connect timeout.
        bh = socket.socket()
        self.addCleanup(bh.close)
        bh.bind(("127.0.0.1", 0))
        bh.listen(0)
        for _ in range(3):
            c = socket.socket()
            self.addCleanup(c.close)
            c.setblocking(False)
            c.connect_ex(bh.getsockname())
        time.sleep(0.1)
        b = self.box(upstream__connect_timeout='"10s"',
                     upstream__resolve=f'{{ "{HOST}" = "127.0.0.1:{bh.getsockname()[1]}" }}')
        b.reload(upstream__connect_timeout='"300ms"')
        t0 = time.monotonic()
        r = b.get("/ct", host=HOST, timeout=15)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 504, r)
        self.assertLess(took, 3.0, f"connecting gave up after {took:.1f} s, not 300 ms")
        self.stop(b)

    def test_upstream_max_idle_per_origin(self):
        o = CountingOrigin("pool")
        self.addCleanup(o.stop)
        b = self.box(upstream__resolve=f'{{ "{HOST}" = "127.0.0.1:{o.port}" }}')
        for i in range(2):
            self.assertEqual(b.get(f"/p{i}", host=HOST).status, 200)
        self.assertEqual(o.connections, 1, "with the default pool the second exchange reuses the connection")
        b.reload(upstream__max_idle_per_origin="0")
        for i in range(2):
            self.assertEqual(b.get(f"/q{i}", host=HOST).status, 200)
        self.assertEqual(o.connections, 3, "with max_idle_per_origin = 0 every exchange dials a new connection")
        self.stop(b)

    # -- [storage]

    def test_storage_cache_limit(self):
        b = self.box(storage__cache_limit='"64MiB"')
        self.assertEqual(b.status()["CacheLimit"], 64 * MiB)
        for i in range(6):
            self.assertEqual(b.get(gen_path(f"cl{i}", 2 * MiB), keep_body=False).status, 200)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and b.status()["CacheUsed"] < 12 * MiB:
            time.sleep(0.05)
        self.assertEqual(b.status()["CacheUsed"], 12 * MiB)
        b.reload(storage__cache_limit='"6MiB"')
        self.assertEqual(b.status()["CacheLimit"], 6 * MiB)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b.status()["CacheUsed"] > 6 * MiB * 95 // 100:
            time.sleep(0.1)
        used = b.status()["CacheUsed"]
        self.assertLessEqual(used, 6 * MiB * 95 // 100, "the evictor did not work down to the lowered limit")
        self.stop(b)

    def test_storage_max_object_size(self):
        b = self.box()
        small = gen_path("mo-a", 1 * MiB)
        self.assertEqual(b.get(small, keep_body=False).status, 200)
        deadline = time.monotonic() + 3
        while not b.get(small, keep_body=False).is_hit() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(b.get(small, keep_body=False).is_hit(), "1 MiB is stored under the default limit")
        b.reload(storage__max_object_size='"512KiB"')
        big = gen_path("mo-b", 1 * MiB)
        self.assertEqual(b.get(big, keep_body=False).status, 200)
        time.sleep(0.3)
        r = b.get(big, keep_body=False)
        self.assertEqual(r.status, 200)
        self.assertFalse(r.is_hit(), f"an object over max_object_size was stored: {r.cache_status}")
        self.assertGreaterEqual(b.metric("oversize_passes_total"), 1)
        self.stop(b)

    # -- logging

    def test_server_access_log(self):
        b = self.box(server__access_log="false")
        b.get("/gen/1000/al-before", keep_body=False)
        b.reload(server__access_log="true")
        b.get("/gen/1000/al-after", keep_body=False)
        self.stop(b)
        err = b.stderr_text()
        self.assertNotIn(" GET /gen/1000/al-before ", err)
        self.assertIn(" GET /gen/1000/al-after 200 ", err)

    def test_server_access_log_to_a_file_and_back(self):
        b = self.box(server__access_log="true")
        log = os.path.join(b.workdir, "access.log")
        b.get("/gen/1000/alf-stderr", keep_body=False)
        b.reload(server__access_log=f'"{log}"')
        b.get("/gen/1000/alf-file?token=SECRET", keep_body=False)
        deadline = time.monotonic() + 10
        text = ""
        while "alf-file" not in text and time.monotonic() < deadline:
            time.sleep(0.02)
            if os.path.exists(log):
                with open(log) as f:
                    text = f.read()
        self.assertIn(" GET /gen/1000/alf-file?token=*** 200 ", text)
        self.assertNotIn("alf-stderr", text)
        # A path that cannot be opened refuses the reload; the file stays in use.
        out = b.reload(expect_ok=False, server__access_log=f'"{b.workdir}/no/such/dir/access.log"')
        self.assertIn(f"server.access_log {b.workdir}/no/such/dir/access.log", out)
        b.get("/gen/1000/alf-still", keep_body=False)
        b.reload(server__access_log="false", server__log_level='"info"')
        b.get("/gen/1000/alf-off", keep_body=False)
        self.stop(b)
        with open(log) as f:
            text = f.read()
        self.assertIn(" GET /gen/1000/alf-still ", text)
        self.assertNotIn("alf-off", text)
        err = b.stderr_text()
        self.assertIn(" GET /gen/1000/alf-stderr 200 ", err)
        self.assertNotIn("alf-file", err)
        self.assertNotIn("SECRET", err + text)

    def test_server_log_level(self):
        b = self.box(server__log_level='"info"')
        out = b.reload(server__access_log="false")  # a reload at info: no debug line
        self.assertNotIn("[debug]", out)
        out = b.reload(server__log_level='"debug"')
        self.assertIn("[debug]: loop 0: config generation 3 installed", out)
        out = b.reload(server__log_level='"error"', by_metric=True)
        self.assertNotIn("[debug]", out)
        self.assertNotIn("[info]", out)
        self.stop(b)

    # -- keys read from files (values checked in tests/integration/reload_test.cc)

    def test_keys_read_from_files(self):
        b = self.box()
        token = os.path.join(b.workdir, "admin.token")
        with open(token, "w") as f:
            f.write("t0ken\n")
        # An upstream.ca_file that cannot be read refuses the reload ...
        out = b.reload(expect_ok=False, upstream__ca_file='"/etc/orchard/upstream-ca.pem"')
        self.assertIn("upstream.ca_file /etc/orchard/upstream-ca.pem", out)
        # ... a readable one is taken (tls.* are read only with tls.listen, restart-only and empty here).
        ca = os.path.join(b.workdir, "upstream-ca.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", os.path.join(b.workdir, "upstream-ca.key"), "-out", ca, "-days", "2",
                        "-subj", "/CN=reload test CA"], check=True, capture_output=True)
        out = b.reload(tls__certificate='"/etc/orchard/tls/cert.pem"', tls__private_key='"/etc/orchard/tls/key.pem"',
                       upstream__ca_file=f'"{ca}"', admin__token='"abc"')
        self.assertIn("config generation 2: changed tls.certificate, tls.private_key, upstream.ca_file, admin.token",
                      out)
        out = b.reload(admin__token=None, admin__token_file=f'"{token}"')
        self.assertIn("config generation 3: changed admin.token, admin.token_file", out)
        # A token file that cannot be read refuses the reload.
        os.unlink(token)
        out = b.reload(expect_ok=False, server__idle_timeout='"1s"')
        self.assertIn("admin.token_file", out)
        self.assertEqual(b.metric("config_reloads_total"), 2)
        self.assertEqual(b.metric("config_reload_failures_total"), 2)
        self.assertEqual(b.status()["ConfigGeneration"], 3, "the refused files must not count")
        self.stop(b)

    # -- refused reloads, restart-only keys, requests in flight

    def test_bad_file_keeps_the_running_config(self):
        b = self.box()
        self.assertEqual(b.get(gen_path("bad", 1000)).status, 200)
        # A valid key beside a bad one: nothing of the file is applied.
        out = b.reload(expect_ok=False, access__allow_clients='["10.0.0.0/8"]', storage__cache_limit='"lots"')
        self.assertIn("storage.cache_limit", out)
        self.assertEqual(b.get(gen_path("bad2", 1000)).status, 200, "the refused file's allow_clients was applied")
        self.assertEqual(b.status()["CacheLimit"], 64 * MiB)
        b.keys["storage.cache_limit"] = '"64MiB"'
        b.raw = "[server\nlisten = \n"
        out = b.reload(expect_ok=False)
        self.assertRegex(out, r"config.toml:1")
        self.assertEqual(b.metric("config_reload_failures_total"), 2)
        self.assertEqual(b.metric("config_reloads_total"), 0)
        self.assertEqual(b.get(gen_path("bad3", 1000)).status, 200)
        self.stop(b)

    def test_restart_only_keys_are_logged_and_kept(self):
        b = self.box()
        old_port = b.port
        new_port = old_port + 1 if old_port < 65000 else old_port - 1
        b.keys["server.listen"] = f'["127.0.0.1:{new_port}"]'
        b.port = new_port  # _write_config renders listen from b.port
        out = b.reload(server__workers="2", storage__scrub_interval='"1h"', server__idle_timeout='"30s"')
        b.port = old_port
        for key in ("server.listen", "server.workers", "storage.scrub_interval"):
            self.assertIn(f"{key} changed: needs a restart", out)
        self.assertIn("changed server.idle_timeout", out)
        self.assertEqual(b.get(gen_path("ro", 1000)).status, 200, "the old listener stopped serving")
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", new_port), timeout=1).close()
        self.assertEqual(b.metric("config_reloads_total"), 1)
        self.stop(b)

    def test_request_in_flight_finishes_on_its_snapshot(self):
        # access_log is decided when a request ends: one that started with
        # it on still logs after a reload turned it off; a new one does not.
        b = self.box(server__access_log="true")
        got_head = threading.Event()
        slow = gen_path("inflight", 1 * MiB, rate=1 * MiB)  # about a second
        result = {}
        t = threading.Thread(target=lambda: result.update(r=b.get(slow, keep_body=False, timeout=20,
                                                                    on_headers=lambda r: got_head.set())))
        t.start()
        self.assertTrue(got_head.wait(10))
        b.reload(server__access_log="false")
        b.get("/gen/1000/after-reload", keep_body=False)
        t.join(20)
        self.assertEqual(result["r"].status, 200)
        self.assertTrue(result["r"].complete)
        self.stop(b)
        err = b.stderr_text()
        self.assertIn(f" GET {slow} 200 ", err)
        self.assertNotIn(" GET /gen/1000/after-reload ", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
