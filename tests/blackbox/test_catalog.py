"""Black-box: publishing packages, serving their bytes and manifests (issue 10).

Role: start orchardd with an admin token and check, from outside, what an
admin and a Mac see: a publish (201 with its SHA-256 and URLs), the bytes
whole, by range and conditionally, the InstallEnterpriseApplication
manifest (a plist whose chunk hashes match the bytes), refusals decided
from the head (401, 400 naming the field, 409, 411, 507: before any body
byte is asked for), a checksum mismatch that leaves nothing, content-
addressed storage (the same bytes under two names kept once and freed with
the last), delete (404 at once while a running download finishes), the
audit log, and a catalog that survives a restart. Packages built for real
(bsdtar's xar, and xarpkg.py's signed ones) are in test_catalog_pkg.py;
kill -9 and memory in test_catalog_crash.py.
"""

import os
import plistlib
import signal
import socket
import threading
import time
import unittest

from catalog_case import TOKEN, CatalogCase, files_under
from harness import request, MiB
from upload import api, pattern_piece, pattern_sha256

CHUNK = 10 * MiB


class PublishAndServe(CatalogCase):
    def test_publish_serve_and_manifest(self):
        size = 25 * MiB + 123
        status, _, body, got_continue = self.publish(
            "Orchard%20Tool", "1.2.3", "Orchard%20Tool.dmg", size, "a",
            query="bundle_id=org.example.tool&bundle_version=1.2.3&title=Orchard%20Tool")
        self.assertEqual(status, 201, body)
        self.assertTrue(got_continue, "the box asked for the body with 100 Continue")
        want, chunks = pattern_sha256("a", size, CHUNK)
        self.assertEqual(body["sha256"], want)
        self.assertEqual(body["size"], size)
        self.assertTrue(body["created"])
        self.assertEqual(body["url"], f"http://127.0.0.1:{self.port}/pkgs/Orchard%20Tool/1.2.3/Orchard%20Tool.dmg")
        self.assertEqual(body["manifest_url"], f"http://127.0.0.1:{self.port}/manifests/Orchard%20Tool/1.2.3.plist")
        self.assertEqual(body["metadata"]["bundle_id"], "org.example.tool")
        self.assertEqual(body["metadata"]["source"]["bundle_id"], "request")
        self.assertEqual(body["metadata"]["kind"], "file")

        path = "/pkgs/Orchard%20Tool/1.2.3/Orchard%20Tool.dmg"
        whole = request(self.port, "GET", path, keep_body=False)
        self.assertEqual(whole.status, 200)
        self.assertTrue(whole.complete)
        self.assertEqual(whole.sha256, want)
        self.assertEqual(whole.headers["content-type"], "application/octet-stream")
        etag = whole.headers["etag"]
        self.assertEqual(etag, f'"{want}"')
        self.assertIn("last-modified", whole.headers)

        piece = pattern_piece("a")
        one = request(self.port, "GET", path, headers={"Range": "bytes=1000-1999"})
        self.assertEqual(one.status, 206)
        self.assertEqual(one.body, piece(1000, 1000))
        self.assertEqual(one.headers["content-range"], f"bytes 1000-1999/{size}")
        multi = request(self.port, "GET", path, headers={"Range": "bytes=0-9,-10"})
        self.assertEqual(multi.status, 206)
        self.assertIn("multipart/byteranges", multi.headers["content-type"])
        self.assertIn(piece(0, 10), multi.body)
        self.assertIn(piece(size - 10, 10), multi.body)
        stale = request(self.port, "GET", path, headers={"Range": "bytes=0-9", "If-Range": '"other"'}, keep_body=False)
        self.assertEqual(stale.status, 200, "If-Range with another validator gets the whole file")
        fresh = request(self.port, "GET", path, headers={"Range": "bytes=0-9", "If-Range": etag})
        self.assertEqual(fresh.status, 206)
        self.assertEqual(request(self.port, "GET", path, headers={"If-None-Match": etag}).status, 304)
        head = request(self.port, "HEAD", path)
        self.assertEqual(head.status, 200)
        self.assertEqual(head.headers["content-length"], str(size))
        self.assertEqual(request(self.port, "GET", path, headers={"Range": f"bytes={size}-"}).status, 416)
        self.assertEqual(request(self.port, "GET", "/pkgs/Orchard%20Tool/1.2.3/other.dmg").status, 404)
        self.assertEqual(request(self.port, "GET", "/pkgs/Orchard%20Tool/9.9/Orchard%20Tool.dmg").status, 404)

        m = request(self.port, "GET", "/manifests/Orchard%20Tool/1.2.3.plist")
        self.assertEqual(m.status, 200)
        self.assertEqual(m.headers["content-type"], "application/xml")
        plist = plistlib.loads(m.body)
        item = plist["items"][0]
        asset = item["assets"][0]
        self.assertEqual(asset["kind"], "software-package")
        self.assertEqual(asset["url"], body["url"])
        self.assertEqual(asset["sha256-size"], CHUNK)
        self.assertEqual(asset["sha256s"], chunks)
        self.assertNotIn("sha256", asset, "a whole-file sha256 makes the device ignore the chunk hashes")
        self.assertEqual(item["metadata"]["bundle-identifier"], "org.example.tool")
        self.assertEqual(item["metadata"]["bundle-version"], "1.2.3")
        self.assertEqual(item["metadata"]["kind"], "software")
        self.assertEqual(item["metadata"]["title"], "Orchard Tool")
        self.assertNotIn("sizeInBytes", item["metadata"])

        status, _, shown = self.call("GET", "/api/v1/packages/Orchard%20Tool")
        self.assertEqual(status, 200)
        self.assertEqual(shown["versions"][0]["version"], "1.2.3")
        self.assertGreaterEqual(shown["versions"][0]["downloads"], 1)
        status, _, deliv = self.call("GET", "/api/v1/packages/Orchard%20Tool/1.2.3/deliveries")
        self.assertEqual(status, 200, deliv)
        net = deliv["networks"][0]
        self.assertEqual(net["network"], "127.0.0.0/24")
        self.assertGreaterEqual(net["completed"], 1)
        self.assertGreater(net["started"], net["completed"], "ranges and HEADs start answers that are not downloads")
        self.assertGreaterEqual(net["bytes"], size)
        self.assertEqual(net["bytes_on_box"], net["bytes"])
        status, _, listed = self.call("GET", "/api/v1/packages")
        self.assertEqual(status, 200)
        self.assertIn({"name": "Orchard Tool", "latest": "1.2.3", "versions": 1, "size": size}, listed["packages"])

    def test_versions_newest_first(self):
        for i, v in enumerate(["1.9", "1.10", "1.10b2", "2.0-rc1"]):
            status, _, body, _ = self.publish("order", v, "o.dmg", 1000 + i, f"o{i}", query="bundle_id=o.o")
            self.assertEqual(status, 201, body)
        status, _, shown = self.call("GET", "/api/v1/packages/order")
        self.assertEqual([v["version"] for v in shown["versions"]], ["2.0-rc1", "1.10", "1.10b2", "1.9"])

    def test_refusals_from_the_head(self):
        # No token, a wrong one: 401 with the challenge, and no 100 Continue.
        for h in ({"Authorization": ""}, {"Authorization": "Bearer nope"}):
            status, headers, _, got = self.publish("p", "1", "p.dmg", 1000, "r", headers=h)
            self.assertEqual(status, 401)
            self.assertFalse(got)
            self.assertTrue(headers["www-authenticate"].startswith("Bearer"))
        status, headers, _ = api(self.port, "GET", "/api/v1/packages")
        self.assertEqual(status, 401)
        self.assertTrue(headers["www-authenticate"].startswith("Bearer"))
        self.assertEqual(api(self.port, "GET", "/api/v1/audit")[0], 401)
        self.assertEqual(api(self.port, "GET", "/api/v1/status")[0], 200, "status needs no token")
        # Traversal and bad names, each naming its field.
        for name, version, filename, field in [
                ("..", "1", "a.pkg", "name"), ("%2e%2e", "1", "a.pkg", "name"), ("a", "..", "a.pkg", "version"),
                ("a", "1", "..%2Fetc%2Fpasswd", "filename"), ("a", "1", "%2F", "filename"),
                ("a%5Cb", "1", "a.pkg", "name"), ("a", "1%00", "a.pkg", "version"), ("a", "1", "Targeting", "filename"),
                ("a", "1", "%C0%AF", "filename")]:
            status, _, body, got = self.publish(name, version, filename, 1000, "t")
            self.assertEqual(status, 400, (name, version, filename, body))
            self.assertTrue(body["detail"].startswith(field), (field, body))
            self.assertFalse(got)
        # `.../{version}/targeting` is the targeting route, never a file of that name.
        status, _, body, _ = self.publish("a", "1", "targeting", 10, "t")
        self.assertEqual(status, 404, body)
        self.assertIn("no version", body["detail"])
        # Unknown query metadata; a malformed checksum; no length.
        self.assertEqual(self.publish("a", "1", "a.dmg", 10, "q", query="colour=red")[0], 400)
        self.assertEqual(self.publish("a", "1", "a.dmg", 10, "q", checksum="abc")[0], 400)
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(f"PUT /api/v1/packages/a/1/a.dmg HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode())
        self.assertIn(b" 411 ", s.recv(4096))
        s.close()
        self.assertEqual(self.call("GET", "/api/v1/packages/a")[0], 404)

    def test_checksum_mismatch_leaves_nothing(self):
        status, _, body, _ = self.publish("bad", "1", "bad.dmg", 3 * MiB, "x", checksum="0" * 64,
                                          query="bundle_id=b.b")
        self.assertEqual(status, 400)
        self.assertIn("X-Checksum-Sha256", body["detail"])
        self.assertEqual(self.call("GET", "/api/v1/packages/bad")[0], 404)
        self.assertEqual(request(self.port, "GET", "/pkgs/bad/1/bad.dmg").status, 404)
        self.assertEqual(files_under(os.path.join(self.pkgdir, "tmp")), [])

    def test_conflicts_and_idempotence(self):
        q = "bundle_id=c.c"
        self.assertEqual(self.publish("c", "1", "c.dmg", 5000, "c1", query=q)[0], 201)
        # The same bytes again: 200 from the head (checksum given) or after the body (none given).
        status, _, body, got = self.publish("c", "1", "c.dmg", 5000, "c1", query=q)
        self.assertEqual((status, body["created"], got), (200, False, False))
        status, _, body, _ = self.publish("c", "1", "c.dmg", 5000, "c1", query=q, checksum=None)
        self.assertEqual((status, body["created"]), (200, False))
        # Other bytes: 409 from the head with a checksum, after the body without.
        self.assertEqual(self.publish("c", "1", "c.dmg", 5000, "c2", query=q)[0], 409)
        self.assertEqual(self.publish("c", "1", "c.dmg", 5000, "c2", query=q, checksum=None)[0], 409)
        self.assertEqual(files_under(os.path.join(self.pkgdir, "tmp")), [])

    def test_concurrent_publish_of_one_version(self):
        release = threading.Event()
        first = {}

        def slow(sock, sent):
            release.wait(20)

        def run():
            first["r"] = self.publish("race", "1", "r.dmg", 4 * MiB, "race", query="bundle_id=r.r", on_sent=slow)
        t = threading.Thread(target=run)
        t.start()
        time.sleep(0.5)  # the first upload is running
        status, _, body, _ = self.publish("race", "1", "r.dmg", 4 * MiB, "race2", query="bundle_id=r.r")
        release.set()
        t.join(30)
        self.assertEqual(status, 409, body)
        self.assertEqual(first["r"][0], 201)

    def test_same_bytes_stored_once_and_freed_with_the_last(self):
        q = "bundle_id=d.d"
        self.assertEqual(self.publish("dup-a", "1", "a.dmg", 2 * MiB, "dup", query=q)[0], 201)
        self.assertEqual(self.publish("dup-b", "7", "b.dmg", 2 * MiB, "dup", query=q)[0], 201)
        sha = pattern_sha256("dup", 2 * MiB)
        blobs = [p for p in files_under(os.path.join(self.pkgdir, "blobs")) if p.endswith(sha)]
        self.assertEqual(len(blobs), 1)
        self.assertEqual(self.call("DELETE", "/api/v1/packages/dup-a/1")[0], 200)
        self.assertTrue(os.path.exists(blobs[0]), "dup-b still names the bytes")
        self.assertEqual(request(self.port, "GET", "/pkgs/dup-a/1/a.dmg").status, 404)
        self.assertEqual(request(self.port, "GET", "/pkgs/dup-b/7/b.dmg", keep_body=False).sha256, sha)
        self.assertEqual(self.call("DELETE", "/api/v1/packages/dup-b/7")[0], 200)
        self.assertFalse(os.path.exists(blobs[0]))
        self.assertEqual(self.call("DELETE", "/api/v1/packages/dup-b/7")[0], 404)

    def test_delete_during_a_download(self):
        size = 24 * MiB
        self.assertEqual(self.publish("dl", "1", "dl.dmg", size, "dl", query="bundle_id=d.l")[0], 201)
        out = {}
        started = threading.Event()

        def slow():
            out["r"] = request(self.port, "GET", "/pkgs/dl/1/dl.dmg", keep_body=False, read_rate=8 * MiB,
                               on_headers=lambda r: started.set())
        t = threading.Thread(target=slow)
        t.start()
        self.assertTrue(started.wait(10))
        self.assertEqual(self.call("DELETE", "/api/v1/packages/dl/1")[0], 200)
        self.assertEqual(request(self.port, "GET", "/pkgs/dl/1/dl.dmg").status, 404, "404 at once")
        t.join(60)
        self.assertTrue(out["r"].complete, "the running download finishes")
        self.assertEqual(out["r"].sha256, pattern_sha256("dl", size))

    def test_metadata_edit(self):
        self.assertEqual(self.publish("edit", "1.0", "e.dmg", 2 * MiB + 1, "edit", query="bundle_id=org.e")[0], 201)
        status, _, body = self.call("PATCH", "/api/v1/packages/edit/1.0",
                                    body={"title": "Edited & <Fine>", "bundle_version": "1.0.1"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["metadata"]["title"], "Edited & <Fine>")
        self.assertEqual(body["metadata"]["source"]["title"], "request")
        self.assertEqual(body["sha256"], pattern_sha256("edit", 2 * MiB + 1), "the bytes never change")
        item = plistlib.loads(request(self.port, "GET", "/manifests/edit/1.0.plist").body)["items"][0]
        self.assertEqual((item["metadata"]["title"], item["metadata"]["bundle-version"]), ("Edited & <Fine>", "1.0.1"))
        self.assertEqual(len(item["assets"][0]["sha256s"]), 1)
        status, _, body = self.call("PATCH", "/api/v1/packages/edit/1.0", body={"colour": "red"})
        self.assertEqual(status, 400)
        self.assertIn("colour", body["detail"])
        self.assertEqual(self.call("PATCH", "/api/v1/packages/edit/1.0", body=b"{" * 100)[0], 400)
        self.assertEqual(self.call("PATCH", "/api/v1/packages/edit/1.0", body=b" " * (65 * 1024))[0], 413)
        self.assertEqual(self.call("PATCH", "/api/v1/packages/edit/9", body={"title": "x"})[0], 404)
        self.assertEqual(api(self.port, "PATCH", "/api/v1/packages/edit/1.0", body={"title": "x"})[0], 401)
        status, _, log = self.call("GET", "/api/v1/audit?limit=1000")
        self.assertIn("update-metadata", [e["action"] for e in log["entries"] if e["object"] == "edit/1.0"])

    def test_audit_log_pages(self):
        self.assertEqual(self.publish("aud", "1", "a.dmg", 100, "aud", query="bundle_id=a.u")[0], 201)
        self.assertEqual(self.call("DELETE", "/api/v1/packages/aud/1")[0], 200)
        status, _, log = self.call("GET", "/api/v1/audit?limit=1000")
        self.assertEqual(status, 200)
        mine = [e for e in log["entries"] if e["object"] == "aud/1"]
        self.assertEqual([e["action"] for e in mine], ["publish", "delete"])
        self.assertEqual(mine[0]["client"], "127.0.0.1")
        self.assertEqual(mine[0]["token"], "admin")
        status, _, page = self.call("GET", "/api/v1/audit?limit=1")
        self.assertEqual(len(page["entries"]), 1)
        status, _, page2 = self.call("GET", f"/api/v1/audit?limit=1&after={page['next']}")
        self.assertGreater(page2["entries"][0]["seq"], page["entries"][0]["seq"])
        self.assertEqual(self.call("GET", "/api/v1/audit?limit=0")[0], 400)


class Quota(CatalogCase):
    limit = "4MiB"

    def test_a_publish_that_does_not_fit_is_507_before_its_body(self):
        status, _, body, got = self.publish("big", "1", "big.dmg", 5 * MiB, "big", query="bundle_id=b.g")
        self.assertEqual(status, 507, body)
        self.assertFalse(got, "refused from the head: no 100 Continue")
        self.assertEqual(self.publish("small", "1", "s.dmg", 3 * MiB, "s", query="bundle_id=s.s")[0], 201)
        self.assertEqual(self.publish("small2", "1", "s.dmg", 2 * MiB, "s2", query="bundle_id=s.s")[0], 507)
        # The same bytes again take no more space.
        self.assertEqual(self.publish("small3", "1", "s.dmg", 3 * MiB, "s", query="bundle_id=s.s")[0], 201)
        status = api(self.port, "GET", "/api/v1/status")[2]
        self.assertEqual((status["PackagesLimit"], status["PackagesUsed"], status["PackageVersions"]),
                         (4 * MiB, 3 * MiB, 2))
        # catalog.limit is reloadable: SIGHUP with a bigger one and the publish fits.
        self.orchard.extra_toml = self.orchard.extra_toml.replace('limit = "4MiB"', 'limit = "16MiB"')
        self.orchard._write_config()
        os.kill(self.orchard.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while api(self.port, "GET", "/api/v1/status")[2]["PackagesLimit"] != 16 * MiB:
            self.assertLess(time.monotonic(), deadline, "catalog.limit was not reloaded")
            time.sleep(0.05)
        self.assertEqual(self.publish("small2", "1", "s.dmg", 2 * MiB, "s2", query="bundle_id=s.s")[0], 201)
        self.assertIn("orchard_catalog_limit_bytes 16777216", request(self.port, "GET", "/metrics").body.decode())


class GeneratedToken(CatalogCase):
    token = None

    def test_token_generated_at_first_start(self):
        path = os.path.join(self.orchard.state_dir, "admin.token")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(path) as f:
            token = f.read().strip()
        self.assertGreaterEqual(len(token), 32)
        self.assertIn(path, self.orchard.stderr_text())
        self.assertEqual(api(self.port, "GET", "/api/v1/packages")[0], 401)
        self.assertEqual(api(self.port, "GET", "/api/v1/packages", token=token)[0], 200)


class Restart(CatalogCase):
    def test_catalog_survives_a_restart(self):
        self.assertEqual(self.publish("keep", "3.1", "k.dmg", 3 * MiB, "keep", query="bundle_id=k.k")[0], 201)
        self.orchard.stop()
        self.orchard.start()
        r = request(self.port, "GET", "/pkgs/keep/3.1/k.dmg", keep_body=False)
        self.assertEqual((r.status, r.sha256), (200, pattern_sha256("keep", 3 * MiB)))
        status, _, shown = self.call("GET", "/api/v1/packages/keep")
        self.assertEqual(shown["versions"][0]["sha256"], pattern_sha256("keep", 3 * MiB))
        self.assertEqual(request(self.port, "GET", "/manifests/keep/3.1.plist").status, 200)


if __name__ == "__main__":
    unittest.main()
