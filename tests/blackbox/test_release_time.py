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
Release policies per package (PUT /api/v1/rings/{name}): a package with
promote_after_days 1 reaches broad on day 1 while one on the global 2-day
plan is still in canary; a manual-release package's new version is offered
to no one until POST .../rollout/release (orchardctl rollout --release),
and a second release is a 409; a package with "rings": [] follows its
versions' rollout_percent while the global plan has rings; GET shows the
effective plan and where each field comes from, DELETE drops it (404 the
second time), an unknown field is a 400 naming it, every change is in the
audit log, and a policy survives a restart.
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

    def installs(self, serial_, name):
        status, _, out = self.call("GET", f"/api/v1/devices/{serial_}/installs")
        self.assertEqual(status, 200, out)
        return {e["name"]: e for e in out["installs"]}[name]

    def test_package_policies(self):
        plan = {"rings": [{"name": "canary", "groups": ["it"]}, {"name": "broad", "percent": 100}],
                "promote_after_days": 2}
        self.assertEqual(self.call("PUT", "/api/v1/rings", body=plan)[0], 200)
        rows = "serial,groups,os_version,arch\n" + "".join(
            f"P{i:07d},{'it' if i % 10 == 0 else 'staff'},14.5,arm64\n" for i in range(200))
        self.assertEqual(self.call("POST", "/api/v1/devices:import", body=rows.encode(),
                                   headers={"Content-Type": "text/csv"})[0], 200)
        it, staff = "P0000000", "P0000001"

        # Bad input: 400 naming the field (or the name), nothing stored.
        for body, field in (({"colour": 1}, "colour"), ({"release": "later"}, "release"),
                            ({"promote_after_days": -1}, "promote_after_days"),
                            ({"rings": [{"name": "a", "percent": 200}]}, "rings.a.percent"),
                            ({"rings": [{"name": "a", "size": 1}]}, "size")):
            status, _, out = self.call("PUT", "/api/v1/rings/Quick", body=body)
            self.assertEqual(status, 400, (body, out))
            self.assertIn(field, out["detail"], body)
        status, _, out = self.call("PUT", "/api/v1/rings/.hidden", body={})
        self.assertEqual(status, 400, out)
        self.assertTrue(out["detail"].startswith("name:"), out)
        self.assertEqual(self.call("PUT", "/api/v1/rings/Quick", body=b"not json")[0], 400)
        self.assertIsNone(self.call("GET", "/api/v1/rings/Quick")[2]["policy"])

        # A package on 1 day per ring beside one on the global 2-day plan.
        status, _, out = self.call("PUT", "/api/v1/rings/Quick", body={"promote_after_days": 1})
        self.assertEqual(status, 200, out)
        self.assertEqual((out["promote_after_days"], out["release"]), (1, "on_publish"))
        self.assertEqual(out["from"], {"rings": "global", "promote_after_days": "package", "release": "global"})
        self.assertEqual([r["name"] for r in out["rings"]], ["canary", "broad"])
        for name in ("Quick", "Steady"):
            self.assertEqual(self.publish(name, "1.0", f"{name}.dmg", 3000, name.lower(),
                                          query=f"bundle_id=org.{name.lower()}")[0], 201)
        self.assertEqual(self.installs(it, "Quick")["version"], "1.0")
        self.assertIsNone(self.installs(staff, "Quick")["version"])
        self.assertIsNone(self.installs(staff, "Steady")["version"])
        self.advance(DAY + 60)
        self.assertEqual(self.rollout("Quick", "1.0")["ring"], "broad")
        self.assertEqual(self.rollout("Steady", "1.0")["ring"], "canary")
        self.assertEqual(self.installs(staff, "Quick")["version"], "1.0")
        steady = self.installs(staff, "Steady")
        self.assertIsNone(steady["version"])
        self.assertEqual(steady["why"]["code"], "not_yet_in_ring")
        self.advance(DAY)
        self.assertEqual(self.installs(staff, "Steady")["version"], "1.0")

        # Manual release: a new version waits for rollout/release.
        status, _, out = self.call("PUT", "/api/v1/rings/Gated", body={"release": "manual"})
        self.assertEqual((status, out["release"], out["from"]["release"]), (200, "manual", "package"))
        self.assertEqual(self.publish("Gated", "1.0", "Gated.dmg", 3000, "gated1", query="bundle_id=org.gated")[0], 201)
        self.advance(5 * DAY)  # days pass: still held
        got = self.installs(it, "Gated")
        self.assertIsNone(got["version"])
        self.assertEqual(got["why"]["code"], "not_yet_in_ring")
        self.assertIn("not released yet", got["why"]["detail"])
        state = self.rollout("Gated", "1.0")
        self.assertEqual((state["released"], state["release"]), (False, "manual"))
        status, _, out = self.call("POST", "/api/v1/packages/Gated/1.0/rollout/release", body={"reason": "QA passed"})
        self.assertEqual(status, 200, out)
        self.assertEqual((out["released"], out["ring"]), (True, "canary"))
        self.assertEqual(out["events"][-1]["kind"], "start")
        self.assertEqual(self.installs(it, "Gated")["version"], "1.0")
        self.assertIsNone(self.installs(staff, "Gated")["version"])  # canary first, from the release
        status, _, out = self.call("POST", "/api/v1/packages/Gated/1.0/rollout/release")
        self.assertEqual(status, 409, out)
        self.assertIn("already released", out["detail"])
        # The same through orchardctl, on a second version.
        self.assertEqual(self.publish("Gated", "2.0", "Gated.dmg", 3000, "gated2", query="bundle_id=org.gated")[0], 201)
        p = self.ctl("rollout", "Gated", "2.0")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("released:        no (release manual)", p.stdout)
        self.assertEqual(self.installs(it, "Gated")["version"], "1.0")
        p = self.ctl("rollout", "Gated", "2.0", "--release")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("released:        yes (release manual)", p.stdout)
        self.assertEqual(self.installs(it, "Gated")["version"], "2.0")
        p = self.ctl("rollout", "Gated", "2.0", "--release")
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("409", p.stderr)
        # A version of an on_publish package was released at publish.
        self.assertEqual(self.call("POST", "/api/v1/packages/Steady/1.0/rollout/release")[0], 409)

        # "rings": [] while the global plan has rings: the rollout_percent decides.
        self.assertEqual(self.call("PUT", "/api/v1/rings/Flat", body={"rings": []})[0], 200)
        self.assertEqual(self.publish("Flat", "1.0", "Flat.dmg", 3000, "flat1", query="bundle_id=org.flat")[0], 201)
        status, _, out = self.call("PUT", "/api/v1/packages/Flat/1.0/targeting", body={"rollout_percent": 50})
        self.assertEqual(status, 200, out)
        for s in (f"P{i:07d}" for i in range(200)):
            got = self.installs(s, "Flat")
            self.assertEqual(got["version"] is not None, in_stage(s, "Flat", 50), s)
            if got["version"]:
                self.assertEqual((got["why"]["code"], got["ring"]), ("rule", ""))
        state = self.rollout("Flat", "1.0")
        self.assertEqual((state["ring"], state["rings"]), ("", []))

        # GET / DELETE, and the audit log.
        self.assertEqual(self.call("GET", "/api/v1/rings/Gated")[2]["policy"], {"release": "manual"})
        status, _, out = self.call("DELETE", "/api/v1/rings/Quick")
        self.assertEqual((status, out["deleted"]), (200, "Quick"))
        status, _, out = self.call("GET", "/api/v1/rings/Quick")
        self.assertEqual(status, 200, out)
        self.assertEqual((out["policy"], out["promote_after_days"]), (None, 2))
        self.assertEqual(set(out["from"].values()), {"global"})
        self.assertEqual(self.call("DELETE", "/api/v1/rings/Quick")[0], 404)
        self.assertEqual(self.call("GET", "/api/v1/rings")[2]["promote_after_days"], 2)  # the global plan as it was
        status, _, log = self.call("GET", "/api/v1/audit?limit=1000")
        self.assertEqual(status, 200)
        actions = [(e["action"], e["object"]) for e in log["entries"]]
        self.assertIn(("ring-policy", "rings/Quick"), actions)
        self.assertIn(("ring-policy-delete", "rings/Quick"), actions)
        self.assertIn(("ring-policy", "rings/Gated"), actions)
        self.assertIn(("rollout-release", "Gated/1.0"), actions)
        self.assertIn(("rollout-release", "Gated/2.0"), actions)
        self.assertEqual(sum(1 for a in actions if a == ("rollout-release", "Gated/2.0")), 1)

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
        policy = {"release": "manual", "promote_after_days": 3}
        self.assertEqual(self.call("PUT", "/api/v1/rings/Kept", body=policy)[0], 200)
        self.assertEqual(self.call("POST", "/api/v1/test/clock", body={"advance_seconds": 0})[0], 200)
        self.orchard.stop()
        self.orchard.extra_args = []
        try:
            self.orchard.start()
            self.assertEqual(self.call("GET", "/api/v1/os-targets/broad")[2]["version"], "15.1")
            kept = self.call("GET", "/api/v1/rings/Kept")[2]
            self.assertEqual((kept["release"], kept["policy"]), ("manual", {"release": "manual", "promote_after_days": 3}))
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
