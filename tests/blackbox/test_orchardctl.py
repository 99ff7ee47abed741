"""orchardctl, driven as an admin would, against a stand-in for the box's
catalog API (catalog_standin.py) and, for `status`, the real orchardd.

What is checked is what the box would see and what the admin would read:
  - publish: the exact request target (a filename with spaces, the query
    overrides, all percent-encoded), X-Checksum-Sha256 equal to the file's
    SHA-256 and to the body received, Content-Length, Expect: 100-continue,
    a refusal from the head (409) with no body sent, the summary printed
    (metadata, signature, warnings, URLs) and --json's answer as is;
  - the token from each source: --token, $ORCHARD_TOKEN, --token-file,
    $ORCHARD_STORAGE_DIR/admin.token, ./var/orchard/admin.token; and which
    wins;
  - exit codes: 1 with "orchardctl: <status> <error>: <detail>" for an error
    answer, 2 for bad usage, 3 for a closed port (naming the URL);
  - progress: plain lines (no '\\r', at most one per 5 s plus the end) when
    stderr is not a terminal, a redrawn bar when it is one (a pty);
  - packages / show / delete / audit (--all following `next`) tables.
"""

import hashlib
import json
import os
import pty
import re
import select
import subprocess
import time
import unittest

from harness import Orchard, free_port, make_tempdir, orchardctl_path, remove_tempdir, request
from procs import _pdeathsig
from catalog_standin import CatalogStandIn

TOKEN = "secret-token"


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_file(path, size, seed=b"orchard"):
    with open(path, "wb") as f:
        block = hashlib.sha256(seed).digest() * 2048  # 64 KiB
        left = size
        while left > 0:
            f.write(block[:left])
            left -= len(block)
    return path


class CtlCase(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.ctl_path = orchardctl_path()
        cls.tmp = make_tempdir("orchard-ctl-")
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.box = CatalogStandIn(token=TOKEN).start()
        cls.addClassCleanup(cls.box.stop)

    def ctl(self, *args, env=None, cwd=None, url=True, token=True, timeout=60, stderr=subprocess.PIPE):
        """Runs orchardctl with a clean environment (no ORCHARD_* from ours)."""
        e = {k: v for k, v in os.environ.items() if not k.startswith("ORCHARD_")}
        e.update(env or {})
        argv = [self.ctl_path]
        if url:
            argv += ["--url", self.box.url]
        if token:
            argv += ["--token", TOKEN]
        return subprocess.run(argv + list(args), stdout=subprocess.PIPE, stderr=stderr, text=True,
                              env=e, cwd=cwd or self.tmp, stdin=subprocess.DEVNULL, timeout=timeout,
                              preexec_fn=_pdeathsig)

    def assertExit(self, proc, code):
        self.assertEqual(proc.returncode, code,
                         f"exit {proc.returncode}, expected {code}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")

    def package_file(self, filename, size=100_000, seed=b"orchard"):
        return write_file(os.path.join(make_tempdir("orchard-ctl-pkg-"), filename), size, seed)


class PublishTest(CtlCase):

    def test_publish_sends_what_the_box_expects(self):
        path = self.package_file("My App 1.0.pkg", 300_000)
        self.box.clear()
        p = self.ctl("publish", path, "--name", "my-app", "--version", "1.0 beta",
                     "--title", "My App & Co", "--bundle-id", "com.example.myapp",
                     "--bundle-version", "1.0", "--package-id", "com.example.myapp.pkg",
                     "--min-os", "14.0", "--max-os", "15.99", "--arch", "arm64", "--arch", "x86_64")
        self.assertExit(p, 0)
        put = self.box.last("PUT")
        self.assertEqual(put["target"].split("?")[0], "/api/v1/packages/my-app/1.0%20beta/My%20App%201.0.pkg")
        query = put["target"].split("?", 1)[1].split("&")
        self.assertEqual(sorted(query), sorted([
            "title=My%20App%20%26%20Co", "bundle_id=com.example.myapp", "bundle_version=1.0",
            "package_id=com.example.myapp.pkg", "min_os=14.0", "max_os=15.99", "archs=arm64%2Cx86_64"]))
        want = sha256_of(path)
        h = put["headers"]
        self.assertEqual(h.get("x-checksum-sha256"), want)
        self.assertEqual(put["body_sha256"], want)
        self.assertEqual(h.get("content-length"), "300000")
        self.assertEqual(put["body_len"], 300000)
        self.assertEqual(h.get("expect", "").lower(), "100-continue")
        self.assertEqual(h.get("authorization"), f"Bearer {TOKEN}")
        self.assertEqual(put["status"], 201)

        out = p.stdout
        self.assertIn("published my-app 1.0 beta (My App 1.0.pkg", out)
        self.assertRegex(out, r"title\s+My App & Co\s+\(request\)")
        self.assertRegex(out, r"bundle\s+com\.example\.myapp 1\.0")
        self.assertRegex(out, r"min OS\s+14\.0")
        self.assertRegex(out, r"archs\s+arm64, x86_64")
        self.assertRegex(out, r"kind\s+component")
        self.assertRegex(out, r"signature\s+unsigned \(no signature\)")
        self.assertIn("warning: unsigned: the package carries no signature", out)
        answer = json.loads(put["answer"])
        self.assertIn(answer["url"], out)
        self.assertIn(answer["manifest_url"], out)

        # Same bytes again: 200, said so.
        p = self.ctl("publish", path, "--name", "my-app", "--version", "1.0 beta")
        self.assertExit(p, 0)
        self.assertEqual(self.box.last("PUT")["status"], 200)
        self.assertIn("already published", p.stdout)

    def test_filename_arch_and_json(self):
        path = self.package_file("tool.pkg", 5000)
        # --arch takes one value each: the file after it is still the positional.
        p = self.ctl("--json", "publish", "--arch", "arm64", path, "--name", "tool", "--version", "2",
                     "--filename", "Tool Installer.pkg")
        self.assertExit(p, 0)
        put = self.box.last("PUT")
        self.assertEqual(put["target"], "/api/v1/packages/tool/2/Tool%20Installer.pkg?archs=arm64")
        self.assertEqual(json.loads(p.stdout), json.loads(put["answer"]))
        # --json after the command works too.
        p = self.ctl("publish", path, "--name", "tool", "--version", "2", "--filename", "Tool Installer.pkg", "--json")
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.stdout)["sha256"], sha256_of(path))

    def test_conflict_is_refused_before_the_body(self):
        first = self.package_file("c.pkg", 200_000, seed=b"one")
        other = self.package_file("c.pkg", 200_000, seed=b"two")
        self.assertExit(self.ctl("publish", first, "--name", "conflict", "--version", "1"), 0)
        p = self.ctl("publish", other, "--name", "conflict", "--version", "1")
        self.assertExit(p, 1)
        self.assertIn("orchardctl: 409 exists: conflict 1 exists with other bytes", p.stderr)
        put = self.box.last("PUT")
        self.assertEqual(put["status"], 409)
        self.assertFalse(put["body_read"], "the body was sent although the box refused from the head")

    def test_plain_progress_lines_when_not_a_terminal(self):
        path = self.package_file("slow.pkg", 14 << 20)
        self.box.rate = 2 << 20  # ~7 s
        try:
            t0 = time.monotonic()
            p = self.ctl("publish", path, "--name", "slow", "--version", "1", timeout=120)
            took = time.monotonic() - t0
        finally:
            self.box.rate = None
        self.assertExit(p, 0)
        self.assertNotIn("\r", p.stderr)
        lines = [l for l in p.stderr.splitlines() if l.startswith("upload: ")]
        self.assertGreaterEqual(len(lines), 2, p.stderr)          # at least one at 5 s, plus the end
        self.assertLessEqual(len(lines) - 1, int(took / 5) + 1, p.stderr)  # at most one per 5 s
        self.assertRegex(lines[-1], r"^upload: 14\.0 MiB of 14\.0 MiB \(100%\), .*/s, in \d+s$")
        self.assertRegex(lines[0], r"^upload: [\d.]+ [KMG]?i?B of 14\.0 MiB \(\d+%\), .*ETA")

    def test_progress_bar_on_a_terminal(self):
        path = self.package_file("tty.pkg", 1 << 20)
        master, slave = pty.openpty()
        try:
            p = self.ctl("publish", path, "--name", "tty", "--version", "1", stderr=slave)
            os.close(slave)
            slave = None
            data = b""
            while select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        self.assertExit(p, 0)
        text = data.decode(errors="replace")
        self.assertIn("\rupload ", text)
        self.assertRegex(text, r"upload 1\.00 MiB / 1\.00 MiB \[#+\] 100%")


class TokenTest(CtlCase):

    def auth_seen(self):
        return self.box.last()["headers"].get("authorization")

    def test_token_sources_in_order(self):
        # --token
        self.assertExit(self.ctl("packages"), 0)
        self.assertEqual(self.auth_seen(), f"Bearer {TOKEN}")
        # $ORCHARD_TOKEN
        self.assertExit(self.ctl("packages", token=False, env={"ORCHARD_TOKEN": TOKEN}), 0)
        self.assertEqual(self.auth_seen(), f"Bearer {TOKEN}")
        # --token beats $ORCHARD_TOKEN
        p = self.ctl("--token", "wrong", "packages", token=False, env={"ORCHARD_TOKEN": TOKEN})
        self.assertExit(p, 1)
        self.assertEqual(self.auth_seen(), "Bearer wrong")
        self.assertIn("orchardctl: 401 unauthorized: a bearer token is required", p.stderr)
        # --token-file (white space around the token is not part of it)
        tf = os.path.join(self.tmp, "tok")
        with open(tf, "w") as f:
            f.write(f"  {TOKEN}\n")
        self.assertExit(self.ctl("--token-file", tf, "packages", token=False), 0)
        self.assertEqual(self.auth_seen(), f"Bearer {TOKEN}")
        # an unreadable --token-file is a usage error
        p = self.ctl("--token-file", tf + ".missing", "packages", token=False)
        self.assertExit(p, 2)
        self.assertIn("tok.missing", p.stderr)
        # $ORCHARD_STORAGE_DIR/admin.token
        storage = make_tempdir("orchard-ctl-storage-")
        with open(os.path.join(storage, "admin.token"), "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(os.path.join(storage, "admin.token"), 0o600)
        self.assertExit(self.ctl("packages", token=False, env={"ORCHARD_STORAGE_DIR": storage}), 0)
        self.assertEqual(self.auth_seen(), f"Bearer {TOKEN}")
        # $ORCHARD_TOKEN beats the token file
        p = self.ctl("packages", token=False, env={"ORCHARD_STORAGE_DIR": storage, "ORCHARD_TOKEN": "other"})
        self.assertExit(p, 1)
        self.assertEqual(self.auth_seen(), "Bearer other")

    @unittest.skipIf(os.access("/var/lib/orchard/admin.token", os.R_OK),
                     "/var/lib/orchard/admin.token exists here and comes first")
    def test_default_token_file_and_none(self):
        cwd = make_tempdir("orchard-ctl-cwd-")
        p = self.ctl("packages", token=False, cwd=cwd)
        self.assertExit(p, 1)
        self.assertIsNone(self.auth_seen())
        self.assertIn("orchardctl: 401", p.stderr)
        self.assertIn("no token given", p.stderr)
        os.makedirs(os.path.join(cwd, "var", "orchard"))
        with open(os.path.join(cwd, "var", "orchard", "admin.token"), "w") as f:
            f.write(TOKEN + "\n")
        self.assertExit(self.ctl("packages", token=False, cwd=cwd), 0)
        self.assertEqual(self.auth_seen(), f"Bearer {TOKEN}")

    def test_url_from_environment(self):
        p = self.ctl("status", url=False, env={"ORCHARD_URL": self.box.url + "/"})
        self.assertExit(p, 0)
        self.assertEqual(self.box.last()["target"], "/api/v1/status")


class ExitCodeTest(CtlCase):

    def test_error_answer_is_1(self):
        p = self.ctl("show", "no-such-package")
        self.assertExit(p, 1)
        self.assertEqual(p.stderr.strip(), "orchardctl: 404 not_found: no package no-such-package")

    def test_bad_usage_is_2(self):
        path = self.package_file("u.pkg", 10)
        for args in (["publish", path, "--version", "1"],   # no --name
                     ["publish", os.path.join(self.tmp, "missing.pkg"), "--name", "a", "--version", "1"],
                     ["delete", "only-name"],
                     ["audit", "--limit", "zero"],
                     ["frobnicate"],
                     []):
            with self.subTest(args=args):
                self.box.clear()
                p = self.ctl(*args)
                self.assertExit(p, 2)
                self.assertTrue(p.stderr.strip(), "no message for a usage error")
                self.assertEqual(self.box.requests, [], "a usage error still sent a request")

    def test_closed_port_is_3(self):
        url = f"http://127.0.0.1:{free_port()}"
        for args in (["status"], ["packages"], ["publish", self.package_file("x.pkg", 10), "--name", "x", "--version", "1"]):
            with self.subTest(args=args):
                p = self.ctl("--url", url, *args, url=False)
                self.assertExit(p, 3)
                self.assertIn(url, p.stderr)

    def test_help_is_0(self):
        p = self.ctl("--help", url=False, token=False)
        self.assertExit(p, 0)
        for cmd in ("status", "metrics", "publish", "packages", "show", "delete", "audit"):
            self.assertIn(cmd, p.stdout)


class ListingTest(CtlCase):

    def test_packages_show_delete_audit(self):
        one = self.package_file("a.pkg", 2048, seed=b"v1")
        two = self.package_file("a.pkg", 4096, seed=b"v2")
        self.assertExit(self.ctl("publish", one, "--name", "listed", "--version", "1.0"), 0)
        self.assertExit(self.ctl("publish", two, "--name", "listed", "--version", "1.1"), 0)

        p = self.ctl("packages")
        self.assertExit(p, 0)
        lines = p.stdout.splitlines()
        self.assertRegex(lines[0], r"^NAME\s+LATEST\s+VERSIONS\s+SIZE$")
        row = next(l for l in lines if l.startswith("listed "))
        self.assertRegex(row, r"^listed\s+1\.1\s+2\s+6\.00 KiB$")
        self.assertEqual(lines[0].index("LATEST"), row.index("1.1"))

        p = self.ctl("show", "listed")
        self.assertExit(p, 0)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "listed")
        self.assertRegex(lines[1], r"^VERSION\s+FILENAME\s+SIZE\s+SHA256\s+PUBLISHED\s+DOWNLOADS\s+WARNINGS$")
        self.assertTrue(lines[2].startswith("1.1 "), p.stdout)   # newest first
        self.assertTrue(lines[3].startswith("1.0 "), p.stdout)
        self.assertIn(sha256_of(two)[:12], lines[2])
        self.assertNotIn(sha256_of(two)[:13], lines[2])
        self.assertRegex(lines[2], r"\s\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+0\s+1$")
        p = self.ctl("--json", "show", "listed")
        self.assertEqual([v["version"] for v in json.loads(p.stdout)["versions"]], ["1.1", "1.0"])

        p = self.ctl("delete", "listed", "1.0")
        self.assertExit(p, 0)
        self.assertEqual(self.box.last()["target"], "/api/v1/packages/listed/1.0")
        self.assertIn("deleted listed 1.0", p.stdout)
        self.assertExit(self.ctl("delete", "listed", "1.0"), 1)

        # audit: 3 entries so far (2 publishes, 1 delete); pages of one.
        self.box.clear()
        p = self.ctl("audit", "--all", "--limit", "1")
        self.assertExit(p, 0)
        targets = [r["target"] for r in self.box.requests]
        self.assertEqual(targets, ["/api/v1/audit?limit=1", "/api/v1/audit?after=1&limit=1",
                                   "/api/v1/audit?after=2&limit=1"])
        lines = p.stdout.splitlines()
        self.assertRegex(lines[0], r"^SEQ\s+TIME\s+ACTION\s+OBJECT\s+CLIENT\s+TOKEN$")
        self.assertEqual(len(lines), 4, p.stdout)
        self.assertRegex(lines[3], r"^\s*3\s+\S+Z\s+delete\s+listed/1\.0\s+127\.0\.0\.1\s+admin$")
        p = self.ctl("audit", "--after", "1", "--limit", "1")
        self.assertExit(p, 0)
        self.assertIn("more: --after 2", p.stdout)
        p = self.ctl("--json", "audit", "--all")
        self.assertEqual([e["seq"] for e in json.loads(p.stdout)["entries"]], [1, 2, 3])

    def test_status_and_metrics_need_no_token(self):
        p = self.ctl("status", token=False, cwd=make_tempdir("orchard-ctl-cwd-"))
        self.assertExit(p, 0)
        self.assertRegex(p.stdout, r"CacheStatus\s+OK")
        p = self.ctl("metrics", token=False)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, "orchard_up 1\n")


class RealDaemonStatusTest(unittest.TestCase):
    """`orchardctl status` against the built orchardd."""

    def test_status(self):
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        box = Orchard(free_port(), workdir=tmp)  # no origin is needed for status
        self.addCleanup(box.kill9)
        box.start()
        self.addCleanup(box.stop, expect_exit=0)
        ctl = orchardctl_path()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHARD_")}
        url = f"http://127.0.0.1:{box.port}"
        p = subprocess.run([ctl, "--url", url, "status"], capture_output=True, text=True, env=env,
                           timeout=30, cwd=tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"(?m)^CacheLimit\s+\d+$")
        self.assertRegex(p.stdout, r"(?m)^CacheStatus\s+\S+")
        p = subprocess.run([ctl, "--url", url, "--json", "status"], capture_output=True, text=True, env=env,
                           timeout=30, cwd=tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("TotalBytesReturnedToClients", json.loads(p.stdout))
        p = subprocess.run([ctl, "--url", url, "metrics"], capture_output=True, text=True, env=env,
                           timeout=30, cwd=tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(re.search(r"(?m)^orchard_", p.stdout), p.stdout[:500])


class RealDaemonCatalogTest(unittest.TestCase):
    """publish, packages, show, delete and audit against the built orchardd,
    with the token the box generated into storage.dir/admin.token found
    through ORCHARD_STORAGE_DIR (as on the box itself)."""

    def test_publish_to_delete(self):
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        box = Orchard(free_port(), workdir=tmp)
        self.addCleanup(box.kill9)
        box.start()
        self.addCleanup(box.stop, expect_exit=0)
        ctl = orchardctl_path()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHARD_")}
        env["ORCHARD_STORAGE_DIR"] = box.state_dir
        env["ORCHARD_URL"] = f"http://127.0.0.1:{box.port}"
        path = os.path.join(tmp, "Real Tool.dmg")
        data = os.urandom(3 * 1024 * 1024 + 17)
        with open(path, "wb") as f:
            f.write(data)

        def run(*args):
            return subprocess.run([ctl, *args], capture_output=True, text=True, env=env, timeout=60, cwd=tmp)
        p = run("publish", path, "--name", "Real Tool", "--version", "2.5", "--bundle-id", "org.example.real")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("/pkgs/Real%20Tool/2.5/Real%20Tool.dmg", p.stdout)
        self.assertIn("/manifests/Real%20Tool/2.5.plist", p.stdout)
        self.assertIn(hashlib.sha256(data).hexdigest(), p.stdout)
        r = request(box.port, "GET", "/pkgs/Real%20Tool/2.5/Real%20Tool.dmg", keep_body=False)
        self.assertEqual((r.status, r.sha256), (200, hashlib.sha256(data).hexdigest()))
        p = run("--json", "show", "Real Tool")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["versions"][0]["downloads"], 1)
        p = run("packages")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Real Tool", p.stdout)
        # The same file again is idempotent; another file under the version is refused (exit 1).
        self.assertEqual(run("publish", path, "--name", "Real Tool", "--version", "2.5",
                             "--bundle-id", "org.example.real").returncode, 0)
        other = os.path.join(tmp, "other.dmg")
        with open(other, "wb") as f:
            f.write(b"other bytes")
        p = run("publish", other, "--name", "Real Tool", "--version", "2.5", "--bundle-id", "org.example.real")
        self.assertEqual(p.returncode, 1)
        self.assertIn("409", p.stderr)
        self.assertEqual(run("delete", "Real Tool", "2.5").returncode, 0)
        p = run("--json", "audit")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([e["action"] for e in json.loads(p.stdout)["entries"]], ["publish", "delete"])
        p = run("--token", "wrong", "packages")
        self.assertEqual(p.returncode, 1)
        self.assertIn("401", p.stderr)


if __name__ == "__main__":
    unittest.main()
