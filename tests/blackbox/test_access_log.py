"""Black-box tests of the access log (server.access_log).

  - a file target gets one line per request in the documented format
    (README, "Access log"), the secret query values (server.access_log_mask)
    shown as ***, the byte count equal to what the client received;
  - logrotate's way: rename the file, SIGUSR1, and the next lines go to a new
    file at the path while the renamed one keeps the earlier lines;
  - `false` (the default) logs nothing; `true` logs to standard error;
  - a file that cannot be opened refuses the start with the key named.
"""

import os
import re
import signal
import socket
import time
import unittest

from harness import Origin, Orchard, gen_path, make_tempdir, remove_tempdir

LINE = re.compile(
    r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) (\S+) (\d+) (\d+) (\w+) (-|\d+\.\d{3}) (\d+\.\d{3}) '
    r'(\w+) "([^"]*)" "([^"]*)"$')


def fetch(port, target, host="swcdn.apple.com"):
    """GET on a fresh connection with Connection: close; the raw response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while True:
            d = s.recv(65536)
            if not d:
                return raw
            raw += d
    finally:
        s.close()


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_for(path, needle, timeout=10.0):
    """The file's lines once one of them contains `needle`."""
    deadline = time.monotonic() + timeout
    while True:
        lines = read(path).splitlines()
        if any(needle in l for l in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def wait_lines(path, n, timeout=10.0):
    """The file's lines once it has at least n (the loop writes once per turn)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = read(path).splitlines()
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


class Box(unittest.TestCase):
    server = ""  # lines for [server]

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        cls.log = os.path.join(cls.tmp, "logs", "access.log")
        os.makedirs(os.path.dirname(cls.log))
        cls.box = Orchard(cls.origin.port, workdir=cls.tmp,
                          sections={"server": cls.server.format(log=cls.log)})
        cls.addClassCleanup(cls.box.kill9)
        cls.addClassCleanup(cls.box.stop, expect_exit=0)
        cls.box.start()


class FileLog(Box):
    server = 'access_log = "{log}"\naccess_log_mask = ["accessKey", "token", "X-Amz-Signature"]'

    def test_lines_fields_and_masked_secrets(self):
        start = len(wait_lines(self.log, 0, timeout=0))
        target = gen_path("al-1", 2048) + "?accessKey=SECRET1&x=1&token=SECRET2&X-AMZ-SIGNATURE=SECRET3"
        miss = fetch(self.box.port, target)
        hit = fetch(self.box.port, target)
        deadline = time.monotonic() + 5
        while b"orchard; hit" not in hit and time.monotonic() < deadline:  # the commit trails the last byte
            time.sleep(0.05)
            hit = fetch(self.box.port, target)
        self.assertIn(b"orchard; hit", hit)
        # Each loop writes its own lines once per turn: lines of two loops
        # may be out of order by a turn, so they are found by what they say.
        def find(lines, result, raw):
            for m in map(LINE.match, lines):
                if m and m.group(7) == result and int(m.group(6)) == len(raw):
                    return m
            return None
        deadline = time.monotonic() + 10
        while True:
            lines = read(self.log).splitlines()[start:]
            first, last = find(lines, "miss", miss), find(lines, "hit", hit)
            if (first and last) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.assertIsNotNone(first, lines)
        self.assertIsNotNone(last, lines)
        self.assertTrue(all(LINE.match(l) for l in lines), lines)
        text = "\n".join(lines)
        for secret in ("SECRET1", "SECRET2", "SECRET3"):
            self.assertNotIn(secret, text)
        want_target = gen_path("al-1", 2048) + "?accessKey=***&x=1&token=***&X-AMZ-SIGNATURE=***"
        for m, raw, result in ((first, miss, "miss"), (last, hit, result_of(hit))):
            when, client, method, tgt, status, nbytes, res, ttfb, dur, form, host, detail = m.groups()
            self.assertEqual(client, "127.0.0.1")
            self.assertEqual(method, "GET")
            self.assertEqual(tgt, want_target)
            self.assertEqual(status, "200")
            self.assertEqual(int(nbytes), len(raw), "bytes = what the client received, head and body")
            self.assertEqual(res, result)
            self.assertLessEqual(float(ttfb), float(dur))
            self.assertEqual(form, "intercept")
            self.assertEqual(host, "swcdn.apple.com")
            self.assertTrue(detail.startswith("orchard; "), detail)
        # The time is UTC, now, to the millisecond.
        import calendar
        when = calendar.timegm(time.strptime(last.group(1)[:19], "%Y-%m-%dT%H:%M:%S"))
        self.assertLess(abs(time.time() - when), 60)

    def test_local_and_refused_requests_have_lines_too(self):
        start = len(read(self.log).splitlines())
        fetch(self.box.port, "/api/v1/status", host=self.box.host)
        fetch(self.box.port, "/nothing-here", host="evil.example")
        lines = wait_lines(self.log, start + 2)[start:]
        got = [(m.group(4), m.group(5), m.group(7), m.group(10)) for m in map(LINE.match, lines) if m]
        self.assertIn(("/api/v1/status", "200", "local", "local"), got)
        self.assertIn(("/nothing-here", "403", "refused", "local"), got)

    def test_sigusr1_after_a_rename_makes_a_new_file(self):
        fetch(self.box.port, gen_path("al-rot-1", 100))
        before = wait_for(self.log, " /gen/100/al-rot-1 ")
        self.assertTrue(any(" /gen/100/al-rot-1 " in l for l in before), before)
        rotated = self.log + ".1"
        os.rename(self.log, rotated)
        fetch(self.box.port, gen_path("al-rot-2", 100))  # still goes to the renamed file
        self.assertTrue(any(" /gen/100/al-rot-2 " in l for l in wait_for(rotated, " /gen/100/al-rot-2 ")))
        self.box.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while "access log " + self.log + " reopened" not in self.box.stderr_text():
            self.assertLess(time.monotonic(), deadline, self.box.stderr_text(tail=2000))
            time.sleep(0.02)
        self.assertTrue(os.path.exists(self.log), "SIGUSR1 made no new file at the path")
        fetch(self.box.port, gen_path("al-rot-3", 100))
        fresh = wait_lines(self.log, 1)
        self.assertEqual(len(fresh), 1, fresh)
        self.assertIn(" /gen/100/al-rot-3 ", fresh[0])
        old = read(rotated)
        self.assertNotIn("al-rot-3", old)
        self.assertIn("al-rot-1", old)
        self.assertEqual(os.stat(self.log).st_mode & 0o777, 0o640)


def result_of(raw):
    return "hit" if b"Cache-Status: orchard; hit" in raw else "miss"


class Off(Box):
    server = ""  # server.access_log defaults to false

    def test_false_logs_nothing(self):
        for i in range(3):
            fetch(self.box.port, gen_path(f"al-off-{i}", 100) + "?accessKey=SECRET")
        fetch(self.box.port, "/api/v1/status", host=self.box.host)
        time.sleep(0.3)
        err = self.box.stderr_text()
        self.assertNotIn("al-off-", err)
        self.assertFalse(os.path.exists(self.log))
        metrics = fetch(self.box.port, "/metrics", host=self.box.host).decode()
        self.assertIn("\norchard_access_log_lines_total 0\n", metrics)


class Stderr(Box):
    server = "access_log = true"  # what configs before file targets meant: standard error

    def test_true_logs_to_stderr(self):
        fetch(self.box.port, gen_path("al-err", 100) + "?accessKey=SECRET")
        deadline = time.monotonic() + 10
        while " /gen/100/al-err" not in self.box.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        lines = [l for l in self.box.stderr_text().splitlines() if " /gen/100/al-err" in l]
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], LINE)
        self.assertIn("accessKey=*** 200 ", lines[0])
        self.assertNotIn("SECRET", self.box.stderr_text())


class Unopenable(unittest.TestCase):
    def test_a_file_that_cannot_be_opened_refuses_the_start(self):
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        origin = Origin().start()
        self.addCleanup(origin.stop)
        box = Orchard(origin.port, workdir=tmp,
                      sections={"server": f'access_log = "{tmp}/no/such/dir/access.log"'})
        self.addCleanup(box.kill9)
        with self.assertRaises(AssertionError):
            box.start()
        self.assertIn(f"server.access_log {tmp}/no/such/dir/access.log", box.stderr_text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
