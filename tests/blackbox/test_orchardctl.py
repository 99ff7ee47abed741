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
  - packages / show / delete / audit (--all following `next`) tables;
  - against the real orchardd and a local origin (RealDaemonOpsTest):
    `status` shows the API's numbers in AssetCacheManagerUtil's format,
    `top --count 2` prints two plain frames with rates, `purge` (URL,
    --host, --all) makes the next request go to the origin, `reload`
    applies a good file and lists a bad one's problems (exit 1), `doctor`
    passes on a good box and names a broken setting in plain words (exit
    1), and an unreachable box or a refused token is said so.
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
        self.assertIn("orchardctl: the token was refused: 401 unauthorized: a bearer token is required", p.stderr)
        self.assertIn("orchardctl: the token came from --token", p.stderr)
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
        for args in (["status"], ["packages"], ["purge", "--all"], ["reload"], ["top", "--count", "1"],
                     ["publish", self.package_file("x.pkg", 10), "--name", "x", "--version", "1"]):
            with self.subTest(args=args):
                p = self.ctl("--url", url, *args, url=False)
                self.assertExit(p, 3)
                self.assertEqual(p.stderr.strip(), f"orchardctl: cannot reach the box at {url}: connection refused")

    def test_help_is_0(self):
        p = self.ctl("--help", url=False, token=False)
        self.assertExit(p, 0)
        for cmd in ("status", "top", "metrics", "purge", "reload", "doctor", "publish", "packages", "show", "delete",
                    "audit"):
            self.assertIn(cmd, p.stdout)
        p = self.ctl("--version", url=False, token=False)
        self.assertExit(p, 0)
        self.assertRegex(p.stdout, r"^orchardctl \d+\.\d+\.\d+\n$")

    def test_purge_needs_exactly_one_target(self):
        for args in (["purge"], ["purge", "http://a/x", "--all"], ["purge", "--host", "h", "--all"]):
            with self.subTest(args=args):
                self.box.clear()
                p = self.ctl(*args)
                self.assertExit(p, 2)
                self.assertEqual(self.box.requests, [], "a usage error still sent a request")


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
        self.assertEqual(p.stdout, "Content caching status:\n    CacheLimit: 1 KB\n    CacheStatus: OK\n"
                                   "    CacheUsed: Zero KB\n")
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
        self.assertTrue(p.stdout.startswith("Content caching status:\n"), p.stdout)
        self.assertRegex(p.stdout, r"(?m)^    CacheLimit: [\d.]+ [KMGT]B$")
        self.assertRegex(p.stdout, r"(?m)^    CacheStatus: OK$")
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


def apple_bytes(n):
    """What orchardctl status prints for a byte count (as AssetCacheManagerUtil)."""
    if n == 0:
        return "Zero KB"
    if n < 1000:
        return f"{n} bytes"
    units, decimals = ["KB", "MB", "GB", "TB", "PB"], [0, 1, 2, 2, 2]
    v, unit = n / 1000, 0
    while True:
        r = round(v, decimals[unit])
        if r < 1000 or unit == 4:
            v = r
            break
        v /= 1000
        unit += 1
    text = f"{v:.{decimals[unit]}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {units[unit]}"


class RealDaemonOpsTest(unittest.TestCase):
    """status, top, purge, reload and doctor against the built orchardd and a
    local origin that the box's upstream.resolve points every allowed host at."""

    @classmethod
    def setUpClass(cls):
        from origin import Origin
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        # Only hosts the config resolves to the origin: doctor can check each.
        cls.box = Orchard(cls.origin.port, workdir=cls.tmp, allow=["swcdn.apple.com", "updates.cdn-apple.com"])
        cls.addClassCleanup(cls.box.kill9)
        cls.addClassCleanup(cls.box.stop, expect_exit=0)
        cls.box.start()
        cls.url = f"http://127.0.0.1:{cls.box.port}"
        with open(cls.box.config_path) as f:
            cls.good_config = f.read()

    def setUp(self):
        self.assertTrue(self.box.alive(), self.box.stderr_text(tail=3000))

    def tearDown(self):
        with open(self.box.config_path, "w") as f:
            f.write(self.good_config)

    def ctl(self, *args, token=True, timeout=60):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHARD_")}
        env["ORCHARD_STORAGE_DIR"] = self.box.state_dir  # the generated admin token, as on the box
        argv = [orchardctl_path(), "--url", self.url]
        if token is not True:
            env.pop("ORCHARD_STORAGE_DIR")
            if token:
                argv += ["--token", token]
        return subprocess.run(argv + list(args), capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=self.tmp, stdin=subprocess.DEVNULL, preexec_fn=_pdeathsig)

    def status(self):
        r = request(self.box.port, "GET", "/api/v1/status", [("Host", self.box.host)])
        self.assertEqual(r.status, 200)
        return json.loads(r.body)

    def get(self, path, host="swcdn.apple.com"):
        return self.box.get(path, host=host)

    def stored(self, path, host="swcdn.apple.com"):
        self.assertEqual(self.get(path, host).status, 200)
        deadline = time.monotonic() + 5
        while not self.get(path, host).is_hit():
            self.assertLess(time.monotonic(), deadline, f"{path} never became a hit")
            time.sleep(0.05)

    def test_status_shows_the_api_numbers(self):
        self.assertEqual(self.ctl("purge", "--all").returncode, 0)  # objects of the other tests
        for i in range(3):
            self.stored(f"/gen/{(i + 1) * 300}K/ctl-status-{i}")
        # A worker adds a response's last bytes to the counters after the
        # write returns, which can be after the client has read them: wait
        # until two answers agree before comparing.
        before, deadline = self.status(), time.monotonic() + 5
        while True:
            time.sleep(0.2)
            again = self.status()
            if again["TotalBytesReturnedToClients"] == before["TotalBytesReturnedToClients"]:
                break
            self.assertLess(time.monotonic(), deadline, "the counters never settled")
            before = again
        p = self.ctl("status")
        after = self.status()
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "Content caching status:")
        shown = {}
        for line in lines[1:]:
            if line.startswith("        "):
                continue  # a list item
            key, _, value = line.strip().partition(": ")
            shown[key] = value
        self.assertEqual(sorted(shown), sorted(after), "every key of the API, once, sorted")
        self.assertEqual(list(shown), sorted(shown))
        for key in ("TotalBytesReturnedToClients", "TotalBytesStoredFromOrigin", "TotalBytesDropped", "CacheUsed",
                    "CacheFree", "CacheLimit"):
            self.assertEqual(before[key], after[key], key)  # nothing moved while orchardctl asked
            self.assertEqual(shown[key], apple_bytes(after[key]), key)
        for key in ("Objects", "Port", "RegistrationStatus", "FillsInFlight", "ConfigGeneration"):
            self.assertEqual(shown[key], str(after[key]), key)
        for key in ("Activated", "Active"):
            self.assertEqual(shown[key], "true")
        self.assertEqual(shown["HitRatio"], f"{after['HitRatio'] * 100:.1f}%")
        self.assertEqual(shown["ByteHitRatio"], f"{after['ByteHitRatio'] * 100:.1f}%")
        self.assertEqual(shown["CacheStatus"], "OK")
        self.assertEqual(shown["Version"], after["Version"])
        self.assertEqual(shown["PrivateAddresses"], "(1)")
        self.assertIn("        127.0.0.1", lines)
        self.assertRegex(shown["TotalBytesAreSince"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
        self.assertEqual(shown["Objects"], "3")
        self.assertEqual(shown["CacheUsed"], apple_bytes(1800 * 1024))  # 300K + 600K + 900K
        p = self.ctl("--json", "status")
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(p.stdout)
        self.assertEqual(j["CacheUsed"], after["CacheUsed"])
        self.assertEqual(j["TotalBytesReturnedToClients"], after["TotalBytesReturnedToClients"])

    def test_top_prints_plain_frames(self):
        t0 = time.monotonic()
        p = self.ctl("top", "--count", "2", "--interval", "0.5")
        took = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("\x1b[", p.stdout, "no screen control when stdout is not a terminal")
        frames = [f for f in p.stdout.split("\n\n") if f.strip()]
        self.assertEqual(len(frames), 2, p.stdout)
        for f in frames:
            self.assertRegex(f, rf"^orchard \d+\.\d+\.\d+ at {re.escape(self.url)}  up ")
            self.assertRegex(f, r"(?m)^cache +[\d.]+ \S+ of [\d.]+ [KMGT]B")
            self.assertRegex(f, r"(?m)^fills in flight: \d+$")
        self.assertRegex(frames[0], r"(?m)^requests +- ")          # no rate before a second read
        self.assertRegex(frames[1], r"(?m)^requests +[\d.]+/s ")   # each read is a request: > 0
        self.assertRegex(frames[1], r"(?m)^to clients +[\d.]+ \S+/s")
        self.assertGreaterEqual(took, 0.5)
        self.assertLess(took, 10)

    def test_top_on_a_terminal_redraws_and_ends_on_q(self):
        master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHARD_")}
        p = subprocess.Popen([orchardctl_path(), "--url", self.url, "top", "--interval", "0.3"], stdin=slave,
                             stdout=slave, stderr=subprocess.PIPE, env=env, preexec_fn=_pdeathsig)
        os.close(slave)
        data = b""
        try:
            deadline = time.monotonic() + 10
            while data.count(b"\x1b[H\x1b[2J") < 2 and time.monotonic() < deadline:
                if select.select([master], [], [], 0.2)[0]:
                    data += os.read(master, 65536)
            os.write(master, b"q")
            rc = p.wait(5)
            while select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(5)
            os.close(master)
            err = p.stderr.read()
            p.stderr.close()
        self.assertEqual(rc, 0, err)
        text = data.decode(errors="replace")
        self.assertGreaterEqual(text.count("\x1b[H\x1b[2J"), 2, text)  # cleared and redrawn
        self.assertIn("(q or Ctrl-C to quit)", text)
        self.assertRegex(text, r"requests +[\d.]+/s")
        self.assertNotIn("q", text.split("(q or Ctrl-C to quit)")[-1], "the q was echoed")

    def test_top_shows_a_fill_in_flight(self):
        import threading
        path = f"/gen/{3 << 20}/ctl-top-slow?rate={1 << 20}"
        t = threading.Thread(target=lambda: self.get(path))
        t.start()
        try:
            deadline = time.monotonic() + 10
            while not self.status()["Fills"]:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
            p = self.ctl("top", "--count", "1")
        finally:
            t.join(30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"(?m)^fills in flight: 1$")
        self.assertRegex(p.stdout, r"(?m)^  \[[#-]{24}\] +\d+\.\d% .* of 3\.1 MB +1 client +http://swcdn\.apple\.com"
                                   r"/gen/3145728/ctl-top-slow\?rate=1048576$")

    def test_purge_url_host_and_all(self):
        a, b, other = "/gen/40K/ctl-purge-a", "/gen/40K/ctl-purge-b", "/gen/40K/ctl-purge-other"
        self.stored(a)
        self.stored(b)
        self.stored(other, host="updates.cdn-apple.com")
        n = self.origin.count(a)
        p = self.ctl("purge", f"http://swcdn.apple.com{a}")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, f"purged http://swcdn.apple.com{a}: 1 object\n")
        self.assertFalse(self.get(a).is_hit())
        self.assertEqual(self.origin.count(a), n + 1)
        self.assertTrue(self.get(b).is_hit())
        # Nothing stored for it: exit 1, said so.
        self.stored(a)
        self.assertEqual(self.ctl("purge", f"http://swcdn.apple.com{a}").returncode, 0)
        p = self.ctl("purge", f"http://swcdn.apple.com{a}")
        self.assertEqual(p.returncode, 1)
        self.assertIn("orchardctl: 404 Not Found: nothing is stored for http://swcdn.apple.com" + a, p.stderr)
        # --host leaves the other host's object.
        self.stored(a)
        p = self.ctl("purge", "--host", "swcdn.apple.com")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"^purged host swcdn\.apple\.com: \d+ objects?\n$")
        self.assertFalse(self.get(b).is_hit())
        self.assertTrue(self.get(other, host="updates.cdn-apple.com").is_hit())
        p = self.ctl("--json", "purge", "--all")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertGreaterEqual(json.loads(p.stdout)["purged"], 1)
        self.assertFalse(self.get(other, host="updates.cdn-apple.com").is_hit())

    def test_reload_good_and_bad(self):
        gen = self.status()["ConfigGeneration"]
        with open(self.box.config_path, "w") as f:
            f.write(self.good_config.replace("[server]\n", '[server]\nidle_timeout = "9s"\n', 1))
        p = self.ctl("reload")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, f"applied: config generation {gen + 1}\nchanged: server.idle_timeout\n")
        with open(self.box.config_path, "w") as f:
            f.write(self.good_config.replace("[server]\n", '[server]\nidle_timeout = "never"\nfrobnicate = 2\n', 1))
        p = self.ctl("reload")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertIn(f"orchardctl: the box refused the reload (422): the running config (generation {gen + 1}) stays",
                      p.stderr)
        self.assertRegex(p.stderr, r"(?m)^  server\.idle_timeout \(line 2\): .+")
        self.assertRegex(p.stderr, r"(?m)^  server\.frobnicate \(line 3\): .+")
        self.assertEqual(self.status()["ConfigGeneration"], gen + 1)

    def test_doctor_passes_on_a_good_box(self):
        p = self.ctl("doctor")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertTrue(p.stdout.endswith("every check passed\n"), p.stdout)
        out = p.stdout
        self.assertRegex(out, rf"(?m)^OK +config +{re.escape(self.box.config_path)}: valid$")  # the box named its file
        self.assertRegex(out, rf"(?m)^OK +box +{re.escape(self.url)} answers \(orchard \S+, active, CacheStatus OK\)$")
        self.assertRegex(out, rf"(?m)^OK +listen 127\.0\.0\.1:{self.box.port} +127\.0\.0\.1:{self.box.port} accepts")
        self.assertRegex(out, r"(?m)^OK +storage +.* free of .* on storage\.dir ")
        for host in ("swcdn.apple.com", "updates.cdn-apple.com"):
            self.assertRegex(out, rf"(?m)^OK +dns {re.escape(host)} +upstream\.resolve sends it to 127\.0\.0\.1:")
            self.assertRegex(out, rf"(?m)^OK +reach {re.escape(host)} +connected to 127\.0\.0\.1:{self.origin.port} ")

    def test_doctor_fails_in_plain_words(self):
        dead = free_port()
        broken = self.good_config.replace(f'"updates.cdn-apple.com" = "127.0.0.1:{self.origin.port}"',
                                          f'"updates.cdn-apple.com" = "127.0.0.1:{dead}"')
        broken = broken.replace('allow = ["swcdn.apple.com", "updates.cdn-apple.com"',
                                'allow = ["swcdn.apple.com", "updates.cdn-apple.com", "no-such-host.invalid"')
        self.assertNotEqual(broken, self.good_config)
        path = os.path.join(self.tmp, "broken.toml")
        with open(path, "w") as f:
            f.write(broken)
        p = self.ctl("doctor", "--config", path)
        self.assertEqual(p.returncode, 1, p.stdout)
        out = p.stdout
        self.assertRegex(out, rf"(?m)^OK +config +{re.escape(path)}: valid$")
        self.assertIn(f"the box runs on {self.box.config_path}, not this file", out)
        self.assertRegex(out, rf"(?m)^FAIL +reach updates\.cdn-apple\.com +unreachable: 127\.0\.0\.1:{dead} "
                              r"\(upstream\.resolve\): connection refused$")
        self.assertRegex(out, r"(?m)^FAIL +dns no-such-host\.invalid +does not resolve: ")
        self.assertRegex(out, r"(?m)^FAIL +reach no-such-host\.invalid +unreachable: the name does not resolve$")
        self.assertRegex(out, r"(?m)^OK +reach swcdn\.apple\.com ")
        self.assertTrue(out.endswith("3 checks failed\n"), out)
        # A file with problems: each named with its key and line.
        with open(path, "w") as f:
            f.write(self.good_config.replace("[storage]\n", '[storage]\ncache_limit2 = "1GiB"\n', 1))
        p = self.ctl("doctor", "--config", path)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(p.stdout, rf"(?m)^FAIL +config +{re.escape(path)}: 1 problem ")
        self.assertRegex(p.stdout, rf"(?m)^ +{re.escape(path)}:\d+: storage\.cache_limit2: ")
        # A box that does not answer.
        p = subprocess.run([orchardctl_path(), "--url", f"http://127.0.0.1:{dead}", "doctor", "--config",
                            self.box.config_path], capture_output=True, text=True, timeout=60, cwd=self.tmp)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(p.stdout, rf"(?m)^FAIL +box +cannot reach the box at http://127\.0\.0\.1:{dead}: "
                                   r"connection refused$")

    def test_unreachable_and_refused_token(self):
        dead = f"http://127.0.0.1:{free_port()}"
        p = subprocess.run([orchardctl_path(), "--url", dead, "status"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 3)
        self.assertEqual(p.stderr, f"orchardctl: cannot reach the box at {dead}: connection refused\n")
        for args in (["purge", "--all"], ["reload"]):
            with self.subTest(args=args):
                p = self.ctl(*args, token="not-the-token")
                self.assertEqual(p.returncode, 1)
                self.assertIn("orchardctl: the token was refused: 401 Unauthorized: the bearer token is not one of "
                              "this box's tokens", p.stderr)
                self.assertIn("the token came from --token", p.stderr)
        p = self.ctl("purge", "--all", token=None)
        self.assertEqual(p.returncode, 1)
        self.assertIn("orchardctl: 401 Unauthorized: this route needs Authorization", p.stderr)
        self.assertIn("no token given", p.stderr)


if __name__ == "__main__":
    unittest.main()
