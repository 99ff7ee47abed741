"""HTTPS both ways, checked from outside.

Listeners: with no certificate configured the box makes its own CA and a
leaf (storage.dir/tls), serves the CA at /ca.pem, prints the leaf's
fingerprint, and reuses both after a restart; curl --cacert and Python's
ssl fetch the status, a cached object and a published package over the
HTTPS listener; plain HTTP sent to it is refused without harm. With a
configured certificate, SIGHUP after the file was replaced serves the new
one to new connections while a download on an old connection finishes.

Origins: `?source=…&sourceScheme=https` and `https://` absolute URIs are
fetched over TLS from local origins whose certificates come from a test CA
in upstream.ca_file; the object is cached (second request a hit, the origin
asked once) and shared with the plain-HTTP fetch; an origin whose
certificate is untrusted or names another host gets a 502 that says why,
and nothing is stored.
"""

import hashlib
import json
import os
import re
import signal
import ssl
import subprocess
import threading
import time
import unittest
import warnings

from harness import (Orchard, Origin, expected_sha256, free_port, gen_path, make_tempdir, remove_tempdir,
                     request)
from upload import pattern_piece, pattern_sha256, put_stream

TOKEN = "tls-test-token-8c1d"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    """A CA (key, cert) under d/name.{key,pem}."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "30", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


def make_leaf(d, ca, name, dns):
    """A leaf for DNS name `dns` signed by `ca` (a make_ca name): d/name.{key,pem}."""
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{dns}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={dns}", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "30", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


def server_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


def peer_fingerprint(port, cafile, name="localhost"):
    """SHA-256 of the certificate a new connection to the box gets."""
    import socket
    ctx = client_context(cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            der = s.getpeercert(binary_form=True)
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


class TlsCase(unittest.TestCase):
    """One plain origin, three HTTPS origins (trusted, untrusted, wrong
    name) and one orchardd with an HTTPS listener on its own CA."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        certs = os.path.join(cls.tmp, "certs")
        os.makedirs(certs)
        cls.test_ca, _ = make_ca(certs, "testca")
        make_ca(certs, "otherca")
        good = make_leaf(certs, "testca", "good", "tls-origin.test")
        wrong = make_leaf(certs, "testca", "wrong", "somebody-else.test")
        untrusted = make_leaf(certs, "otherca", "untrusted", "untrusted-origin.test")

        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        cls.tls_origin = Origin(ssl_context=server_context(*good)).start()
        cls.addClassCleanup(cls.tls_origin.stop)
        cls.wrong_origin = Origin(ssl_context=server_context(*wrong)).start()
        cls.addClassCleanup(cls.wrong_origin.stop)
        cls.untrusted_origin = Origin(ssl_context=server_context(*untrusted)).start()
        cls.addClassCleanup(cls.untrusted_origin.stop)

        # Takes the TCP connection (the kernel's backlog) and never answers the ClientHello.
        import socket
        cls.silent = socket.socket()
        cls.silent.bind(("127.0.0.1", 0))
        cls.silent.listen(16)
        cls.addClassCleanup(cls.silent.close)

        cls.tls_port = free_port()
        cls.orchard = Orchard(
            cls.origin.port, workdir=cls.tmp,
            resolve_extra={"tls-origin.test": cls.tls_origin.port,
                           "wrong-origin.test": cls.wrong_origin.port,
                           "untrusted-origin.test": cls.untrusted_origin.port,
                           "silent-origin.test": cls.silent.getsockname()[1]},
            sections={"upstream": f'ca_file = "{cls.test_ca}"\nconnect_timeout = "2s"'},
            extra_toml=f'[tls]\nlisten = ["127.0.0.1:{cls.tls_port}"]\n\n[admin]\ntoken = "{TOKEN}"\n')
        cls.addClassCleanup(cls.orchard.kill9)
        cls.addClassCleanup(cls.orchard.stop, expect_exit=0)
        cls.orchard.start()
        cls.box_ca = os.path.join(cls.orchard.state_dir, "tls", "ca.pem")
        cls.tls = client_context(cls.box_ca)

    def https(self, method, target, headers=None, **kw):
        hdrs = [("Host", f"localhost:{self.tls_port}")] + list((headers or {}).items())
        return request(self.tls_port, method, target, hdrs, tls=self.tls, server_hostname="localhost", **kw)

    def metric(self, name):
        r = request(self.orchard.port, "GET", "/metrics", [("Authorization", f"Bearer {TOKEN}")])
        m = re.search(rf"^orchard_{name} (\d+)$", r.body.decode(), re.M)
        return int(m.group(1)) if m else None

    # -- the listener on the box's own CA --------------------------------

    def test_own_ca_is_served_and_the_fingerprint_printed(self):
        r = request(self.orchard.port, "GET", "/ca.pem")
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"BEGIN CERTIFICATE", r.body)
        with open(self.box_ca, "rb") as f:
            self.assertEqual(r.body, f.read())
        self.assertEqual(self.https("GET", "/ca.pem").body, r.body)
        fp = peer_fingerprint(self.tls_port, self.box_ca)
        self.assertIn(f"SHA-256 fingerprint {fp}", self.orchard.stderr_text(),
                      "the leaf's fingerprint is printed at start")
        key_mode = os.stat(os.path.join(self.orchard.state_dir, "tls", "key.pem")).st_mode & 0o777
        self.assertEqual(key_mode, 0o600)

    def test_curl_with_cacert_fetches_status_and_a_cached_object(self):
        out = subprocess.run(["curl", "-sS", "--fail", "--cacert", self.box_ca,
                              f"https://localhost:{self.tls_port}/api/v1/status",
                              "-H", f"Authorization: Bearer {TOKEN}"],
                             capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("CacheUsed", json.loads(out.stdout))
        name, size = "tls-listener-object", 3_000_000
        path = gen_path(name, size)
        for want in ("MISS", "HIT"):
            out = subprocess.run(["curl", "-sS", "--fail", "--cacert", self.box_ca, "-D", "-", "-o",
                                  os.path.join(self.tmp, "curl-body"),
                                  f"https://localhost:{self.tls_port}{path}?source=swcdn.apple.com"],
                                 capture_output=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            status_line = [ln for ln in out.stdout.decode().splitlines() if ln.lower().startswith("cache-status:")]
            self.assertTrue(status_line, out.stdout)
            if want == "MISS":
                self.assertIn("fwd=miss", status_line[0].replace(" ", ""))
            else:
                self.assertIn("hit", status_line[0])
            with open(os.path.join(self.tmp, "curl-body"), "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), expected_sha256(name, size))
        self.assertEqual(self.origin.count(path), 1)

    def test_a_package_is_served_over_https(self):
        size, seed = 700_000, "tls-pkg"
        status, _, body, _ = put_stream(self.orchard.port, "/api/v1/packages/TlsTool/1.0/TlsTool.dmg?bundle_id=com.example.tlstool", size,
                                        pattern_piece(seed),
                                        headers={"Authorization": f"Bearer {TOKEN}",
                                                 "X-Checksum-Sha256": pattern_sha256(seed, size)})
        self.assertIn(status, (200, 201), body)
        got = self.https("GET", "/pkgs/TlsTool/1.0/TlsTool.dmg", keep_body=False)
        self.assertEqual(got.status, 200, got)
        self.assertTrue(got.complete)
        self.assertEqual(got.sha256, pattern_sha256(seed, size))

    def test_keep_alive_requests_share_one_tls_connection(self):
        import socket
        name, size = "tls-keepalive", 20_000
        path = gen_path(name, size) + "?source=swcdn.apple.com"
        with socket.create_connection(("127.0.0.1", self.tls_port), timeout=10) as raw:
            with self.tls.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertEqual(s.selected_alpn_protocol(), None)  # we offered none
                for _ in range(3):
                    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                    head = b""
                    while b"\r\n\r\n" not in head:
                        head += s.recv(65536)
                    head, _, body = head.partition(b"\r\n\r\n")
                    self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
                    while len(body) < size:
                        body += s.recv(65536)
                    self.assertEqual(hashlib.sha256(body).hexdigest(), expected_sha256(name, size))

    def test_records_go_through_user_space_when_the_kernel_has_no_tls(self):
        before = self.metric("tls_userspace_connections_total")
        r = self.https("GET", "/ca.pem")
        self.assertEqual(r.status, 200)
        self.assertIsNotNone(self.metric("tls_kernel_available"))
        self.assertGreater(self.metric("tls_userspace_connections_total"), before,
                           "each connection counts the path its records took")
        if self.metric("tls_kernel_available") == 0:
            self.assertEqual(self.metric("tls_ktls_connections_total"), 0)

    def test_alpn_is_http11(self):
        import socket
        ctx = client_context(self.box_ca)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", self.tls_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
                self.assertIn(s.version(), ("TLSv1.3", "TLSv1.2"))

    def test_old_protocols_and_plain_http_are_refused(self):
        import socket
        ctx = client_context(self.box_ca)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with socket.create_connection(("127.0.0.1", self.tls_port), timeout=10) as raw:
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    pass
        before = self.metric("tls_handshake_failures_total")
        with socket.create_connection(("127.0.0.1", self.tls_port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(10)
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionError:
                pass
        self.assertNotIn(b"HTTP/1.1 200", data)
        self.assertGreater(self.metric("tls_handshake_failures_total"), before)
        self.assertTrue(self.orchard.alive())

    # -- HTTPS origins ----------------------------------------------------

    def test_https_origin_is_fetched_verified_and_cached(self):
        name, size = "tls-origin-object", 2_500_000
        path = gen_path(name, size)
        target = f"{path}?source=tls-origin.test&sourceScheme=https"
        r = request(self.orchard.port, "GET", target, keep_body=False)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.sha256, expected_sha256(name, size))
        r = request(self.orchard.port, "GET", target, keep_body=False)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.sha256, expected_sha256(name, size))
        self.assertEqual(self.tls_origin.count(path), 1, "the second request must be served from the store")
        self.assertEqual(self.tls_origin.matching(path)[0].headers.get("host"), "tls-origin.test")
        # The absolute https:// form is the same object.
        r = request(self.orchard.port, "GET", f"https://tls-origin.test{path}", keep_body=False)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.tls_origin.count(path), 1)
        # And so is a plain-HTTP fetch of the same name (the scheme is not in the key).
        r = request(self.orchard.port, "GET", f"{path}?source=tls-origin.test", keep_body=False)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.tls_origin.count(path), 1)

    def test_pooled_tls_connections_are_reused(self):
        before = self.metric("tls_handshakes_total")
        for i in range(4):
            path = gen_path(f"tls-pool-{i}", 10_000)
            r = request(self.orchard.port, "GET", f"{path}?source=tls-origin.test&sourceScheme=https")
            self.assertEqual(r.status, 200, r)
        # One handshake to the origin for four sequential misses (the pool keeps it).
        self.assertLessEqual(self.metric("tls_handshakes_total") - before, 2)

    def assertRefusedOrigin(self, host, reason):
        name, size = f"tls-refused-{host}", 10_000
        path = gen_path(name, size)
        before = self.metric("tls_origin_verify_failures_total")
        r = request(self.orchard.port, "GET", f"{path}?source={host}&sourceScheme=https")
        self.assertEqual(r.status, 502, r)
        err = json.loads(r.body)
        self.assertIn("certificate verify failed", json.dumps(err))
        self.assertIn(reason, json.dumps(err))
        self.assertEqual(self.metric("tls_origin_verify_failures_total"), before + 1)
        # Never fetched unverified: the origin saw no request at all.
        origin = self.wrong_origin if host.startswith("wrong") else self.untrusted_origin
        self.assertEqual(origin.count(path), 0)

    def test_an_origin_that_never_finishes_the_handshake_times_out_as_connecting(self):
        t0 = time.monotonic()
        r = request(self.orchard.port, "GET", gen_path("tls-silent", 1000) + "?source=silent-origin.test&sourceScheme=https")
        self.assertEqual(r.status, 504, r)
        self.assertIn("TLS handshake timeout", r.body.decode())
        self.assertLess(time.monotonic() - t0, 15, "upstream.connect_timeout (2 s) covers the handshake")

    def test_untrusted_origin_certificate_is_a_502_with_the_reason(self):
        self.assertRefusedOrigin("untrusted-origin.test", "unable to get local issuer certificate")

    def test_wrong_name_origin_certificate_is_a_502_with_the_reason(self):
        self.assertRefusedOrigin("wrong-origin.test", "hostname mismatch")


class OwnCaRestartTest(unittest.TestCase):
    """The CA and the leaf are made once and reused after a restart."""

    def test_reused_after_restart(self):
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        tls_port = free_port()
        o = Orchard(1, workdir=tmp, extra_toml=f'[tls]\nlisten = ["127.0.0.1:{tls_port}"]\n')
        self.addCleanup(o.kill9)
        o.start()
        ca = os.path.join(o.state_dir, "tls", "ca.pem")
        with open(ca, "rb") as f:
            ca_pem = f.read()
        fp = peer_fingerprint(tls_port, ca)
        o.stop()
        o.start()
        with open(ca, "rb") as f:
            self.assertEqual(f.read(), ca_pem)
        self.assertEqual(peer_fingerprint(tls_port, ca), fp)
        self.assertEqual(o.stderr_text().count("made the box's own CA"), 1)
        o.stop()


class CertificateReloadTest(unittest.TestCase):
    """A configured certificate replaced on disk (as certbot renews it) and a
    SIGHUP: new connections get the new one, a download on an old
    connection finishes byte-exact."""

    def test_sighup_serves_the_new_certificate_while_an_old_download_finishes(self):
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        certs = os.path.join(tmp, "certs")
        os.makedirs(certs)
        ca, _ = make_ca(certs, "acme")
        first = make_leaf(certs, "acme", "first", "localhost")
        second = make_leaf(certs, "acme", "second", "localhost")
        live_cert, live_key = os.path.join(certs, "live.pem"), os.path.join(certs, "live.key")
        for src, dst in ((first[0], live_cert), (first[1], live_key)):
            with open(src, "rb") as a, open(dst, "wb") as b:
                b.write(a.read())
        origin = Origin().start()
        self.addCleanup(origin.stop)
        tls_port = free_port()
        o = Orchard(origin.port, workdir=tmp,
                    extra_toml=f'[tls]\nlisten = ["127.0.0.1:{tls_port}"]\n'
                               f'certificate = "{live_cert}"\nprivate_key = "{live_key}"\n')
        self.addCleanup(o.kill9)
        o.start()
        fp_first = peer_fingerprint(tls_port, ca)
        self.assertNotIn("/ca.pem", o.stderr_text().split("orchardd ready")[0].split("fingerprint")[-1])
        r = request(o.port, "GET", "/ca.pem")
        self.assertEqual(r.status, 404, "a configured certificate has no CA of the box's own")

        name, size = "tls-reload-download", 24_000_000
        path = gen_path(name, size) + "?source=swcdn.apple.com"
        result = {}
        started = threading.Event()

        def download():
            result["r"] = request(tls_port, "GET", path, [("Host", "localhost")], keep_body=False,
                                  read_rate=8_000_000, tls=client_context(ca), server_hostname="localhost",
                                  on_headers=lambda _: started.set(), timeout=60)

        t = threading.Thread(target=download)
        t.start()
        self.assertTrue(started.wait(20))
        for src, dst in ((second[0], live_cert), (second[1], live_key)):
            with open(src, "rb") as a, open(dst + ".new", "wb") as b:
                b.write(a.read())
            os.replace(dst + ".new", dst)
        o.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "new connections get the certificate" not in o.stderr_text():
            time.sleep(0.05)
        fp_second = peer_fingerprint(tls_port, ca)
        self.assertNotEqual(fp_first, fp_second, "new connections still get the old certificate")
        t.join(60)
        r = result["r"]
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.complete, r.error)
        self.assertEqual(r.sha256, expected_sha256(name, size))
        # A broken certificate file on reload changes nothing.
        with open(live_cert, "w") as f:
            f.write("not a certificate\n")
        o.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "tls.certificate" not in o.stderr_text().split("new connections get")[-1]:
            time.sleep(0.05)
        self.assertEqual(peer_fingerprint(tls_port, ca), fp_second)
        o.stop()


if __name__ == "__main__":
    unittest.main()
