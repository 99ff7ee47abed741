"""Black-box: what a published flat package says about itself (issue 10).

Role: build real flat packages inside the test and publish them through
orchardd: an unsigned product archive written by Debian's bsdtar
(`--format xar`, a Distribution and a component's PackageInfo), a signed one
written by tests/tools/xarpkg.py with a test CA the box trusts
(catalog.trusted_roots), the same bytes changed after signing, and a
component-only package. Check what the API answer says was read and from
where, the warnings, that request values override the file's, that the
manifest names the main bundle, and that catalog.require_signed refuses
what MDM could not install (a 422 that leaves nothing behind).
"""

import hashlib
import os
import time
import plistlib
import shutil
import subprocess
import sys
import unittest

from harness import Orchard, make_tempdir, remove_tempdir, request
from origin import Origin
from upload import api, put_stream

TOKEN = "pkg-test-token"
HERE = os.path.dirname(os.path.abspath(__file__))
XARPKG = os.path.join(HERE, "..", "tools", "xarpkg.py")

DISTRIBUTION = """<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="2">
  <title>Orchard Sample App</title>
  <product id="org.example.sample" version="4.2.1"/>
  <options hostArchitectures="arm64,x86_64"/>
  <allowed-os-versions><os-version min="13.0"/></allowed-os-versions>
  <pkg-ref id="org.example.sample.app" version="4.2.1" installKBytes="20480">#app.pkg</pkg-ref>
  <pkg-ref id="org.example.sample.app">
    <bundle-version>
      <bundle CFBundleShortVersionString="4.2.1" CFBundleVersion="421" id="org.example.sample" path="Sample.app"/>
    </bundle-version>
  </pkg-ref>
  <choices-outline><line choice="default"><line choice="org.example.sample.app"/></line></choices-outline>
  <choice id="default"/>
  <choice id="org.example.sample.app" visible="false"><pkg-ref id="org.example.sample.app"/></choice>
</installer-gui-script>
"""

PACKAGEINFO = """<?xml version="1.0" encoding="utf-8"?>
<pkg-info format-version="2" identifier="org.example.sample.app" version="4.2.1" install-location="/Applications">
  <payload numberOfFiles="3" installKBytes="20480"/>
  <bundle path="./Sample.app" id="org.example.sample" CFBundleShortVersionString="4.2.1" CFBundleVersion="421"/>
</pkg-info>
"""


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_piece(path):
    f = open(path, "rb")

    def piece(offset, n):
        f.seek(offset)
        return f.read(n)
    return piece


class PackageFiles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.build = os.path.join(cls.tmp, "build")
        os.makedirs(cls.build)
        cls.ca = os.path.join(cls.tmp, "ca")
        subprocess.run([sys.executable, XARPKG, "ca", cls.ca, "--prefix", "test", "--bits", "2048"], check=True)
        cls.dist = os.path.join(cls.build, "Distribution.xml")
        cls.pinfo = os.path.join(cls.build, "PackageInfo.xml")
        with open(cls.dist, "w") as f:
            f.write(DISTRIBUTION)
        with open(cls.pinfo, "w") as f:
            f.write(PACKAGEINFO)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        cls.orchard = Orchard(cls.origin.port, workdir=cls.tmp, extra_toml=(
            f'\n[admin]\ntoken = "{TOKEN}"\n\n[catalog]\nbase_url = "https://orchard.branch.example"\n'
            f'trusted_roots = "{os.path.join(cls.ca, "test-root.pem")}"\n'))
        cls.addClassCleanup(cls.orchard.kill9)
        cls.addClassCleanup(cls.orchard.stop, expect_exit=0)
        cls.orchard.start()
        cls.port = cls.orchard.port

    def xarpkg(self, out, *args):
        subprocess.run([sys.executable, XARPKG, "build", out, *args], check=True)
        return out

    def bsdtar_pkg(self, out):
        """A product archive as Debian's bsdtar writes xar: Distribution, and
        app.pkg/{PackageInfo,Payload}."""
        root = os.path.join(self.tmp, "bsdtar-root")
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(os.path.join(root, "app.pkg"))
        shutil.copy(self.dist, os.path.join(root, "Distribution"))
        shutil.copy(self.pinfo, os.path.join(root, "app.pkg", "PackageInfo"))
        with open(os.path.join(root, "app.pkg", "Payload"), "wb") as f:
            f.write(os.urandom(300_000))
        subprocess.run(["bsdtar", "--format", "xar", "-cf", out, "-C", root, "Distribution", "app.pkg"], check=True)
        return out

    def publish(self, path, name, version, query=""):
        size = os.path.getsize(path)
        target = f"/api/v1/packages/{name}/{version}/{os.path.basename(path)}" + (f"?{query}" if query else "")
        return put_stream(self.port, target, size, file_piece(path),
                          headers={"Authorization": f"Bearer {TOKEN}", "X-Checksum-Sha256": sha256_file(path)})

    def test_unsigned_bsdtar_package_is_read_and_warned_about(self):
        pkg = self.bsdtar_pkg(os.path.join(self.build, "Sample.pkg"))
        status, _, body, _ = self.publish(pkg, "Sample", "4.2.1")
        self.assertEqual(status, 201, body)
        m = body["metadata"]
        self.assertEqual(m["title"], "Orchard Sample App")
        self.assertEqual(m["package_id"], "org.example.sample")
        self.assertEqual(m["package_version"], "4.2.1")
        self.assertEqual(m["bundle_id"], "org.example.sample")
        self.assertEqual(m["bundle_version"], "4.2.1")
        self.assertEqual(m["min_os"], "13.0")
        self.assertEqual(sorted(m["archs"]), ["arm64", "x86_64"])
        self.assertTrue(m["distribution"])
        self.assertEqual(m["kind"], "distribution")
        self.assertEqual(m["source"]["title"], "Distribution")
        self.assertFalse(body["signature"]["present"])
        self.assertTrue(any("unsigned" in w.lower() or "not signed" in w.lower() for w in body["warnings"]),
                        body["warnings"])
        self.assertTrue(body["url"].startswith("https://orchard.branch.example/pkgs/Sample/4.2.1/"))
        plist = plistlib.loads(request(self.port, "GET", "/manifests/Sample/4.2.1.plist").body)
        meta = plist["items"][0]["metadata"]
        self.assertEqual((meta["bundle-identifier"], meta["bundle-version"], meta["title"]),
                         ("org.example.sample", "4.2.1", "Orchard Sample App"))

    def test_request_values_override_the_file(self):
        pkg = self.bsdtar_pkg(os.path.join(self.build, "Override.pkg"))
        status, _, body, _ = self.publish(pkg, "Override", "1", query="title=Renamed&bundle_version=9.9")
        self.assertEqual(status, 201, body)
        self.assertEqual(body["metadata"]["title"], "Renamed")
        self.assertEqual(body["metadata"]["source"]["title"], "request")
        self.assertEqual(body["metadata"]["bundle_version"], "9.9")
        self.assertEqual(body["metadata"]["bundle_id"], "org.example.sample")

    def test_signed_package_is_verified_and_trusted(self):
        pkg = self.xarpkg(os.path.join(self.build, "Signed.pkg"), "--distribution", self.dist,
                          "--component", f"org.example.sample.app={self.pinfo}",
                          "--sign", os.path.join(self.ca, "test"))
        status, _, body, _ = self.publish(pkg, "Signed", "4.2.1")
        self.assertEqual(status, 201, body)
        sig = body["signature"]
        self.assertTrue(sig["present"] and sig["verified"] and sig["trusted"], sig)
        self.assertIn("Installer", sig["chain"][0])
        self.assertEqual(body["warnings"], [])

    def test_changed_after_signing_is_not_verified(self):
        pkg = self.xarpkg(os.path.join(self.build, "Tampered.pkg"), "--distribution", self.dist,
                          "--component", f"org.example.sample.app={self.pinfo}",
                          "--sign", os.path.join(self.ca, "test"), "--tamper", "signature")
        status, _, body, _ = self.publish(pkg, "Tampered", "4.2.1")
        self.assertEqual(status, 201, body)
        self.assertTrue(body["signature"]["present"])
        self.assertFalse(body["signature"]["verified"])
        self.assertTrue(body["warnings"], "a badly signed package carries a warning")

    def test_dmg_without_bundle_id_is_400_naming_it(self):
        path = os.path.join(self.build, "Tool.dmg")
        with open(path, "wb") as f:
            f.write(os.urandom(4096))
        status, _, body, _ = self.publish(path, "Tool", "1")
        self.assertEqual(status, 400, body)
        self.assertIn("bundle_id", body["detail"])
        self.assertEqual(api(self.port, "GET", "/api/v1/packages/Tool", token=TOKEN)[0], 404)


class RequireSigned(PackageFiles):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The same box, restarted with catalog.require_signed.
        cls.orchard.stop()
        cls.orchard.extra_toml = cls.orchard.extra_toml.replace("[catalog]\n", "[catalog]\nrequire_signed = true\n")
        cls.orchard._write_config()
        cls.orchard.start()

    def test_unsigned_bsdtar_package_is_read_and_warned_about(self):
        pkg = self.bsdtar_pkg(os.path.join(self.build, "Refused.pkg"))
        status, _, body, _ = self.publish(pkg, "Refused", "1")
        self.assertEqual(status, 422, body)
        self.assertIn("require_signed", body["detail"])
        self.assertEqual(api(self.port, "GET", "/api/v1/packages/Refused", token=TOKEN)[0], 404)
        # The refused upload's temporary file goes once its reader is done
        # (off the loop, just after the answer): wait for it, briefly.
        pkgdir = os.path.join(self.orchard.state_dir, "packages", "tmp")
        deadline = time.monotonic() + 10
        while os.listdir(pkgdir) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(os.listdir(pkgdir), [])

    test_request_values_override_the_file = None
    test_dmg_without_bundle_id_is_400_naming_it = None

    def test_changed_after_signing_is_not_verified(self):
        pkg = self.xarpkg(os.path.join(self.build, "Tampered2.pkg"), "--distribution", self.dist,
                          "--component", f"org.example.sample.app={self.pinfo}",
                          "--sign", os.path.join(self.ca, "test"), "--tamper", "signature")
        self.assertEqual(self.publish(pkg, "Tampered2", "1")[0], 422)


if __name__ == "__main__":
    unittest.main()
