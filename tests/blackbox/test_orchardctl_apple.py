"""orchardctl's Apple-content commands (`apple ...`, `prewarm ...`, `import`)
driven as an admin would, against a stand-in for the box's API
(apple_standin.py), so they do not depend on the server side.

What is checked is what the box would see and what the admin would read:
  - the request each command sends: method, path and query (escaped), the
    JSON body of prewarm put and import, the bearer token; a read-scope
    token refused on a publish route (403, exit 1);
  - `apple products` / `show` / `mirrors` / `os-versions` / `prewarm list|show`
    tables, `--json` printing the answer as is, a 404 and the 503 of a box
    with no catalog said in plain words (exit 1);
  - `apple mirror`: follows a job from queued through running to done,
    reading it every 500 ms, with a progress bar on a terminal (percent,
    rate, ETA, current file) and exit 0; a failed job exits 1 with its
    reason and each failed item; a waiting job (outside the mirror window)
    says why and exits 0 without polling, or is followed to its end with
    --wait-window; --no-wait and an already queued job print the job and
    exit 0 after the one POST;
  - `apple publish` of an unmirrored product: the box's 409 and what to do;
  - usage errors (bad --window, --interval, --sha256, prewarm put without a
    URL or product) exit 2 without a request.
"""

import json
import os
import pty
import re
import select
import subprocess
import time
import unittest

from harness import make_tempdir, orchardctl_path, remove_tempdir
from procs import _pdeathsig
import apple_standin as A


class AppleCtlCase(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.ctl_path = orchardctl_path()
        cls.tmp = make_tempdir("orchard-ctl-apple-")
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.box = A.AppleStandIn().start()
        cls.addClassCleanup(cls.box.stop)

    def setUp(self):
        self.box.clear()
        self.box.catalog_loaded = True

    def argv(self, args, token):
        argv = [self.ctl_path, "--url", self.box.url]
        if token:
            argv += ["--token", token]
        return argv + list(args)

    def env(self):
        return {k: v for k, v in os.environ.items() if not k.startswith("ORCHARD_")}

    def ctl(self, *args, token=A.PUBLISH_TOKEN, timeout=60):
        return subprocess.run(self.argv(args, token), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=self.env(), cwd=self.tmp, stdin=subprocess.DEVNULL, timeout=timeout,
                              preexec_fn=_pdeathsig)

    def ctl_tty(self, *args, token=A.PUBLISH_TOKEN, timeout=60):
        """Runs orchardctl with stderr on a pty (read while it runs); returns (rc, stdout, stderr text)."""
        master, slave = pty.openpty()
        p = subprocess.Popen(self.argv(args, token), stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                             env=self.env(), cwd=self.tmp, preexec_fn=_pdeathsig)
        os.close(slave)
        data = b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if select.select([master], [], [], 0.2)[0]:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: the child closed its side
                        chunk = b""
                    if chunk:
                        data += chunk
                        continue
                if p.poll() is not None:
                    break
            else:
                p.kill()
                self.fail("orchardctl did not end in time")
            out = p.stdout.read().decode()
        finally:
            p.stdout.close()
            os.close(master)
            p.wait(timeout=10)
        return p.returncode, out, data.decode(errors="replace")

    def assertExit(self, proc, code):
        self.assertEqual(proc.returncode, code,
                         f"exit {proc.returncode}, expected {code}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")

    def only(self, method=None, prefix=""):
        hits = self.box.seen(method, prefix)
        self.assertEqual(len(hits), 1, hits)
        return hits[0]


class ProductsTest(AppleCtlCase):

    def test_query_token_and_table(self):
        p = self.ctl("apple", "products", "--kind", "installer", "--search", "macOS Sequoia & co", "--limit", "5",
                     "--refresh", token=A.READ_TOKEN)
        self.assertExit(p, 0)
        r = self.only()
        self.assertEqual(r["method"], "GET")
        self.assertEqual(r["target"], "/api/v1/apple/products?kind=installer&q=macOS%20Sequoia%20%26%20co&limit=5&refresh=1")
        self.assertEqual(r["headers"].get("authorization"), "Bearer read-token")
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "catalog https://swscan.apple.com/content/catalogs/others/index-15.merged-1.sucatalog, "
                                   "loaded 2024-10-04T08:00:00Z (hit): 4 products match")
        self.assertRegex(lines[1], r"^ID +KIND +TITLE +VERSION +BUILD +POSTED +SIZE +HELD +MIRROR$")
        self.assertRegex(lines[2], r"^062-78825 +installer +macOS Sequoia +15\.0\.1 +24A348 +2024-10-03 +14\.0 GiB +100% +done$")
        self.assertRegex(lines[3], r"^052-15137 +update +Safari +18\.0 +20619\.1\.26 +2024-09-16 +180\.0 MiB +40% +failed$")
        self.assertRegex(lines[4], r"^071-00001 +installer +macOS Sonoma .* +0% +-$")
        self.assertEqual(len(lines), 6)

    def test_plain_and_json(self):
        p = self.ctl("apple", "products", token=A.READ_TOKEN)
        self.assertExit(p, 0)
        self.assertEqual(self.box.seen()[-1]["target"], "/api/v1/apple/products")
        p = self.ctl("apple", "products", "--json", token=A.READ_TOKEN)
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.stdout)["products"], A.PRODUCTS)
        p = self.ctl("apple", "products", "--kind", "firmware")
        self.assertExit(p, 2)

    def test_no_catalog_is_said_plainly(self):
        self.box.catalog_loaded = False
        for args in (["apple", "products"], ["apple", "show", A.OK_ID]):
            with self.subTest(args=args):
                p = self.ctl(*args)
                self.assertExit(p, 1)
                self.assertIn("orchardctl: Apple's catalog could not be loaded (503 no_catalog): "
                              + self.box.catalog_detail, p.stderr)
                self.assertEqual(p.stdout, "")

    def test_show_and_unknown(self):
        p = self.ctl("apple", "show", A.FAIL_ID, token=A.READ_TOKEN)
        self.assertExit(p, 0)
        self.assertEqual(self.only()["target"], "/api/v1/apple/products/052-15137")
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "052-15137  Safari")
        self.assertIn("  version   18.0 (20619.1.26)", lines)
        self.assertIn("  held      40%", lines)
        self.assertIn("  mirror    failed", lines)
        self.assertRegex(p.stdout, r"\npartial +40% +.* InstallAssistant\.pkg\.integrityDataV1 +" + re.escape(A.PKG) + "\n")
        self.assertRegex(p.stdout, r"\ncomplete +100% +40\.8 KiB +40\.8 KiB +- +" + re.escape(A.MANIFEST) + "\n")
        p = self.ctl("apple", "show", "no such/id")
        self.assertExit(p, 1)
        self.assertEqual(self.box.seen()[-1]["target"], "/api/v1/apple/products/no%20such%2Fid")
        self.assertIn("orchardctl: 404 not_found: no product no such/id", p.stderr)

    def test_os_versions(self):
        p = self.ctl("apple", "os-versions", token=A.READ_TOKEN)
        self.assertExit(p, 0)
        self.assertEqual(self.only()["target"], "/api/v1/apple/os-versions?platform=macOS")
        lines = p.stdout.splitlines()
        self.assertRegex(lines[0], r"^SET +PLATFORM +VERSION +BUILD +POSTED +EXPIRES +DEVICES$")
        self.assertRegex(lines[1], r"^PublicAssetSets +macOS +15\.0\.1 +24A348 +2024-10-03 +2025-01-01 +3$")
        self.assertRegex(lines[2], r"^AssetSets +macOS +14\.7 +23H124 +2024-09-16 +- +1$")
        self.assertEqual(lines[3], "source https://gdmf.apple.com/v2/pmv, fetched 2024-10-04T06:00:00Z, stale; "
                                   "last attempt 2024-10-05T06:00:00Z failed: connection refused")
        p = self.ctl("apple", "os-versions", "--platform", "iOS")
        self.assertExit(p, 0)
        self.assertEqual(self.box.seen()[-1]["target"], "/api/v1/apple/os-versions?platform=iOS")
        self.assertTrue(p.stdout.startswith("no OS releases\n"), p.stdout)


class MirrorTest(AppleCtlCase):

    def polls(self, jid):
        return self.box.seen("GET", f"/api/v1/apple/mirrors/{jid}")

    def test_follows_a_job_to_done_with_a_bar(self):
        rc, out, err = self.ctl_tty("apple", "mirror", A.OK_ID)
        self.assertEqual(rc, 0, out + err)
        post = self.only("POST")
        self.assertEqual(post["target"], f"/api/v1/apple/products/{A.OK_ID}/mirror")
        self.assertEqual(post["headers"].get("authorization"), "Bearer publish-token")
        self.assertEqual(post["body"], "")  # the POST carries no body
        polls = [r for r in self.box.seen("GET") if r["target"].startswith("/api/v1/apple/mirrors/")]
        self.assertEqual(len(polls), 4, [r["target"] for r in polls])  # queued -> running 0, 25, 60 -> done
        jid = polls[0]["target"].rsplit("/", 1)[1]
        self.assertTrue(all(r["target"] == f"/api/v1/apple/mirrors/{jid}" for r in polls))
        times = [post["time"]] + [r["time"] for r in polls]
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertTrue(all(0.45 <= g < 3 for g in gaps), gaps)  # every 500 ms
        self.assertEqual(out, f"mirror job {jid}: queued, 2 files, 1.00 GiB, held 0%\n"
                              f"mirrored: mirror job {jid}: done, 2 files, 1.00 GiB, held 100%\n")
        # The bar, redrawn in place from 0 to 100 with the box's rate, ETA and the file being fetched.
        self.assertIn("\rmirror 0 B / 1.00 GiB [------------------------] 0%  -  ETA -", err)
        self.assertIn("\rmirror 256.0 MiB / 1.00 GiB [######------------------] 25%  10.0 MiB/s  ETA 1m16s  "
                      "InstallAssistant.pkg", err)
        self.assertIn("\rmirror 614.4 MiB / 1.00 GiB [##############----------] 60%  10.0 MiB/s  ETA 40s  "
                      "InstallAssistant.pkg", err)
        self.assertRegex(err, r"\rmirror 1\.00 GiB / 1\.00 GiB \[#{24}\] 100%  -  in \ds *\r?\n$")

    def test_plain_output_and_json(self):
        p = self.ctl("apple", "mirror", A.OK_ID)
        self.assertExit(p, 0)
        self.assertNotIn("\r", p.stderr)
        self.assertRegex(p.stderr, r"^mirror: 1\.00 GiB of 1\.00 GiB \(100%\), -, in \ds\n$")
        self.assertTrue(p.stdout.endswith(": done, 2 files, 1.00 GiB, held 100%\n"), p.stdout)
        p = self.ctl("apple", "mirror", A.OK_ID, "--json")
        self.assertExit(p, 0)
        job = json.loads(p.stdout)  # the last state read, as is
        self.assertEqual(job["state"], "done")
        self.assertEqual(job["percent"], 100)

    def test_failed_job_exits_1_with_its_reason(self):
        p = self.ctl("apple", "mirror", A.FAIL_ID)
        self.assertExit(p, 1)
        polls = [r for r in self.box.seen("GET") if r["target"].startswith("/api/v1/apple/mirrors/")]
        self.assertEqual(len(polls), 2)  # running 40 -> failed
        jid = polls[0]["target"].rsplit("/", 1)[1]
        self.assertTrue(p.stderr.endswith(
            f"mirror job {jid} failed: 1 of 2 files failed\n"
            f"  failed {A.PKG}: chunklist mismatch at chunk 12 (3 verify failures)\n"), p.stderr)
        self.assertNotIn("mirrored", p.stdout)

    def test_waiting_job_says_why_and_exits_0(self):
        p = self.ctl("apple", "mirror", A.WAIT_ID)
        self.assertExit(p, 0)
        self.assertEqual(len(self.box.requests), 1)  # the POST only: nothing polled
        self.assertIn("is waiting: outside apple.mirror_window 22:00-06:00 (opens in 3h10m)\n", p.stdout)
        self.assertIn("--wait-window", p.stdout)

    def test_wait_window_follows_it_to_the_end(self):
        p = self.ctl("apple", "mirror", A.WAIT_ID, "--wait-window")
        self.assertExit(p, 0)
        polls = [r for r in self.box.seen("GET") if r["target"].startswith("/api/v1/apple/mirrors/")]
        self.assertEqual(len(polls), 4)  # waiting, waiting, running 50, done
        self.assertEqual(p.stderr.count("waits for the mirror window"), 1, p.stderr)
        self.assertIn(": done, 2 files", p.stdout)
        p = self.ctl("apple", "mirror", A.WAIT_ID, "--wait-window", "--no-wait")
        self.assertExit(p, 2)

    def test_no_wait_and_already_queued(self):
        p = self.ctl("apple", "mirror", A.OK_ID, "--no-wait")
        self.assertExit(p, 0)
        self.assertEqual([r["method"] for r in self.box.requests], ["POST"])
        self.assertRegex(p.stdout, r"^mirror job \d+: queued, 2 files, 1\.00 GiB, held 0%\n$")
        self.box.clear()
        p = self.ctl("apple", "mirror", A.QUEUED_ID, "--no-wait")
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, "mirror job 5: queued (already queued), 2 files, 1.00 GiB, held 0%\n"
                                   "note: one mirror runs at a time; this one starts after job 4\n")
        p = self.ctl("apple", "mirror", A.QUEUED_ID, "--no-wait", "--json")
        self.assertExit(p, 0)
        self.assertTrue(json.loads(p.stdout)["already_queued"])

    def test_read_token_is_refused_on_publish_routes(self):
        for args in (["apple", "mirror", A.OK_ID], ["apple", "publish", A.OK_ID], ["prewarm", "delete", "x"]):
            with self.subTest(args=args):
                p = self.ctl(*args, token=A.READ_TOKEN)
                self.assertExit(p, 1)
                self.assertIn("orchardctl: the token was refused: 403 forbidden: the token's scope is read; "
                              "this route needs publish", p.stderr)
        p = self.ctl("apple", "mirrors", token=None)
        self.assertExit(p, 1)
        self.assertIn("no token given", p.stderr)

    def test_mirrors_table(self):
        self.ctl("apple", "mirror", A.FAIL_ID)
        self.box.clear()
        p = self.ctl("apple", "mirrors", token=A.READ_TOKEN)
        self.assertExit(p, 0)
        self.assertEqual(self.only()["target"], "/api/v1/apple/mirrors")
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "mirror window: closed (jobs wait until apple.mirror_window opens)")
        self.assertRegex(lines[1], r"^ID +STATE +PERCENT +HELD +RATE +ETA +REASON$")
        self.assertTrue(any(re.match(r"^\d+ +failed +40% +40% +- +- +1 of 2 files failed$", l) for l in lines), lines)


class PublishImportTest(AppleCtlCase):

    def test_publish(self):
        p = self.ctl("apple", "publish", A.OK_ID)
        self.assertExit(p, 0)
        r = self.only()
        self.assertEqual((r["method"], r["target"]), ("POST", f"/api/v1/apple/products/{A.OK_ID}/publish"))
        self.assertTrue(p.stdout.startswith("published macOS Sequoia 15.0.1 (InstallAssistant.pkg, 14.0 GiB)\n"),
                        p.stdout)
        self.assertIn("  manifest url   http://127.0.0.1/manifests/macOS%20Sequoia/15.0.1.plist\n", p.stdout)

    def test_publish_unmirrored_is_409_and_says_what_to_do(self):
        p = self.ctl("apple", "publish", A.WAIT_ID)
        self.assertExit(p, 1)
        self.assertIn("orchardctl: 409 not_mirrored: 071-00001 is not mirrored (held 0%)\n", p.stderr)
        self.assertIn("mirror it first: orchardctl apple mirror 071-00001", p.stderr)

    def test_import(self):
        sha = "AB" * 32
        p = self.ctl("import", "Zoom", "6.2.5", "https://cdn.zoom.us/prod/6.2.5/Zoom.pkg?x=1",
                     "--filename", "Zoom 6.2.5.pkg", "--sha256", sha)
        self.assertExit(p, 0)
        r = self.only()
        self.assertEqual((r["method"], r["target"]), ("POST", "/api/v1/packages/Zoom/6.2.5/from-url"))
        self.assertEqual(r["headers"].get("content-type"), "application/json")
        self.assertEqual(json.loads(r["body"]), {"url": "https://cdn.zoom.us/prod/6.2.5/Zoom.pkg?x=1",
                                                 "filename": "Zoom 6.2.5.pkg", "sha256": sha.lower()})
        self.assertTrue(p.stdout.startswith("published Zoom 6.2.5 (Zoom 6.2.5.pkg, 2.00 KiB)\n"), p.stdout)
        self.box.clear()
        p = self.ctl("import", "Zoom", "6.2.6", "https://cdn.zoom.us/Zoom.pkg")
        self.assertExit(p, 0)
        self.assertEqual(json.loads(self.only()["body"]), {"url": "https://cdn.zoom.us/Zoom.pkg"})
        self.box.clear()
        p = self.ctl("import", "Zoom", "6.2.6", "https://cdn.zoom.us/Zoom.pkg", "--sha256", "abc")
        self.assertExit(p, 2)
        self.assertIn("--sha256 is 64 hex digits", p.stderr)
        self.assertEqual(self.box.requests, [])


class PrewarmTest(AppleCtlCase):

    def test_put_list_show_delete(self):
        p = self.ctl("prewarm", "put", "branch macs", "--url", "http://swcdn.apple.com/a.pkg",
                     "--url", "http://swcdn.apple.com/b.pkg", "--product", A.OK_ID,
                     "--window", "22:00-06:00", "--interval", "6h")
        self.assertExit(p, 0)
        r = self.only()
        self.assertEqual((r["method"], r["target"]), ("PUT", "/api/v1/prewarm/branch%20macs"))
        self.assertEqual(r["headers"].get("content-type"), "application/json")
        self.assertEqual(r["headers"].get("authorization"), "Bearer publish-token")
        self.assertEqual(json.loads(r["body"]), {"urls": ["http://swcdn.apple.com/a.pkg", "http://swcdn.apple.com/b.pkg"],
                                                 "products": [A.OK_ID], "window": "22:00-06:00", "interval": 21600})
        self.assertTrue(p.stdout.startswith("prewarm branch macs\n  window    22:00-06:00\n  interval  6h\n"), p.stdout)

        self.box.clear()
        p = self.ctl("prewarm", "put", "small", "--product", A.FAIL_ID)
        self.assertExit(p, 0)
        self.assertEqual(json.loads(self.only()["body"]), {"urls": [], "products": [A.FAIL_ID]})

        self.box.clear()
        p = self.ctl("prewarm", "list", token=A.READ_TOKEN)
        self.assertExit(p, 0)
        self.assertEqual(self.only()["target"], "/api/v1/prewarm")
        lines = p.stdout.splitlines()
        self.assertRegex(lines[0], r"^NAME +URLS +PRODUCTS +WINDOW +INTERVAL +STATE +COVERAGE +UPDATED$")
        self.assertRegex(lines[1], r"^branch macs +2 +1 +22:00-06:00 +6h +idle +0% +2024-10-04T08:00:00Z$")
        self.assertRegex(lines[2], r"^small +0 +1 +- +6h +idle")

        p = self.ctl("prewarm", "show", "branch macs", token=A.READ_TOKEN)
        self.assertExit(p, 0)
        self.assertIn("  urls      (2)\n    http://swcdn.apple.com/a.pkg\n    http://swcdn.apple.com/b.pkg\n"
                      f"  products  (1)\n    {A.OK_ID}\n", p.stdout)

        self.box.clear()
        p = self.ctl("prewarm", "delete", "branch macs")
        self.assertExit(p, 0)
        r = self.only()
        self.assertEqual((r["method"], r["target"]), ("DELETE", "/api/v1/prewarm/branch%20macs"))
        self.assertEqual(p.stdout, "deleted prewarm list branch macs\n")
        p = self.ctl("prewarm", "show", "branch macs")
        self.assertExit(p, 1)
        self.assertIn("orchardctl: 404 not_found: no prewarm list branch macs", p.stderr)

    def test_usage_errors_send_nothing(self):
        cases = [
            (["prewarm", "put", "x"], "needs at least one --url or --product"),
            (["prewarm", "put", "x", "--url", "http://a/b", "--window", "22-06"], "--window is HH:MM-HH:MM"),
            (["prewarm", "put", "x", "--url", "http://a/b", "--window", "25:00-06:00"], "--window is HH:MM-HH:MM"),
            (["prewarm", "put", "x", "--url", "http://a/b", "--interval", "soon"], "--interval: "),
            (["prewarm", "put", "x", "--url", "http://a/b", "--interval", "0"], "--interval: "),
            (["prewarm"], ""),
            (["apple"], ""),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                p = self.ctl(*args)
                self.assertExit(p, 2)
                self.assertIn(message, p.stderr)
        self.assertEqual(self.box.requests, [])


if __name__ == "__main__":
    unittest.main()
