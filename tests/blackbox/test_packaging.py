"""Installation and the Debian package (issue 13), checked without
installing anything on the machine that runs the test:

  - `make install DESTDIR=<tmp> PREFIX=/usr` (and the default PREFIX,
    /usr/local): the binaries, man pages, README, the unit with ExecStart
    and Documentation pointing at PREFIX, and /etc/orchard/orchard.toml,
    which is `orchardd --print-defaults --production`, agrees with the
    unit's StateDirectory= and ConfigurationDirectory=, and passes
    `--check-config` (run by the installed orchardd). A second install keeps
    an edited orchard.toml and writes orchard.toml.new beside it; an
    unedited one is left as it is, with no .new;
  - `make deb`: the .deb is built into <build>/deb/, lintian reports no
    error or warning tag on it, its control fields, conffiles and contents
    are checked (`dpkg-deb -f`, `-I`, `-c`), it is unpacked into a temp root
    (`dpkg-deb -x`, `-e`) where the binaries are hardened (PIE, relro, bind
    now, stack protector, fortified calls), the config passes the unpacked
    orchardd's `--check-config`, and the dh-generated postinst, run with
    `deb-systemd-helper` pointed at the temp root (DPKG_ROOT) and
    `systemctl`/`deb-systemd-invoke` replaced by recorders, enables
    orchard.service (the multi-user.target.wants link) and asks for a start.
    No `dpkg -i`: it would install on the test machine itself.

The deb part is skipped, with the reason, where debhelper, dpkg-dev or
lintian are missing (`make deps` installs them).
"""

import os
import re
import shutil
import stat
import subprocess
import unittest

from harness import make_tempdir, orchardd_path, remove_tempdir

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
UNIT_SRC = os.path.join(SRC, "systemd", "orchard.service")


def build_dir():
    """The build tree ctest runs from: where ORCHARDD lives."""
    return os.path.dirname(os.path.abspath(orchardd_path()))


def make(*args, timeout=600):
    r = subprocess.run(["make", "--no-print-directory", "-C", SRC, f"BUILD_DIR={build_dir()}", *args],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"make {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r.stdout + r.stderr


def unit_value(text, key):
    """The value of the one `key=` line of a unit file."""
    values = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]
    assert len(values) == 1, f"{key}= appears {len(values)} times"
    return values[0]


def toml_value(text, section, key):
    """The literal after `key = ` in [section] of a rendered config."""
    current = None
    for line in text.splitlines():
        m = re.match(r"^\[([a-z_]+)\]$", line)
        if m:
            current = m.group(1)
        elif current == section and line.startswith(key + " = "):
            return line[len(key) + 3:]
    raise AssertionError(f"no {section}.{key} in the config")


def production_config(orchardd):
    return subprocess.run([orchardd, "--print-defaults", "--production"], capture_output=True, text=True,
                          check=True, timeout=30).stdout


class UnitAndConfigAgree(unittest.TestCase):
    """The checked-in unit and the production config name the same paths."""

    def test_paths(self):
        with open(UNIT_SRC) as f:
            unit = f.read()
        config = production_config(orchardd_path())
        self.assertEqual(unit_value(unit, "ExecStart"), "/usr/bin/orchardd --config /etc/orchard/orchard.toml")
        self.assertEqual(toml_value(config, "storage", "dir"), '"/var/lib/' + unit_value(unit, "StateDirectory") + '"')
        self.assertEqual("/etc/" + unit_value(unit, "ConfigurationDirectory") + "/orchard.toml",
                         "/etc/orchard/orchard.toml")
        self.assertEqual(toml_value(config, "server", "listen"), '["0.0.0.0:80"]')
        self.assertIn("CAP_NET_BIND_SERVICE", unit_value(unit, "AmbientCapabilities"))

    def test_production_needs_print_defaults(self):
        r = subprocess.run([orchardd_path(), "--production"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--production goes with --print-defaults", r.stderr)


class MakeInstall(unittest.TestCase):
    def setUp(self):
        self.root = make_tempdir("orchard-install-")
        self.addCleanup(remove_tempdir, self.root)

    def path(self, rel):
        return os.path.join(self.root, rel.lstrip("/"))

    def read(self, rel):
        with open(self.path(rel)) as f:
            return f.read()

    def assert_executable(self, rel):
        st = os.stat(self.path(rel))
        self.assertTrue(stat.S_ISREG(st.st_mode) and st.st_mode & 0o111, rel)

    def test_files_under_usr(self):
        out = make("install", f"DESTDIR={self.root}", "PREFIX=/usr")
        self.assertIn(f"installed {self.path('/etc/orchard/orchard.toml')}", out)
        for b in ("/usr/bin/orchardd", "/usr/bin/orchardctl"):
            self.assert_executable(b)
        for f in ("/usr/share/man/man8/orchardd.8", "/usr/share/man/man1/orchardctl.1",
                  "/usr/share/doc/orchard/README.md"):
            self.assertTrue(os.path.isfile(self.path(f)), f)
        unit = self.read("/usr/lib/systemd/system/orchard.service")
        with open(UNIT_SRC) as f:
            self.assertEqual(unit, f.read(), "PREFIX=/usr installs the unit as it is checked in")
        conf = self.read("/etc/orchard/orchard.toml")
        self.assertEqual(conf, production_config(orchardd_path()))
        self.assertEqual(os.stat(self.path("/etc/orchard/orchard.toml")).st_mode & 0o777, 0o644)
        # The installed daemon accepts the installed config.
        r = subprocess.run([self.path("/usr/bin/orchardd"), "--check-config", self.path("/etc/orchard/orchard.toml")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(r.stdout.endswith(": ok\n"), r.stdout)
        # Nothing left half-written.
        self.assertEqual(sorted(os.listdir(self.path("/etc/orchard"))), ["orchard.toml"])

    def test_default_prefix_is_usr_local(self):
        make("install", f"DESTDIR={self.root}")
        self.assert_executable("/usr/local/bin/orchardd")
        self.assert_executable("/usr/local/bin/orchardctl")
        self.assertTrue(os.path.isfile(self.path("/usr/local/share/man/man8/orchardd.8")))
        unit = self.read("/usr/local/lib/systemd/system/orchard.service")
        self.assertEqual(unit_value(unit, "ExecStart"), "/usr/local/bin/orchardd --config /etc/orchard/orchard.toml")
        self.assertIn("file:///usr/local/share/doc/orchard/README.md", unit_value(unit, "Documentation"))
        self.assertTrue(os.path.isfile(self.path("/etc/orchard/orchard.toml")))

    def test_second_install_keeps_the_admins_config(self):
        make("install", f"DESTDIR={self.root}", "PREFIX=/usr")
        conf = self.path("/etc/orchard/orchard.toml")
        # Unchanged: kept, and no .new beside it.
        out = make("install", f"DESTDIR={self.root}", "PREFIX=/usr")
        self.assertIn(f"kept {conf} (the same as this version's)", out)
        self.assertFalse(os.path.exists(conf + ".new"))
        # Edited: kept byte for byte, the new version written beside it.
        edited = self.read("/etc/orchard/orchard.toml").replace('cache_limit = "200GiB"', 'cache_limit = "50GiB"')
        self.assertIn('cache_limit = "50GiB"', edited)
        with open(conf, "w") as f:
            f.write(edited)
        out = make("install", f"DESTDIR={self.root}", "PREFIX=/usr")
        self.assertIn(f"kept {conf} (it differs from this version's; that one is {conf}.new", out)
        self.assertEqual(self.read("/etc/orchard/orchard.toml"), edited)
        self.assertEqual(self.read("/etc/orchard/orchard.toml.new"), production_config(orchardd_path()))
        r = subprocess.run([orchardd_path(), "--check-config", conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(self.path("/etc/orchard"))), ["orchard.toml", "orchard.toml.new"])


def deb_tools_missing():
    missing = [t for t in ("dpkg-buildpackage", "dh", "dh_installsystemd", "lintian", "dpkg-deb", "readelf")
               if not shutil.which(t)]
    return ", ".join(missing)


@unittest.skipIf(deb_tools_missing(), f"missing {deb_tools_missing()} (make deps installs debhelper, dpkg-dev, "
                 "fakeroot, lintian)")
class DebianPackage(unittest.TestCase):
    deb = None

    @classmethod
    def setUpClass(cls):
        version = subprocess.run(["dpkg-parsechangelog", "-l", os.path.join(SRC, "debian", "changelog"), "-S",
                                  "Version"], capture_output=True, text=True, check=True).stdout.strip()
        cls.arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                                  check=True).stdout.strip()
        cls.version = version
        cls.deb = os.path.join(build_dir(), "deb", f"orchard_{version}_{cls.arch}.deb")
        if os.path.exists(cls.deb):
            os.unlink(cls.deb)  # this run's build, not an older one
        cls.build_log = make("deb", timeout=1500)
        cls.root = make_tempdir("orchard-deb-")
        subprocess.run(["dpkg-deb", "-x", cls.deb, cls.root], check=True)
        cls.control = os.path.join(cls.root, "DEBIAN")
        subprocess.run(["dpkg-deb", "-e", cls.deb, cls.control], check=True)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "root", None):
            remove_tempdir(cls.root)

    def path(self, rel):
        return os.path.join(self.root, rel.lstrip("/"))

    def test_built_where_make_deb_says(self):
        self.assertTrue(os.path.isfile(self.deb), self.build_log[-2000:])
        self.assertIn(f"built {self.deb}", self.build_log)

    def test_lintian_clean(self):
        r = subprocess.run(["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", self.deb],
                           capture_output=True, text=True, timeout=600)
        bad = [line for line in r.stdout.splitlines() if re.match(r"^[EW]: ", line)]
        self.assertEqual(bad, [], r.stdout + r.stderr)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_control_fields(self):
        def field(name):
            return subprocess.run(["dpkg-deb", "-f", self.deb, name], capture_output=True, text=True,
                                  check=True).stdout.strip()
        self.assertEqual(field("Package"), "orchard")
        self.assertEqual(field("Version"), self.version)
        self.assertEqual(field("Architecture"), self.arch)
        depends = field("Depends")
        for lib in ("libuv1", "librocksdb", "libssl3", "libcurl4"):
            self.assertIn(lib, depends)

    def test_conffiles(self):
        info = subprocess.run(["dpkg-deb", "-I", self.deb], capture_output=True, text=True, check=True).stdout
        self.assertRegex(info, r"\bconffiles\b")
        with open(os.path.join(self.control, "conffiles")) as f:
            self.assertEqual(sorted(f.read().split()), ["/etc/logrotate.d/orchard", "/etc/orchard/orchard.toml"])

    def test_contents(self):
        listing = subprocess.run(["dpkg-deb", "-c", self.deb], capture_output=True, text=True, check=True).stdout
        names = {line.split()[-1] if " -> " not in line else line.split()[-3] for line in listing.splitlines()}
        for want in ("./usr/bin/orchardd", "./usr/bin/orchardctl", "./lib/systemd/system/orchard.service",
                     "./etc/orchard/orchard.toml", "./usr/share/man/man8/orchardd.8.gz",
                     "./usr/share/man/man1/orchardctl.1.gz", "./usr/share/doc/orchard/copyright",
                     "./usr/share/doc/orchard/changelog.gz", "./usr/share/doc/orchard/README.md",
                     "./etc/logrotate.d/orchard"):
            self.assertIn(want, names)
        self.assertFalse([n for n in names if n.startswith("./usr/lib/systemd/")], "the unit is in /lib only")

    def test_unpacked_unit_binaries_and_config(self):
        with open(self.path("/lib/systemd/system/orchard.service")) as f:
            unit = f.read()
        with open(UNIT_SRC) as f:
            self.assertEqual(unit, f.read())
        exec_start = unit_value(unit, "ExecStart").split()
        orchardd = self.path(exec_start[0])
        self.assertTrue(os.access(orchardd, os.X_OK), exec_start[0])
        conf = self.path(exec_start[2])
        with open(conf) as f:
            self.assertEqual(f.read(), production_config(orchardd))
        r = subprocess.run([orchardd, "--check-config", conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run([self.path("/usr/bin/orchardctl"), "--help"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("rollout", r.stdout)

    def test_binaries_hardened(self):
        for b in ("/usr/bin/orchardd", "/usr/bin/orchardctl"):
            path = self.path(b)
            header = subprocess.run(["readelf", "-h", path], capture_output=True, text=True, check=True).stdout
            self.assertRegex(header, r"Type:\s+DYN", f"{b}: not PIE")
            segments = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True, check=True).stdout
            self.assertIn("GNU_RELRO", segments, b)
            dynamic = subprocess.run(["readelf", "-dW", path], capture_output=True, text=True, check=True).stdout
            self.assertRegex(dynamic, r"\(FLAGS\)\s+BIND_NOW|\(FLAGS_1\).*\bNOW\b", f"{b}: no bind now")
            symbols = subprocess.run(["readelf", "--dyn-syms", "-W", path], capture_output=True, text=True,
                                     check=True).stdout
            self.assertIn("__stack_chk_fail", symbols, f"{b}: no stack protector")
            self.assertRegex(symbols, r"\b__\w+_chk\b", f"{b}: no fortified calls")

    def test_postinst_enables_and_starts_the_service(self):
        """The dh_installsystemd snippets, run against the unpacked tree:
        deb-systemd-helper (the real one) with DPKG_ROOT=<root> makes the
        enable link there; systemctl and deb-systemd-invoke are recorders, so
        nothing on this machine is started or reloaded."""
        with open(os.path.join(self.control, "postinst")) as f:
            postinst = f.read()
        self.assertIn("deb-systemd-helper enable 'orchard.service'", postinst)
        self.assertRegex(postinst, r"deb-systemd-invoke \$_dh_action 'orchard.service'")
        with open(os.path.join(self.control, "prerm")) as f:
            self.assertIn("deb-systemd-invoke stop 'orchard.service'", f.read())
        with open(os.path.join(self.control, "postrm")) as f:
            self.assertIn("deb-systemd-helper purge 'orchard.service'", f.read())

        stubs = make_tempdir("orchard-stubs-")
        self.addCleanup(remove_tempdir, stubs)
        record = os.path.join(stubs, "calls")
        real_helper = shutil.which("deb-systemd-helper")
        for name in ("systemctl", "deb-systemd-invoke"):
            with open(os.path.join(stubs, name), "w") as f:
                f.write(f'#!/bin/sh\necho "{name} $*" >> "{record}"\nexit 0\n')
        with open(os.path.join(stubs, "deb-systemd-helper"), "w") as f:
            f.write(f'#!/bin/sh\necho "deb-systemd-helper $*" >> "{record}"\n'
                    f'DPKG_ROOT="{self.root}" exec "{real_helper}" "$@"\n')
        for name in os.listdir(stubs):
            if name != "calls":
                os.chmod(os.path.join(stubs, name), 0o755)
        # /run/systemd/system decides whether the postinst starts the unit;
        # a copy that always takes that branch shows the start it asks for.
        script = os.path.join(stubs, "postinst")
        with open(script, "w") as f:
            f.write(postinst.replace("[ -d /run/systemd/system ]", "true"))
        # As dpkg runs it (deb-systemd-helper does nothing otherwise), on the temp root.
        env = dict(os.environ, PATH=stubs + ":" + os.environ.get("PATH", "/usr/bin:/bin"), DPKG_ROOT=self.root,
                   DPKG_MAINTSCRIPT_PACKAGE="orchard", DPKG_MAINTSCRIPT_NAME="postinst")
        r = subprocess.run(["sh", "-e", script, "configure", ""], capture_output=True, text=True, env=env,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(record) as f:
            calls = f.read().splitlines()
        self.assertIn("deb-systemd-helper enable orchard.service", calls)
        self.assertTrue([c for c in calls if re.fullmatch(r"deb-systemd-invoke (start|restart) orchard\.service", c)],
                        calls)
        link = self.path("/etc/systemd/system/multi-user.target.wants/orchard.service")
        self.assertTrue(os.path.islink(link), f"no enable link; calls: {calls}")
        self.assertEqual(os.readlink(link), "/lib/systemd/system/orchard.service")


if __name__ == "__main__":
    unittest.main()
