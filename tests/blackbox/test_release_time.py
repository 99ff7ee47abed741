"""Black-box: ring promotion as days pass, OS targets, and orchardctl rollout.

Role: orchardd runs with --test-clock-offset 0 (its documented test-only
flag), so POST /api/v1/test/clock moves its wall clock days ahead. Rings
canary (group it) -> early (20 %) -> broad (100 %), promote_after_days 2;
2,000 devices bulk-imported as CSV, 5 % in group it. On day 0, 2 and 4 the
rollout's current ring and per-ring counts, and the installs answer of a
sample of devices, follow the ring rule (the staged side recomputed here
from the documented hash: SHA-256(scope \\0 serial), first 8 bytes, mod
10000); a paused version is not promoted. An OS target for ring canary
gives an `it` Mac the software-update declaration and a `staff` Mac none.
orchardctl rollout shows and acts on a version against this daemon.
"""

import hashlib
import json
import subprocess
import unittest

from catalog_case import CatalogCase
from harness import orchardctl_path

DAY = 86400
N = 2000


def serial(i):
    return f"C02T{i:06d}"


def group(i):
    return "it" if i % 20 == 0 else "staff"


def in_stage(serial_, scope, percent):
    h = hashlib.sha256(scope.encode() + b"\0" + serial_.encode()).digest()
    return int.from_bytes(h[:8], "big") % 10000 < round(percent * 100)


class ReleaseTime(CatalogCase):
    orchardd_args = ("--test-clock-offset", "0")

    def advance(self, seconds):
        status, _, out = self.call("POST", "/api/v1/test/clock", body={"advance_seconds": seconds})
        self.assertEqual(status, 200, out)
        return out

    def rollout(self, name, version):
        status, _, out = self.call("GET", f"/api/v1/packages/{name}/{version}/rollout")
        self.assertEqual(status, 200, out)
        return out

    def gets(self, serial_, name):
        status, _, out = self.call("GET", f"/api/v1/devices/{serial_}/installs")
        self.assertEqual(status, 200, out)
        return {e["name"]: e for e in out["installs"]}[name]["version"]

    def ctl(self, *args):
        return subprocess.run([orchardctl_path(), "--url", f"http://127.0.0.1:{self.port}", "--token", self.token]
                              + list(args), capture_output=True, text=True, timeout=60)

    def test_days_pass(self):
        plan = {"rings": [{"name": "canary", "groups": ["it"]}, {"name": "early", "percent": 20},
                          {"name": "broad", "percent": 100}], "promote_after_days": 2}
        self.assertEqual(self.call("PUT", "/api/v1/rings", body=plan)[0], 200)
        rows = "serial,groups,os_version,arch\n" + "".join(f"{serial(i)},{group(i)},14.5,arm64\n" for i in range(N))
        status, _, out = self.call("POST", "/api/v1/devices:import", body=rows.encode(),
                                   headers={"Content-Type": "text/csv"})
        self.assertEqual(status, 200, out)
        self.assertEqual(self.publish("Tool", "1.0", "Tool.dmg", 3000, "t10", query="bundle_id=org.tool")[0], 201)
        self.assertEqual(self.publish("Held", "1.0", "Held.dmg", 3000, "h10", query="bundle_id=org.held")[0], 201)
        paused = self.call("POST", "/api/v1/packages/Held/1.0/rollout/pause", body={"reason": "wait"})
        self.assertEqual(paused[0], 200, paused[2])

        it = sum(1 for i in range(N) if group(i) == "it")
        early = [i for i in range(N) if group(i) == "it" or in_stage(serial(i), "Tool", 20)]
        rest_share = (len(early) - it) / (N - it) * 100
        self.assertLess(abs(rest_share - 20), 1.5, rest_share)
        sample = list(range(0, N, 7))

        def check(day, ring, member):
            r = self.rollout("Tool", "1.0")
            self.assertEqual(r["ring"], ring, (day, r))
            counts = {x["name"]: x["devices"] for x in r["rings"]}
            self.assertEqual(counts, {"canary": it, "early": len(early), "broad": N})
            for i in sample:
                expect = "1.0" if member(i) else None
                self.assertEqual(self.gets(serial(i), "Tool"), expect, (day, serial(i), group(i)))

        check(0, "canary", lambda i: group(i) == "it")
        self.assertEqual(self.rollout("Held", "1.0")["next_promotion_at"], None)
        self.advance(2 * DAY + 60)
        early_set = set(early)
        check(2, "early", lambda i: i in early_set)
        held = self.rollout("Held", "1.0")
        self.assertEqual((held["ring"], held["paused"]), ("canary", True))
        self.assertIsNone(self.gets(serial(1), "Held"))
        self.advance(2 * DAY)
        check(4, "broad", lambda i: True)
        self.assertEqual(self.rollout("Held", "1.0")["ring"], "canary")

        # orchardctl rollout against this daemon: show (newest version), act, --json.
        p = self.ctl("rollout", "Held")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("ring:            canary", p.stdout)
        self.assertIn("paused:          yes", p.stdout)
        self.assertIn("broad", p.stdout)
        self.assertRegex(p.stdout, r"RING\s+DEVICES\s+INSTALLED\s+FAILED\s+STALE")
        self.assertRegex(p.stdout, r"reports:\s+0 installed, 0 failed, 0 downloading, \d+ stale of \d+ eligible")
        p = self.ctl("rollout", "Held", "1.0", "--resume", "--reason", "go")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("paused:          no", p.stdout)
        self.assertRegex(p.stdout, r"next promotion:  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
        p = self.ctl("--json", "rollout", "Held", "1.0", "--promote")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["ring"], "early")
        self.assertEqual(self.ctl("rollout", "Held", "--halt").returncode, 2)  # an action needs VERSION
        self.assertEqual(self.ctl("rollout", "Nothing").returncode, 1)

    def test_os_target_declaration(self):
        plan = {"rings": [{"name": "canary", "groups": ["it"]}, {"name": "early", "percent": 20},
                          {"name": "broad", "percent": 100}]}
        self.assertEqual(self.call("PUT", "/api/v1/rings", body=plan)[0], 200)
        for s, g in (("OSIT0001", "it"), ("OSST0001", "staff")):
            body = {"serial": s, "groups": [g], "os_version": "14.5", "arch": "arm64"}
            self.assertIn(self.call("PUT", f"/api/v1/devices/{s}", body=body)[0], (200, 201))
        self.assertEqual(self.call("PUT", "/api/v1/os-targets/nope", body={"version": "15.2"})[0], 404)
        self.assertEqual(self.call("PUT", "/api/v1/os-targets/canary", body={"version": "15.x"})[0], 400)
        self.assertEqual(self.call("PUT", "/api/v1/os-targets/canary", body={"version": "15.2", "deadline": "soon"})[0], 400)
        target = {"version": "15.2", "build": "24C101", "deadline": "2027-01-10T18:00:00Z"}
        status, _, out = self.call("PUT", "/api/v1/os-targets/canary", body=target)
        self.assertEqual(status, 200, out)
        self.assertEqual(self.call("GET", "/api/v1/os-targets/canary")[2]["version"], "15.2")
        listed = self.call("GET", "/api/v1/os-targets")[2]["os_targets"]
        self.assertEqual([t["ring"] for t in listed], ["canary"])

        def sw(s):
            status, _, out = self.call("GET", f"/api/v1/devices/{s}/declarations")
            self.assertEqual(status, 200, out)
            return [d for d in out["declarations"]
                    if d["Type"] == "com.apple.configuration.softwareupdate.enforcement.specific"]

        got = sw("OSIT0001")
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]["Payload"], {"TargetOSVersion": "15.2", "TargetBuildVersion": "24C101",
                                             "TargetLocalDateTime": "2027-01-10T18:00:00"})
        self.assertEqual(sw("OSST0001"), [])
        self.assertEqual(self.call("DELETE", "/api/v1/os-targets/canary")[0], 200)
        self.assertEqual(sw("OSIT0001"), [])
        self.assertEqual(self.call("GET", "/api/v1/os-targets/canary")[0], 404)

    def test_zz_restart_without_the_flag(self):
        # OS targets are durable and audited; without the flag there is no
        # test clock route and the wall clock is the real one.
        plan = {"rings": [{"name": "canary", "groups": ["it"]}, {"name": "broad", "percent": 100}]}
        self.assertEqual(self.call("PUT", "/api/v1/rings", body=plan)[0], 200)
        self.assertEqual(self.call("PUT", "/api/v1/os-targets/broad", body={"version": "15.1"})[0], 200)
        self.assertEqual(self.call("POST", "/api/v1/test/clock", body={"advance_seconds": 0})[0], 200)
        self.orchard.stop()
        self.orchard.extra_args = []
        try:
            self.orchard.start()
            self.assertEqual(self.call("GET", "/api/v1/os-targets/broad")[2]["version"], "15.1")
            # No such route: the answer of any path the box does not serve.
            absent = self.call("POST", "/api/v1/no-such-route", body={})[0]
            self.assertNotEqual(absent, 200)
            self.assertEqual(self.call("POST", "/api/v1/test/clock", body={"advance_seconds": 60})[0], absent)
            status, _, log = self.call("GET", "/api/v1/audit?limit=1000")
            self.assertEqual(status, 200)
            actions = [e["action"] for e in log["entries"] if e["object"].startswith("os-target/")]
            self.assertIn("os-target", actions)
            self.assertIn("os-target-delete", actions)
        finally:
            self.orchard.stop()
            self.orchard.extra_args = list(self.orchardd_args)
            self.orchard.start()


if __name__ == "__main__":
    unittest.main()
