"""CONNECT tunnels, /proxy.pac and the private-address rule, checked from
outside.

Origins of their own, all on 127.0.0.1 and reached through upstream.resolve
entries (which the private-address rule lets through, since they name the
address explicitly):
  - swcdn.apple.com -> a TLS echo server (Python ssl, a self-signed
    certificate for swcdn.apple.com that the client verifies), so a tunnel
    carries a real TLS session end to end;
  - echo.test -> a plain TCP echo server (what the client sent before the
    200 arrived must come back first; half-close passes through);
  - redirect.test -> an HTTP origin that answers 302 to a host off the allow
    list (the box passes 3xx to the client, never follows it).
"localhost" is allowed (upstream.allow and upstream.tunnel_allow) with no
resolve entry: DNS gives a loopback address, which must be refused, for
fetches and tunnels alike; "127.0.0.1" (in the harness's allow list) too.

What is checked: 100 MiB each way through TLS, byte-exact; 403 for other
ports and hosts (counted by reason); 400 for a target that is not host:port;
403 for an allowed name that resolves to loopback, 502 for a fetch of one,
both counted; upstream.allow_private letting a loopback origin through; the
idle timeout (and activity keeping a tunnel open); SIGTERM closing an idle
tunnel at once; the PAC file (evaluated with node when it is installed)."""

import hashlib
import json
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
import unittest

from harness import ALLOWED, MiB, Orchard, make_tempdir, remove_tempdir, request

TUNNEL_ALLOW = ["swcdn.apple.com", "echo.test", "localhost", "*.cdn-apple.com"]
ALLOW = ALLOWED + ["echo.test", "redirect.test", "localhost"]


# ---------------------------------------------------------------- local origins

class EchoServer:
    """TCP (or TLS, with `tls_context`) echo on 127.0.0.1: every byte read
    is written back; at the client's end of stream it shuts its side too."""

    def __init__(self, tls_context=None):
        self.tls = tls_context
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            if self.tls:
                c = self.tls.wrap_socket(c, server_side=True)
            while True:
                data = c.recv(256 * 1024)
                if not data:
                    break
                c.sendall(data)
            if self.tls:
                c = c.unwrap()
            c.shutdown(socket.SHUT_WR)
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def stop(self):
        self._stop = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


class RedirectOrigin:
    """HTTP/1.1 origin answering every request with a 302 to
    http://evil.test/<path> (a host off the allow list); counts requests."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                line = head.split(b"\r\n")[0].decode()
                self.requests.append(line)
                path = line.split(" ")[1]
                body = b"moved\n"
                c.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://evil.test" + path.encode() +
                          b"\r\nCache-Control: max-age=60\r\nContent-Length: " + str(len(body)).encode() +
                          b"\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.sock.close()


def make_cert(tmp):
    """A self-signed certificate for swcdn.apple.com: (cert, key) paths."""
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=swcdn.apple.com", "-addext", "subjectAltName=DNS:swcdn.apple.com",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


# ---------------------------------------------------------------- client helpers

def open_tunnel(port, target, early=b"", host=None, timeout=10):
    """Sends CONNECT (and `early` bytes in the same write); returns (socket,
    status, head bytes, bytes read past the head)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {host or target}\r\n\r\n".encode() + early)
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        if not data:
            break
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return s, status, head, rest


def read_to_eof(s, limit=1 << 20):
    out = b""
    while len(out) < limit:
        try:
            data = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not data:
            break
        out += data
    return out


def refused_answer(port, target):
    """Status and JSON body of a CONNECT the box answers with an error, and
    whether the box closed the connection after it."""
    s, status, head, rest = open_tunnel(port, target)
    try:
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.decode().partition(":") for line in head.split(b"\r\n")[1:])}
        n = int(headers.get("content-length", "0"))
        body = rest
        while len(body) < n:
            data = s.recv(65536)
            if not data:
                break
            body += data
        closed = read_to_eof(s) == b""
        return status, json.loads(body[:n].decode() or "{}"), closed
    finally:
        s.close()


def metric(orchard, name):
    r = orchard.get("/metrics", host=orchard.host)
    for line in r.body.decode().splitlines():
        if line.startswith(f"orchard_{name} "):
            return int(float(line.split()[1]))
    raise AssertionError(f"no metric orchard_{name}")


def pattern(n, seed):
    """n deterministic bytes (repeating a 1 MiB block derived from seed)."""
    block = hashlib.sha256(seed.encode()).digest() * (MiB // 32)
    out = bytearray()
    while len(out) < n:
        out += block[: n - len(out)]
    return bytes(out)


# ---------------------------------------------------------------- tests

class TunnelCase(unittest.TestCase):
    """One orchardd with the three origins; tunnel_idle_timeout 3s."""

    idle = "3s"
    extra_upstream = ""

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.cert, cls.key = make_cert(cls.tmp)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cls.cert, cls.key)
        cls.tls_echo = EchoServer(server_ctx)
        cls.addClassCleanup(cls.tls_echo.stop)
        cls.echo = EchoServer()
        cls.addClassCleanup(cls.echo.stop)
        cls.redirect = RedirectOrigin()
        cls.addClassCleanup(cls.redirect.stop)
        tunnel_allow = ", ".join(f'"{h}"' for h in TUNNEL_ALLOW)
        cls.orchard = Orchard(
            cls.tls_echo.port, workdir=cls.tmp, allow=ALLOW,
            resolve={"echo.test": f"127.0.0.1:{cls.echo.port}",
                     "redirect.test": f"127.0.0.1:{cls.redirect.port}"},
            sections={"upstream": f"tunnel_allow = [{tunnel_allow}]\n"
                                  f'tunnel_idle_timeout = "{cls.idle}"\n' + cls.extra_upstream,
                      "server": "access_log = true"})
        cls.addClassCleanup(cls.orchard.kill9)
        cls.addClassCleanup(cls.orchard.stop, expect_exit=0)
        cls.orchard.start()

    def client_tls(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        return ctx

    def wait_metric(self, name, at_least, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            v = metric(self.orchard, name)
            if v >= at_least or time.monotonic() > deadline:
                return v
            time.sleep(0.05)


class ConnectTest(TunnelCase):

    def test_tls_100_mib_both_ways(self):
        size = 100 * MiB
        up = pattern(size, "up")
        opened = metric(self.orchard, "tunnels_opened_total")
        s, status, head, rest = open_tunnel(self.orchard.port, "swcdn.apple.com:443")
        self.assertEqual(status, 200, head)
        self.assertEqual(rest, b"")
        t = self.client_tls().wrap_socket(s, server_hostname="swcdn.apple.com")
        t.settimeout(60)
        self.assertEqual(t.getpeercert()["subject"][0][0][1], "swcdn.apple.com")

        # One thread, non-blocking: an SSL object must not be read and
        # written from two threads at once.
        t.setblocking(False)
        view = memoryview(up)
        started = time.monotonic()
        h = hashlib.sha256()
        sent = got = 0
        while got < size:
            self.assertLess(time.monotonic() - started, 120, f"stalled at {sent} sent, {got} received")
            readable, writable, _ = select.select([t], [t] if sent < size else [], [], 10)
            if writable:
                try:
                    sent += t.send(view[sent:sent + (256 << 10)])
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
            while readable or t.pending():
                readable = []
                try:
                    data = t.recv(1 << 20)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    break
                self.assertTrue(data, f"tunnel ended after {got} bytes")
                h.update(data)
                got += len(data)
        self.assertEqual(sent, size)
        self.assertEqual(got, size)
        t.setblocking(True)
        self.assertEqual(h.hexdigest(), hashlib.sha256(up).hexdigest(), "bytes changed on the way")
        elapsed = time.monotonic() - started
        t.close()
        self.assertEqual(self.wait_metric("tunnels_opened_total", opened + 1), opened + 1)
        # TLS records add a little; both directions carried at least the 100 MiB.
        self.assertGreaterEqual(self.wait_metric("tunnel_bytes_up_total", size), size)
        self.assertGreaterEqual(self.wait_metric("tunnel_bytes_down_total", size), size)
        print(f"\n  100 MiB each way through a TLS tunnel in {elapsed:.1f}s")

    def test_early_bytes_go_first_and_half_close_passes(self):
        s, status, head, rest = open_tunnel(self.orchard.port, "echo.test:443", early=b"hello before 200;")
        try:
            self.assertEqual(status, 200, head)
            got = rest
            while len(got) < len(b"hello before 200;"):
                got += s.recv(65536)
            self.assertEqual(got, b"hello before 200;", "bytes sent with the CONNECT head were lost or reordered")
            s.sendall(b"second")
            self.assertEqual(s.recv(65536), b"second")
            s.shutdown(socket.SHUT_WR)  # the echo server sees the end, answers its own
            self.assertEqual(read_to_eof(s), b"")
        finally:
            s.close()

    def test_tunnel_has_one_access_log_line_with_its_byte_counts(self):
        # server.access_log = true (stderr): one line when the tunnel closes,
        # bytes = what came down, the detail = what went up.
        s, status, head, rest = open_tunnel(self.orchard.port, "echo.test:443", early=b"0123456789")
        try:
            self.assertEqual(status, 200, head)
            got = rest
            while len(got) < 10:
                got += s.recv(65536)
            s.sendall(b"abcde")
            while len(got) < 15:
                got += s.recv(65536)
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(read_to_eof(s), b"")
        finally:
            s.close()
        line_re = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 127\.0\.0\.1 CONNECT echo\.test:443 200 "
                             r"(\d+) tunnel (\d+\.\d{3}) (\d+\.\d{3}) forward \"echo\.test:443\" \"up=(\d+)\"$", re.M)
        deadline = time.monotonic() + 10
        while True:
            lines = [m for m in line_re.finditer(self.orchard.stderr_text()) if m.group(1) == "15"]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertTrue(lines, "no access line for the tunnel:\n" + self.orchard.stderr_text(tail=3000))
        m = lines[-1]
        self.assertEqual(m.group(4), "15")
        self.assertLessEqual(float(m.group(2)), float(m.group(3)))

    def test_connect_pipelined_behind_a_request_on_a_keep_alive_connection(self):
        # One write: a proxied GET, then the CONNECT, then the tunnel's first
        # bytes. The GET is answered in full, then the 200, then the echo.
        s = socket.create_connection(("127.0.0.1", self.orchard.port), timeout=10)
        try:
            s.sendall(b"GET /moved/pipelined HTTP/1.1\r\nHost: redirect.test\r\n\r\n"
                      b"CONNECT echo.test:443 HTTP/1.1\r\nHost: echo.test:443\r\n\r\n"
                      b"through the tunnel")
            want_tail = b"HTTP/1.1 200 Connection Established\r\n\r\nthrough the tunnel"
            buf = b""
            deadline = time.monotonic() + 10
            while not buf.endswith(want_tail) and time.monotonic() < deadline:
                data = s.recv(65536)
                if not data:
                    break
                buf += data
            self.assertTrue(buf.startswith(b"HTTP/1.1 302 "), buf[:200])
            self.assertIn(b"\r\n\r\nmoved\n" + want_tail, buf)
        finally:
            s.close()

    def test_other_port_is_403(self):
        before = metric(self.orchard, "tunnels_refused_port_total")
        accepted = self.tls_echo.accepted
        for target in ("swcdn.apple.com:8443", "swcdn.apple.com:80", "echo.test:22"):
            status, body, closed = refused_answer(self.orchard.port, target)
            self.assertEqual(status, 403, target)
            self.assertIn("443", body["detail"])
            self.assertTrue(closed, "the connection must close after a refused CONNECT")
        self.assertEqual(metric(self.orchard, "tunnels_refused_port_total"), before + 3)
        self.assertEqual(self.tls_echo.accepted, accepted)

    def test_other_host_is_403(self):
        before = metric(self.orchard, "tunnels_refused_host_total")
        for target in ("example.com:443", "redirect.test:443", "swcdn.apple.com.evil.test:443",
                       f"127.0.0.1:{self.orchard.port}"):
            status, body, closed = refused_answer(self.orchard.port, target)
            self.assertEqual(status, 403, f"{target}: {body}")
            self.assertTrue(closed)
        # redirect.test is allowed for fetches, not for CONNECT (tunnel_allow is its own list).
        self.assertGreaterEqual(metric(self.orchard, "tunnels_refused_host_total"), before + 3)

    def test_bad_target_is_400(self):
        for target in ("swcdn.apple.com", "/x", "https://swcdn.apple.com/", "user@swcdn.apple.com:443"):
            status, body, _ = refused_answer(self.orchard.port, target)
            self.assertEqual(status, 400, f"{target}: {body}")

    def test_allowed_name_resolving_to_loopback_is_refused(self):
        before = metric(self.orchard, "tunnels_refused_address_total")
        ssrf = metric(self.orchard, "upstream_address_refusals_total")
        status, body, closed = refused_answer(self.orchard.port, "localhost:443")
        self.assertEqual(status, 403, body)
        self.assertIn("loopback", body["detail"])
        self.assertIn("upstream.allow_private", body["detail"])
        self.assertTrue(closed)
        self.assertEqual(metric(self.orchard, "tunnels_refused_address_total"), before + 1)
        self.assertEqual(metric(self.orchard, "upstream_address_refusals_total"), ssrf + 1)

    def test_fetch_of_a_name_resolving_to_loopback_is_refused(self):
        ssrf = metric(self.orchard, "upstream_address_refusals_total")
        accepted = self.echo.accepted
        # localhost is allowed, but no resolve entry names it: DNS says loopback.
        r = self.orchard.get(f"http://localhost:{self.echo.port}/x", host=f"localhost:{self.echo.port}")
        self.assertEqual(r.status, 502, r)
        body = json.loads(r.body.decode())
        self.assertIn("loopback", body["detail"])
        # An address literal on the allow list is no exception.
        r = self.orchard.get(f"/x?source=127.0.0.1:{self.echo.port}", host=self.orchard.host)
        self.assertEqual(r.status, 502, r)
        self.assertEqual(metric(self.orchard, "upstream_address_refusals_total"), ssrf + 2)
        self.assertEqual(self.echo.accepted, accepted, "a refused origin was dialled")

    def test_redirect_is_passed_not_followed(self):
        n = len(self.redirect.requests)
        r = self.orchard.get("/moved/once", host="redirect.test")
        self.assertEqual(r.status, 302, r)
        self.assertEqual(r.header("location"), "http://evil.test/moved/once")
        time.sleep(0.2)
        self.assertEqual(self.redirect.requests[n:], ["GET /moved/once HTTP/1.1"],
                         "the box must send exactly the one request, and fetch nothing for the Location")

    def test_idle_tunnel_closes_at_its_timeout_and_activity_keeps_it(self):
        before = metric(self.orchard, "tunnel_idle_timeouts_total")
        busy, status, head, _ = open_tunnel(self.orchard.port, "echo.test:443", timeout=15)
        self.assertEqual(status, 200, head)
        idle, status, head, _ = open_tunnel(self.orchard.port, "echo.test:443", timeout=15)
        self.assertEqual(status, 200, head)
        opened = time.monotonic()
        try:
            # The busy tunnel moves a byte every 0.5 s for 4.5 s: past the 3 s timeout.
            while time.monotonic() - opened < 4.5:
                busy.sendall(b".")
                self.assertEqual(busy.recv(16), b".")
                time.sleep(0.5)
            self.assertEqual(read_to_eof(idle), b"", "idle tunnel not closed")
            closed_after = time.monotonic() - opened
            self.assertGreaterEqual(closed_after, 2.5)
            self.assertLess(closed_after, 6.0)
            busy.sendall(b"still there")
            self.assertEqual(busy.recv(64), b"still there", "a busy tunnel was closed")
        finally:
            busy.close()
            idle.close()
        self.assertGreaterEqual(self.wait_metric("tunnel_idle_timeouts_total", before + 1), before + 1)

    def test_pac(self):
        r = self.orchard.get("/proxy.pac", host=self.orchard.host)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("content-type"), "application/x-ns-proxy-autoconfig")
        pac = r.body.decode()
        self.assertIn(f'"PROXY 127.0.0.1:{self.orchard.port}"', pac)
        self.assertIn('".cdn-apple.com"', pac)
        cases = [
            ("http://swcdn.apple.com/x.pkg", "swcdn.apple.com", f"PROXY 127.0.0.1:{self.orchard.port}"),
            ("http://SWCDN.apple.com./x", "SWCDN.apple.com.", f"PROXY 127.0.0.1:{self.orchard.port}"),
            ("http://redirect.test/x", "redirect.test", f"PROXY 127.0.0.1:{self.orchard.port}"),
            ("https://swcdn.apple.com/x", "swcdn.apple.com", f"PROXY 127.0.0.1:{self.orchard.port}"),
            ("https://swcdn.apple.com:443/x", "swcdn.apple.com", f"PROXY 127.0.0.1:{self.orchard.port}"),
            ("https://a.b.cdn-apple.com/x", "a.b.cdn-apple.com", f"PROXY 127.0.0.1:{self.orchard.port}"),
            ("https://cdn-apple.com/x", "cdn-apple.com", "DIRECT"),
            ("https://swcdn.apple.com:8443/x", "swcdn.apple.com", "DIRECT"),
            ("https://redirect.test/x", "redirect.test", "DIRECT"),  # not in tunnel_allow
            ("http://example.com/", "example.com", "DIRECT"),
            ("https://www.example.com/", "www.example.com", "DIRECT"),
            ("ftp://swcdn.apple.com/", "swcdn.apple.com", "DIRECT"),
        ]
        self.run_pac(pac, cases)
        # The Host header goes into a JS string only as a valid host:port.
        r = self.orchard.get("/proxy.pac", host='x";alert(1);//')
        self.assertEqual(r.status, 400, r)
        r = self.orchard.get("/proxy.pac", host="[::1]:3128")
        self.assertEqual(r.status, 200, r)
        self.assertIn('"PROXY [::1]:3128"', r.body.decode())

    def run_pac(self, pac, cases):
        node = shutil.which("node") or shutil.which("nodejs")
        if not node:
            print("\n  node not installed: the PAC file was not evaluated")
            return
        script = (
            "function dnsDomainIs(h, d) { return h.length >= d.length && h.substring(h.length - d.length) == d; }\n"
            "function shExpMatch(s, p) { throw new Error('shExpMatch is not used'); }\n"
            + pac + "\nconst cases = " + json.dumps(cases) + ";\n"
            "console.log(JSON.stringify(cases.map(c => FindProxyForURL(c[0], c[1]))));\n")
        out = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        got = json.loads(out.stdout)
        for (url, host, want), g in zip(cases, got):
            self.assertEqual(g, want, f"FindProxyForURL({url!r}, {host!r})")


class AllowPrivateTest(TunnelCase):
    """upstream.allow_private lets an allowed name that resolves to a
    private (here: loopback) address through, for fetches and tunnels."""

    # 127/8 only: "localhost" may resolve to ::1 first, which stays refused,
    # and the box dials the first address DNS gave that is allowed.
    extra_upstream = 'allow_private = ["127.0.0.0/8"]\n'

    def test_loopback_in_allow_private_is_dialled(self):
        s, status, head, _ = open_tunnel(self.orchard.port, "localhost:443", timeout=10)
        try:
            # Dialled: nothing listens on 443 here, so 502 (connect refused), not a 403 refusal.
            self.assertIn(status, (200, 502), head)
            self.assertNotEqual(status, 403)
        finally:
            s.close()
        accepted = self.echo.accepted
        r = self.orchard.get(f"http://localhost:{self.echo.port}/x", host=f"localhost:{self.echo.port}",
                             timeout=10)
        self.assertNotEqual(r.status, 403, r)
        self.assertEqual(self.echo.accepted, accepted + 1, "the origin was not dialled")


class ConfiguredPacAndDrainTest(unittest.TestCase):

    def test_pac_proxy_config_and_sigterm_closes_idle_tunnel(self):
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        echo = EchoServer()
        self.addCleanup(echo.stop)
        o = Orchard(echo.port, workdir=tmp, resolve={"echo.test": f"127.0.0.1:{echo.port}"},
                    allow=ALLOW, sections={"server": 'pac_proxy = "proxy.branch.example:3128"\n'
                                                     'drain_timeout = "20s"'})
        self.addCleanup(o.kill9)
        o.start()
        r = o.get("/proxy.pac", host=o.host)
        self.assertEqual(r.status, 200, r)
        self.assertIn('"PROXY proxy.branch.example:3128"', r.body.decode())
        # tunnel_allow empty: CONNECT goes by upstream.allow.
        s, status, head, _ = open_tunnel(o.port, "echo.test:443", timeout=15)
        self.assertEqual(status, 200, head)
        s.sendall(b"ping")
        self.assertEqual(s.recv(16), b"ping")
        self.assertEqual(metric(o, "open_connections"), 2)  # the tunnel and this scrape
        started = time.monotonic()
        rc = o.stop(expect_exit=0, timeout=30)
        took = time.monotonic() - started
        self.assertEqual(rc, 0)
        self.assertLess(took, 10, "drain waited for an idle tunnel")
        self.assertEqual(read_to_eof(s), b"")
        s.close()

    def test_check_config_rejects_bad_pac_proxy(self):
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        o = Orchard(1, workdir=tmp, sections={"server": 'pac_proxy = "a b:99999"'})
        out = subprocess.run([o.binary, "--check-config", o.config_path], capture_output=True, text=True)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("server.pac_proxy", out.stdout + out.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
