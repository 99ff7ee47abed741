"""The systemd unit (systemd/orchard.service) and what orchardd tells
systemd, checked without systemd as PID 1 (these machines do not run it):

  - `systemd-analyze verify` passes on the unit (its ExecStart pointed at
    the built orchardd) and `systemd-analyze security --offline=yes` scores
    it; skipped with a message where systemd-analyze is missing;
  - the notification protocol, read from a socket of the test's own (a path
    and an abstract name): READY=1 with MAINPID once it serves, WATCHDOG=1
    every half $WATCHDOG_USEC, RELOADING=1 (with MONOTONIC_USEC) then
    READY=1 around a SIGHUP, STOPPING=1 at SIGTERM, exit 0;
  - the unit's ExecStart as the unit runs it: a user that is not root, only
    CAP_NET_BIND_SERVICE (setpriv, ambient), binding port 80 on 127.0.0.1,
    then its ExecReload (SIGHUP) and its stop signal. Needs root to change
    user; skipped otherwise.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest

from harness import Orchard, free_port, make_tempdir, orchardd_path, remove_tempdir, request
from procs import spawn

HERE = os.path.dirname(os.path.abspath(__file__))
UNIT = os.path.normpath(os.path.join(HERE, "..", "..", "systemd", "orchard.service"))


class Notifications:
    """A datagram socket the daemon notifies (NOTIFY_SOCKET)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path.startswith("@"):
            self.sock.bind("\0" + path[1:])
        else:
            self.sock.bind(path)
        self.name = path
        self.seen = []

    def wait_for(self, key, timeout=20.0):
        """The next message holding the line `key` (e.g. "READY=1"), as a dict."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            msg = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
            self.seen.append(msg)
            if key in data.splitlines():
                return msg
        raise AssertionError(f"no {key} within {timeout}s; seen {self.seen}")

    def close(self):
        self.sock.close()


class NotifyProtocol(unittest.TestCase):
    def start(self, notify_name, watchdog_usec=None):
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        path = notify_name if notify_name.startswith("@") else os.path.join(tmp, notify_name)
        n = Notifications(path)
        self.addCleanup(n.close)
        env = {"NOTIFY_SOCKET": path}
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        o = Orchard(1, workdir=tmp, env=env)
        self.addCleanup(o.kill9)
        o.start()
        return o, n

    def test_ready_watchdog_reload_and_stop(self):
        o, n = self.start("notify.sock", watchdog_usec=600_000)
        ready = n.wait_for("READY=1")
        self.assertEqual(ready.get("MAINPID"), str(o.pid))
        t0 = time.monotonic()
        n.wait_for("WATCHDOG=1", timeout=5)
        n.wait_for("WATCHDOG=1", timeout=5)
        self.assertLess(time.monotonic() - t0, 4, "WATCHDOG=1 comes every half WATCHDOG_USEC (0.3 s)")
        o.proc.send_signal(signal.SIGHUP)
        reloading = n.wait_for("RELOADING=1")
        self.assertRegex(reloading.get("MONOTONIC_USEC", ""), r"^\d+$")
        n.wait_for("READY=1")
        o.proc.send_signal(signal.SIGTERM)
        n.wait_for("STOPPING=1")
        self.assertEqual(o.proc.wait(30), 0)

    def test_abstract_socket_and_no_watchdog_for_another_pid(self):
        name = f"@orchard-test-notify-{os.getpid()}-{free_port()}"
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        n = Notifications(name)
        self.addCleanup(n.close)
        # WATCHDOG_PID names another process: the watchdog is not ours to feed.
        o = Orchard(1, workdir=tmp, env={"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
        self.addCleanup(o.kill9)
        o.start()
        n.wait_for("READY=1")
        with self.assertRaises(AssertionError):
            n.wait_for("WATCHDOG=1", timeout=1.0)
        o.stop()

    def test_without_notify_socket_nothing_changes(self):
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        o = Orchard(1, workdir=tmp)
        self.addCleanup(o.kill9)
        o.start()
        self.assertEqual(request(o.port, "GET", "/ca.pem").status, 404)
        o.stop()


@unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed (package systemd)")
class UnitFile(unittest.TestCase):
    def unit_for_this_build(self):
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        with open(UNIT) as f:
            text = f.read()
        self.assertIn("ExecStart=/usr/bin/orchardd ", text)
        path = os.path.join(tmp, "orchard.service")
        with open(path, "w") as f:
            f.write(text.replace("/usr/bin/orchardd", orchardd_path()))
        return path

    def test_verify(self):
        # verify runs `man orchardd(8)` for Documentation=: the page from man/,
        # as make install puts it, not one installed on this machine.
        mandir = make_tempdir()
        self.addCleanup(remove_tempdir, mandir)
        os.mkdir(os.path.join(mandir, "man8"))
        shutil.copy(os.path.join(os.path.dirname(UNIT), "..", "man", "orchardd.8"), os.path.join(mandir, "man8"))
        r = subprocess.run(["systemd-analyze", "verify", self.unit_for_this_build()], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, MANPATH=mandir))
        complaints = [line for line in (r.stdout + r.stderr).splitlines() if "orchard.service" in line]
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(complaints, [], "systemd-analyze verify complained about the unit")

    def test_security_score(self):
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", self.unit_for_this_build()],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for orchard\.service: (\d+\.\d+)", r.stdout + r.stderr)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        # The README states the score (2.0 "OK" with systemd 252); lower is safer, 10 is unprotected.
        self.assertLessEqual(float(m.group(1)), 2.5, r.stdout)


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv to run as another user")
class AsTheUnitRunsIt(unittest.TestCase):
    """ExecStart as a user that is not root, with only CAP_NET_BIND_SERVICE,
    on port 80 (127.0.0.1); then ExecReload's SIGHUP and the stop signal."""

    def test_port_80_as_nobody_with_one_capability(self):
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", 80))
        except OSError:
            self.skipTest("127.0.0.1:80 is taken on this machine")
        finally:
            probe.close()
        tmp = make_tempdir()
        self.addCleanup(remove_tempdir, tmp)
        os.chmod(tmp, 0o755)
        state = os.path.join(tmp, "state")
        os.makedirs(state)
        os.chown(state, 65534, 65534)
        cfg = os.path.join(tmp, "orchard.toml")
        with open(cfg, "w") as f:
            f.write(f'[server]\nlisten = ["127.0.0.1:80"]\n\n[storage]\ndir = "{state}"\ncache_limit = "1GiB"\n'
                    '\n[apple]\nos_feed_url = ""\n')  # no fetch of Apple's OS-version feed from a test
        n = Notifications(os.path.join(tmp, "notify.sock"))
        self.addCleanup(n.close)
        os.chmod(n.name, 0o777)  # the daemon, as nobody, must be able to send to it
        binary = orchardd_path()
        with open(os.path.join(tmp, "stderr.log"), "wb") as err:
            p = spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                       "--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service",
                       "--bounding-set=-all,+net_bind_service", "--no-new-privs",
                       binary, "--config", cfg], subprocess.DEVNULL, err, cwd=tmp,
                      env=dict(os.environ, NOTIFY_SOCKET=n.name))
        self.addCleanup(lambda: p.poll() is None and p.kill())

        def log():
            with open(os.path.join(tmp, "stderr.log"), errors="replace") as f:
                return f.read()
        try:
            n.wait_for("READY=1")
        except AssertionError:
            self.fail("no READY=1 as nobody on port 80; stderr:\n" + log())
        with open(f"/proc/{p.pid}/status") as f:
            status = f.read()
        self.assertRegex(status, r"Uid:\s+65534\s", "not running as the unprivileged user")
        self.assertRegex(status, r"CapEff:\s+0000000000000400\s", "more than CAP_NET_BIND_SERVICE")
        r = request(80, "GET", "/api/v1/status")
        self.assertEqual(r.status, 200, r)
        p.send_signal(signal.SIGHUP)  # ExecReload
        n.wait_for("RELOADING=1")
        n.wait_for("READY=1")
        p.send_signal(signal.SIGTERM)  # KillSignal
        n.wait_for("STOPPING=1")
        self.assertEqual(p.wait(30), 0, log())


if __name__ == "__main__":
    unittest.main()
