"""Black-box: importing a package from an upstream URL through the box's own
cache (POST /api/v1/packages/{name}/{version}/from-url, issue 14).

Role: a local file origin (stands in for a central package repo, allowed as
pkgs.example.test and resolved to 127.0.0.1) serves a real flat package
built with Debian's bsdtar (`--format xar`) and a 25 MiB .dmg-like blob.
Claims checked against the built orchardd:
  - from-url fetches the object through the box once; the package's API
    answer is the PUT publish's (metadata read from the .pkg) plus
    source_url; the package's blob is the cache's object file hard-linked
    (two names, one inode), not a copy;
  - a second from-url of the same URL under another version costs the
    origin nothing (a cache hit) and stores the bytes once (one blob);
  - the manifest's chunk hashes (/manifests/{name}/{version}.plist) are the
    SHA-256 of each 10 MiB chunk of the bytes the origin served;
  - purging the cache (POST /api/v1/purge {"all": true}) leaves /pkgs/...
    serving the same bytes with the same ETag;
  - the same import again is a 200 with created false; a wrong sha256 is a
    400 that publishes nothing;
  - a URL whose host is not in upstream.allow, or not http(s): 400;
  - an origin 404: 502 naming the status (the package URL is the box's,
    so the origin's 404 is the reason, not the answer), nothing published;
  - no token: 401.
"""

import hashlib
import http.server
import os
import plistlib
import shutil
import subprocess
import threading
import time
import unittest

from harness import Orchard, make_tempdir, remove_tempdir, request
from upload import api

TOKEN = "import-test-token"
HOST = "pkgs.example.test"
CHUNK = 10 << 20

DISTRIBUTION = """<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="2">
  <title>Orchard Import Sample</title>
  <product id="org.example.importsample" version="4.2.1"/>
  <options hostArchitectures="arm64,x86_64"/>
  <pkg-ref id="org.example.importsample.app" version="4.2.1" installKBytes="512">#app.pkg</pkg-ref>
  <pkg-ref id="org.example.importsample.app">
    <bundle-version>
      <bundle CFBundleShortVersionString="4.2.1" CFBundleVersion="421" id="org.example.importsample" path="Sample.app"/>
    </bundle-version>
  </pkg-ref>
  <choices-outline><line choice="default"><line choice="org.example.importsample.app"/></line></choices-outline>
  <choice id="default"/>
  <choice id="org.example.importsample.app" visible="false"><pkg-ref id="org.example.importsample.app"/></choice>
</installer-gui-script>
"""

PACKAGEINFO = """<?xml version="1.0" encoding="utf-8"?>
<pkg-info format-version="2" identifier="org.example.importsample.app" version="4.2.1" install-location="/Applications">
  <payload numberOfFiles="3" installKBytes="512"/>
  <bundle path="./Sample.app" id="org.example.importsample" CFBundleShortVersionString="4.2.1" CFBundleVersion="421"/>
</pkg-info>
"""


class FileOrigin:
    """Serves `files` {path: bytes} with Content-Length, a strong ETag and
    Cache-Control: max-age=3600 (404 for anything else); counts the GETs
    and body bytes per path."""

    def __init__(self):
        self.files = {}
        self.gets = {}
        self.sent = {}
        self.lock = threading.Lock()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def answer(self, body_wanted):
                path = self.path.split("?", 1)[0]
                with origin.lock:
                    if self.command == "GET":
                        origin.gets[path] = origin.gets.get(path, 0) + 1
                    data = origin.files.get(path)
                if data is None:
                    body = b"no such file\n"
                    self.send_response(404)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if body_wanted:
                        self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest()[:16] + '"')
                self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
                self.send_header("Cache-Control", "max-age=3600")
                self.end_headers()
                if body_wanted:
                    self.wfile.write(data)
                    with origin.lock:
                        origin.sent[path] = origin.sent.get(path, 0) + len(data)

            def do_GET(self):
                self.answer(True)

            def do_HEAD(self):
                self.answer(False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def count(self, path):
        with self.lock:
            return self.gets.get(path, 0)

    def bytes_sent(self, path):
        with self.lock:
            return self.sent.get(path, 0)


def chunk_hashes(data):
    return [hashlib.sha256(data[i:i + CHUNK]).hexdigest() for i in range(0, max(len(data), 1), CHUNK)]


class ImportFromUrl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which("bsdtar") is None:
            raise unittest.SkipTest("bsdtar (libarchive-tools) is needed to build the .pkg")
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = FileOrigin().start()
        cls.addClassCleanup(cls.origin.stop)
        cls.pkg = cls.build_pkg()
        cls.dmg = os.urandom(2 * CHUNK + 4321)  # three chunks, the last one short
        cls.origin.files["/dist/Sample-4.2.1.pkg"] = cls.pkg
        cls.origin.files["/dist/tool.dmg"] = cls.dmg
        cls.orchard = Orchard(cls.origin.port, workdir=cls.tmp, resolve_extra={HOST: cls.origin.port},
                              extra_toml=f'\n[admin]\ntoken = "{TOKEN}"\n\n[catalog]\nlimit = "1GiB"\n')
        cls.addClassCleanup(cls.orchard.kill9)
        cls.addClassCleanup(cls.orchard.stop, expect_exit=0)
        cls.orchard.start()
        cls.port = cls.orchard.port
        cls.pkgdir = os.path.join(cls.orchard.state_dir, "packages")
        cls.objdir = os.path.join(cls.orchard.state_dir, "objects")

    @classmethod
    def build_pkg(cls):
        root = os.path.join(cls.tmp, "pkg-root")
        os.makedirs(os.path.join(root, "app.pkg"))
        with open(os.path.join(root, "Distribution"), "w") as f:
            f.write(DISTRIBUTION)
        with open(os.path.join(root, "app.pkg", "PackageInfo"), "w") as f:
            f.write(PACKAGEINFO)
        with open(os.path.join(root, "app.pkg", "Payload"), "wb") as f:
            f.write(os.urandom(200_000))
        out = os.path.join(cls.tmp, "Sample-4.2.1.pkg")
        subprocess.run(["bsdtar", "--format", "xar", "-cf", out, "-C", root, "Distribution", "app.pkg"], check=True)
        with open(out, "rb") as f:
            return f.read()

    def setUp(self):
        if not self.orchard.alive():
            self.fail("orchardd is not running; stderr:\n" + self.orchard.stderr_text(tail=4000))

    # -- helpers
    def from_url(self, name, version, body, token=TOKEN):
        return api(self.port, "POST", f"/api/v1/packages/{name}/{version}/from-url", token=token, body=body,
                   timeout=120)

    def get_local(self, path):
        r = request(self.port, "GET", path, [("Host", f"127.0.0.1:{self.port}")])
        self.assertTrue(r.complete, r)
        return r

    def blobs(self):
        out = []
        for root, _, names in os.walk(os.path.join(self.pkgdir, "blobs")):
            out += [os.path.join(root, n) for n in names]
        return out

    def tmp_files(self):
        return os.listdir(os.path.join(self.pkgdir, "tmp"))

    def blob_path(self, sha):
        return os.path.join(self.pkgdir, "blobs", sha[:2], sha)

    def cache_inodes(self):
        out = set()
        for root, _, names in os.walk(self.objdir):
            for n in names:
                out.add(os.stat(os.path.join(root, n)).st_ino)
        return out

    def manifest_hashes(self, name, version):
        r = self.get_local(f"/manifests/{name}/{version}.plist")
        self.assertEqual(r.status, 200, r)
        m = plistlib.loads(r.body)
        asset = m["items"][0]["assets"][0]
        self.assertEqual(asset["sha256-size"], CHUNK)
        return asset["sha256s"], asset["url"]

    def check_published(self, name, version, data, filename):
        """The manifest's chunk hashes and /pkgs bytes match `data`; returns the ETag."""
        hashes, url = self.manifest_hashes(name, version)
        self.assertEqual(hashes, chunk_hashes(data))
        self.assertTrue(url.endswith(f"/pkgs/{name}/{version}/{filename}"), url)
        r = self.get_local(f"/pkgs/{name}/{version}/{filename}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), hashlib.sha256(data).hexdigest())
        etag = r.header("etag")
        self.assertTrue(etag, r.header_list)
        return etag

    # -- the claims (run in name order)
    def test_1_pkg_is_imported_by_a_link_and_read_like_a_publish(self):
        url = f"http://{HOST}/dist/Sample-4.2.1.pkg"
        code, _, j = self.from_url("sample", "4.2.1", {"url": url})
        self.assertEqual(code, 201, j)
        sha = hashlib.sha256(self.pkg).hexdigest()
        self.assertEqual(j["sha256"], sha)
        self.assertEqual(j["size"], len(self.pkg))
        self.assertEqual(j["filename"], "Sample-4.2.1.pkg")
        self.assertEqual(j["source_url"], url)
        self.assertTrue(j["created"])
        self.assertEqual(j["metadata"]["title"], "Orchard Import Sample")
        self.assertEqual(j["metadata"]["kind"], "distribution")
        self.assertEqual(j["metadata"]["bundle_id"], "org.example.importsample")
        self.assertTrue(j["manifest_url"].endswith("/manifests/sample/4.2.1.plist"), j)
        self.assertEqual(self.origin.count("/dist/Sample-4.2.1.pkg"), 1)
        # One inode, two names: the cache's object file and the package's blob.
        st = os.stat(self.blob_path(sha))
        self.assertEqual(st.st_nlink, 2)
        self.assertIn(st.st_ino, self.cache_inodes())
        self.assertEqual(self.tmp_files(), [])
        self.check_published("sample", "4.2.1", self.pkg, "Sample-4.2.1.pkg")
        # The audit log says where it came from.
        code, _, a = api(self.port, "GET", "/api/v1/audit", token=TOKEN)
        self.assertEqual(code, 200, a)
        imports = [e for e in a["entries"] if e["action"] == "import" and e["object"] == "sample/4.2.1"]
        self.assertEqual(len(imports), 1, a)
        self.assertIn(url, imports[0]["detail"])

    def test_2_same_import_again_is_idempotent_and_a_wrong_sha256_publishes_nothing(self):
        url = f"http://{HOST}/dist/Sample-4.2.1.pkg"
        code, _, j = self.from_url("sample", "4.2.1", {"url": url})
        self.assertEqual(code, 200, j)
        self.assertFalse(j["created"])
        code, _, j = self.from_url("sample", "4.2.2", {"url": url, "sha256": "0" * 64})
        self.assertEqual(code, 400, j)
        self.assertIn("sha256", j["detail"])
        code, _, j = api(self.port, "GET", "/api/v1/packages/sample", token=TOKEN)
        self.assertEqual([v["version"] for v in j["versions"]], ["4.2.1"])
        self.assertEqual(self.tmp_files(), [])
        self.assertEqual(self.origin.count("/dist/Sample-4.2.1.pkg"), 1)

    def test_3_second_version_of_one_url_is_a_cache_hit_and_one_blob(self):
        url = f"http://{HOST}/dist/tool.dmg"
        meta = {"bundle_id": "org.example.tool", "title": "Example Tool"}
        code, _, j1 = self.from_url("tool", "1.0", {"url": url, "metadata": meta})
        self.assertEqual(code, 201, j1)
        self.assertEqual(j1["metadata"]["kind"], "file")
        self.assertEqual(self.origin.count("/dist/tool.dmg"), 1)
        sent = self.origin.bytes_sent("/dist/tool.dmg")
        self.assertEqual(sent, len(self.dmg))
        code, _, j2 = self.from_url("tool", "1.1", {"url": url, "metadata": meta,
                                                    "filename": "Tool-1.1.dmg",
                                                    "sha256": hashlib.sha256(self.dmg).hexdigest()})
        self.assertEqual(code, 201, j2)
        self.assertEqual(j2["filename"], "Tool-1.1.dmg")
        self.assertEqual(self.origin.count("/dist/tool.dmg"), 1, "the second import went to the origin")
        self.assertEqual(self.origin.bytes_sent("/dist/tool.dmg"), sent)
        self.assertEqual(j1["sha256"], j2["sha256"])
        self.assertEqual(j1["sha256"], hashlib.sha256(self.dmg).hexdigest())
        self.assertEqual([b for b in self.blobs() if b.endswith(j1["sha256"])], [self.blob_path(j1["sha256"])])
        self.check_published("tool", "1.0", self.dmg, "tool.dmg")
        self.check_published("tool", "1.1", self.dmg, "Tool-1.1.dmg")

    def test_4_purging_the_cache_leaves_the_packages_and_their_etags(self):
        before = {
            ("sample", "4.2.1"): self.check_published("sample", "4.2.1", self.pkg, "Sample-4.2.1.pkg"),
            ("tool", "1.0"): self.check_published("tool", "1.0", self.dmg, "tool.dmg"),
        }
        code, _, j = api(self.port, "POST", "/api/v1/purge", token=TOKEN, body={"all": True})
        self.assertEqual(code, 200, j)
        self.assertGreaterEqual(j.get("purged", 0), 2, j)
        # The cache's names are gone (the blob keeps its own)...
        sha = hashlib.sha256(self.dmg).hexdigest()
        deadline = time.monotonic() + 10
        while os.stat(self.blob_path(sha)).st_nlink != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(os.stat(self.blob_path(sha)).st_nlink, 1)
        # ...and the packages serve the same bytes under the same ETags.
        self.assertEqual(self.check_published("sample", "4.2.1", self.pkg, "Sample-4.2.1.pkg"),
                         before[("sample", "4.2.1")])
        self.assertEqual(self.check_published("tool", "1.0", self.dmg, "tool.dmg"), before[("tool", "1.0")])

    def test_5_urls_the_box_would_not_fetch_are_400(self):
        for url in ("http://not-allowed.example.test/x.pkg", f"ftp://{HOST}/dist/tool.dmg", "tool.dmg"):
            code, _, j = self.from_url("refused", "1", {"url": url})
            self.assertEqual(code, 400, (url, j))
            self.assertIn("url", j["detail"])
        for body in ({}, {"url": 5}, {"url": f"http://{HOST}/dist/tool.dmg", "colour": "red"}, b"not json"):
            code, _, j = self.from_url("refused", "1", body)
            self.assertEqual(code, 400, (body, j))
        code, _, j = api(self.port, "GET", "/api/v1/packages/refused", token=TOKEN)
        self.assertEqual(code, 404, j)

    def test_6_origin_404_is_a_502_and_publishes_nothing(self):
        blobs = sorted(self.blobs())
        code, _, j = self.from_url("missing", "1", {"url": f"http://{HOST}/dist/missing.pkg"})
        self.assertEqual(code, 502, j)
        self.assertIn("404", j["detail"])
        self.assertEqual(self.origin.count("/dist/missing.pkg"), 1)
        code, _, j = api(self.port, "GET", "/api/v1/packages/missing", token=TOKEN)
        self.assertEqual(code, 404, j)
        self.assertEqual(sorted(self.blobs()), blobs)
        self.assertEqual(self.tmp_files(), [])

    def test_7_needs_a_token(self):
        code, _, j = self.from_url("sample", "9", {"url": f"http://{HOST}/dist/Sample-4.2.1.pkg"}, token=None)
        self.assertEqual(code, 401, j)


if __name__ == "__main__":
    unittest.main()
