"""Black-box: who gets what (issue 11, release control), from outside.

Role: publish versions, register devices (one by one and by bulk import),
set targeting, rings and pins through the API, and check what
`GET /api/v1/devices/{serial}/installs` and `/declarations` answer: the
issue's targeting table, each "nothing" with its why, rings with their
device counts, promote / pause / rollback / halt, pins, declarations whose
ServerToken changes only with their content, and that all of it survives a
restart. Time-driven promotion (days passing) is table-tested in
tests/unit/catalog/ (the time is an argument there); here promotion is the
admin's `promote`.
"""

import json
import unittest

from catalog_case import TOKEN, CatalogCase
from upload import api, put_stream


def serial(i):
    return f"C02X{i:06d}"


class Release(CatalogCase):
    def dev(self, serial_, **fields):
        body = {"serial": serial_, "arch": "arm64", "os_version": "14.5", "channel": "stable", "groups": []}
        body.update(fields)
        status, _, out = self.call("PUT", f"/api/v1/devices/{serial_}", body=body)
        self.assertIn(status, (200, 201), out)
        return out

    def installs(self, serial_):
        status, _, out = self.call("GET", f"/api/v1/devices/{serial_}/installs")
        self.assertEqual(status, 200, out)
        return {e["name"]: e for e in out["installs"]}

    def target(self, name, version, rule):
        status, _, out = self.call("PUT", f"/api/v1/packages/{name}/{version}/targeting", body=rule)
        self.assertEqual(status, 200, out)

    def no_rings(self):
        self.assertEqual(self.call("PUT", "/api/v1/rings", body={"rings": []})[0], 200)

    def test_targeting_table(self):
        self.no_rings()
        for v, seed in (("128.0", "c128"), ("129.0", "c129")):
            self.assertEqual(self.publish("Chrome", v, "Chrome.dmg", 5000, seed, query="bundle_id=com.google.Chrome")[0], 201)
        self.target("Chrome", "128.0", {"groups": ["finance"], "min_os": "14.0", "arch": ["arm64"], "channels": ["stable"]})
        self.target("Chrome", "129.0", {"channels": ["beta"]})
        self.dev("FIN00001", groups=["finance"])
        self.dev("SAL00001", groups=["sales"])
        self.dev("FIN00002", groups=["finance"], os_version="13.6")
        self.dev("FIN00003", groups=["finance"], channel="beta")
        got = self.installs("FIN00001")["Chrome"]
        self.assertEqual(got["version"], "128.0")
        self.assertTrue(got["url"].endswith("/pkgs/Chrome/128.0/Chrome.dmg"))
        self.assertTrue(got["manifest_url"].endswith("/manifests/Chrome/128.0.plist"))
        self.assertEqual(len(got["sha256"]), 64)
        sales = self.installs("SAL00001")["Chrome"]
        self.assertIsNone(sales["version"])
        self.assertEqual(sales["why"]["code"], "not_in_group")
        old = self.installs("FIN00002")["Chrome"]
        self.assertIsNone(old["version"])
        self.assertEqual(old["why"]["code"], "os_too_old")
        self.assertIn("13.6", old["why"]["detail"])
        self.assertEqual(self.installs("FIN00003")["Chrome"]["version"], "129.0")

    def test_devices_crud_and_import(self):
        self.assertEqual(self.call("PUT", "/api/v1/devices/bad!", body={"serial": "bad!"})[0], 400)
        self.assertEqual(api(self.port, "GET", "/api/v1/devices")[0], 401)
        created = self.call("PUT", "/api/v1/devices/ABCD1234", body={"serial": "ABCD1234", "arch": "x86_64"})
        self.assertEqual(created[0], 201)
        self.assertEqual(self.call("PUT", "/api/v1/devices/ABCD1234", body={"serial": "ABCD1234", "arch": "arm64"})[0], 200)
        self.assertEqual(self.call("GET", "/api/v1/devices/ABCD1234")[2]["arch"], "arm64")
        rows = "serial,groups,os_version,arch,site\n" + "".join(
            f"{serial(i)},{'it' if i % 20 == 0 else 'staff'},14.{i % 5},arm64,branch-{i % 3}\n" for i in range(2000))
        status, _, out = self.call("POST", "/api/v1/devices:import", body=rows.encode(),
                                   headers={"Content-Type": "text/csv"})
        self.assertEqual(status, 200, out)
        self.assertEqual(out["imported"], 2000)
        status, _, page = self.call("GET", "/api/v1/devices?group=it&page=1&page_size=50")
        self.assertEqual((status, page["total"], len(page["devices"])), (200, 100, 50))
        # curl sends Expect: 100-continue past 1 MiB: the import asks for its body.
        big = ("serial,groups\n" + "".join(f"E{i:07d},bulk\n" for i in range(80000))).encode()
        status, _, out, got = put_stream(self.port, "/api/v1/devices:import", len(big), lambda o, n: big[o:o + n],
                                         headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/csv"},
                                         method="POST")
        self.assertEqual((status, got, out["imported"]), (200, True, 80000))
        # All or nothing: one bad row imports nothing and says which.
        bad = "serial,arch\nZZZZ0001,arm64\nZZZZ0002,sparc\n"
        status, _, out = self.call("POST", "/api/v1/devices:import", body=bad.encode(), headers={"Content-Type": "text/csv"})
        self.assertEqual(status, 400)
        self.assertEqual(out["rows"][0]["row"], 3)
        self.assertEqual(self.call("GET", "/api/v1/devices/ZZZZ0001")[0], 404)
        self.assertEqual(self.call("DELETE", "/api/v1/devices/ABCD1234")[0], 200)
        self.assertEqual(self.call("GET", "/api/v1/devices/ABCD1234")[0], 404)

    def test_rings_promote_pause_rollback_pin(self):
        self.assertEqual(self.publish("Tool", "1.0", "t.dmg", 4000, "t1", query="bundle_id=org.tool")[0], 201)
        self.assertEqual(self.publish("Tool", "2.0", "t.dmg", 4000, "t2", query="bundle_id=org.tool")[0], 201)
        self.addCleanup(self.no_rings)
        rows = "serial,groups\n" + "".join(f"R{i:07d},{'ringit' if i % 20 == 0 else 'staff'}\n" for i in range(2000))
        self.assertEqual(self.call("POST", "/api/v1/devices:import", body=rows.encode(),
                                   headers={"Content-Type": "text/csv"})[0], 200)
        status, _, out = self.call("PUT", "/api/v1/rings", body={
            "rings": [{"name": "canary", "groups": ["ringit"]}, {"name": "early", "percent": 20},
                      {"name": "broad", "percent": 100}], "promote_after_days": 2})
        self.assertEqual(status, 200, out)
        status, _, state = self.call("GET", "/api/v1/packages/Tool/2.0/rollout")
        self.assertEqual((status, state["ring"]), (200, "canary"))
        counts = {r["name"]: r["devices"] for r in state["rings"]}
        everyone = state["devices_eligible"]  # other tests' devices too: the rule is unrestricted
        self.assertEqual(counts["canary"], 100)
        self.assertLess(abs(counts["early"] - (100 + 0.2 * (everyone - 100))), everyone * 0.03)
        self.assertEqual(counts["broad"], everyone)
        # 1.0 went out to everyone long ago (every version starts in the first ring).
        for _ in range(2):
            self.assertEqual(self.call("POST", "/api/v1/packages/Tool/1.0/rollout/promote")[0], 200)
        it_dev, staff = "R0000000", "R0000001"
        self.assertEqual(self.installs(it_dev)["Tool"]["version"], "2.0")
        self.assertEqual(self.installs(it_dev)["Tool"]["ring"], "canary")
        self.assertEqual(self.installs(staff)["Tool"]["version"], "1.0", "not in canary: the older version")
        # Promote twice: everyone has 2.0.
        self.assertEqual(self.call("POST", "/api/v1/packages/Tool/2.0/rollout/promote")[2]["ring"], "early")
        self.assertEqual(self.call("POST", "/api/v1/packages/Tool/2.0/rollout/promote")[2]["ring"], "broad")
        self.assertEqual(self.installs(staff)["Tool"]["version"], "2.0")
        # Pause is recorded; rollback hands 1.0 back, flagged.
        self.assertTrue(self.call("POST", "/api/v1/packages/Tool/2.0/rollout/pause",
                                  body={"reason": "crash reports"})[2]["paused"])
        back = self.call("POST", "/api/v1/packages/Tool/2.0/rollout/rollback")[2]
        self.assertTrue(back["rolled_back"])
        self.assertEqual(self.installs(staff)["Tool"]["version"], "1.0")
        self.assertEqual(self.call("POST", "/api/v1/packages/Tool/2.0/rollout/explode")[0], 404)
        # A pin: a group held at 1.0.
        self.assertEqual(self.call("PUT", "/api/v1/pins/Tool", body={"version": "1.0", "groups": ["ringit"]})[0], 200)
        self.assertEqual(self.installs(it_dev)["Tool"]["why"]["code"], "pin")
        self.assertEqual(self.call("PUT", "/api/v1/pins/Tool", body={"version": "9.9"})[0], 404)
        self.assertEqual(self.call("DELETE", "/api/v1/pins/Tool")[0], 200)
        status, _, log = self.call("GET", "/api/v1/audit?limit=1000")
        actions = [e["action"] for e in log["entries"] if e["object"] == "Tool/2.0"]
        self.assertIn("rollout-pause", actions)
        self.assertIn("rollout-rollback", actions)

    def test_declarations_and_their_server_token(self):
        self.no_rings()
        self.assertEqual(self.publish("Decl", "1.0", "d.dmg", 3000, "decl", query="bundle_id=org.decl")[0], 201)
        self.dev("DECL0001")
        first = self.call("GET", "/api/v1/devices/DECL0001/declarations")[2]
        decl = [d for d in first["declarations"] if d["Identifier"].endswith("Decl")][0]
        self.assertEqual(decl["Type"], "com.apple.configuration.package")
        self.assertIn("Install", decl["Payload"]["InstallBehavior"])
        self.assertTrue(decl["Payload"]["ManifestURL"].endswith("/manifests/Decl/1.0.plist"))
        again = self.call("GET", "/api/v1/devices/DECL0001/declarations")[2]
        self.assertEqual(json.dumps(first, sort_keys=True), json.dumps(again, sort_keys=True))
        self.target("Decl", "1.0", {"install": "required"})
        changed = [d for d in self.call("GET", "/api/v1/devices/DECL0001/declarations")[2]["declarations"]
                   if d["Identifier"] == decl["Identifier"]][0]
        self.assertEqual(changed["Payload"]["InstallBehavior"]["Install"], "Required")
        self.assertNotEqual(changed["ServerToken"], decl["ServerToken"])

    def test_zz_survives_a_restart(self):
        self.dev("KEEP0001", groups=["finance"])
        self.call("PUT", "/api/v1/rings", body={"rings": [{"name": "all", "percent": 100}]})
        self.orchard.stop()
        self.orchard.start()
        self.assertEqual(self.call("GET", "/api/v1/devices/KEEP0001")[2]["groups"], ["finance"])
        self.assertEqual(self.call("GET", "/api/v1/rings")[2]["rings"][0]["name"], "all")


if __name__ == "__main__":
    unittest.main()
