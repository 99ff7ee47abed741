"""Black-box: delivery reports and rollout health (issue 11), from outside.

Role: publish a version, put rings whose first ring is one group, register
ten devices of that group, and forward their status items as an MDM would
(`POST /api/v1/devices/{serial}/status`, Apple's nested StatusItems and an
MDM's flat keys): with 3 failed and 7 installed the ring's failure share
(30 %) passes catalog.halt_on_failure_percent (20) once
catalog.halt_min_reports (10) devices have reported, so the rollout shows
halted with the reason, the audit log has the auto-halt entry, and the
rollout answer's health object counts the states. A report with unknown
keys is accepted and kept (GET .../status gives it back); a body that is
not a JSON object is refused, and so is a device the box does not know.
"""

import unittest

from catalog_case import CatalogCase
from harness import request


def serial(i):
    return f"HLTH{i:04d}"


class ReleaseHealth(CatalogCase):
    def report(self, serial_, body, expect=200):
        status, _, out = self.call("POST", f"/api/v1/devices/{serial_}/status", body=body)
        self.assertEqual(status, expect, out)
        return out

    def test_failures_halt_the_ring_and_say_why(self):
        self.assertEqual(self.publish("Health", "1.0", "h.dmg", 4000, "h1", query="bundle_id=org.health")[0], 201)
        status, _, out = self.call("PUT", "/api/v1/rings", body={
            "rings": [{"name": "canary", "groups": ["hcanary"]}, {"name": "broad", "percent": 100}]})
        self.assertEqual(status, 200, out)
        for i in range(10):
            status, _, out = self.call("PUT", f"/api/v1/devices/{serial(i)}",
                                       body={"serial": serial(i), "groups": ["hcanary"], "arch": "arm64"})
            self.assertIn(status, (200, 201), out)
        # Three failures first (Apple's nested shape, by declaration Identifier) ...
        for i in range(3):
            out = self.report(serial(i), {"StatusItems": {"package": {"list": [
                {"identifier": "org.orchard.package.Health", "version": "1.0", "state": "failed",
                 "reasons": [{"code": "Error.Install", "description": "disk full"}]}]}}})
            self.assertEqual(out["packages"][0]["name"], "Health")
            self.assertEqual(out["halted"], [])
        # ... then installs (an MDM's flat keys, by bundle id); the tenth report tips it.
        for i in range(3, 10):
            out = self.report(serial(i), {"package.list": [{"bundle-id": "org.health", "version": "1.0",
                                                            "state": "installed"}],
                                          "softwareupdate.install-state": "idle"})
            self.assertEqual(out["halted"] != [], i == 9, out)
        reason = out["halted"][0]["reason"]
        self.assertIn("auto-halt", reason)
        self.assertIn("3 of 10", reason)
        self.assertIn("30 %", reason)
        status, _, state = self.call("GET", "/api/v1/packages/Health/1.0/rollout")
        self.assertEqual(status, 200, state)
        self.assertTrue(state["halted"])
        self.assertEqual(state["ring"], "canary")
        self.assertEqual(state["reason"], reason)
        canary = [r for r in state["health"]["rings"] if r["name"] == "canary"][0]
        self.assertEqual((canary["eligible"], canary["failed"], canary["installed"], canary["reported"],
                          canary["stale"]), (10, 3, 7, 10, 0))
        self.assertEqual(state["health"]["halt_on_failure_percent"], 20)
        metrics = request(self.port, "GET", "/metrics").body.decode()
        self.assertIn('orchard_release_health{package="Health",version="1.0",state="failed"} 3', metrics)
        self.assertIn('orchard_release_health{package="Health",version="1.0",state="installed"} 7', metrics)
        self.assertIn('orchard_release_ring_health{package="Health",version="1.0",ring="canary",state="failed"} 3',
                      metrics)
        self.assertIn('orchard_release_ring_health{package="Health",version="1.0",ring="canary",state="reported"} 10',
                      metrics)
        status, _, log = self.call("GET", "/api/v1/audit?limit=1000")
        halts = [e for e in log["entries"] if e["object"] == "Health/1.0" and e["action"] == "rollout-halt"]
        self.assertEqual(len(halts), 1, halts)
        self.assertIn("auto-halt", halts[0]["detail"])
        # One more failure: already halted, no second entry.
        self.report(serial(3), {"package.list": [{"identifier": "org.orchard.package.Health", "version": "1.0",
                                                  "state": "failed"}]})
        status, _, log = self.call("GET", "/api/v1/audit?limit=1000")
        self.assertEqual(len([e for e in log["entries"] if e["object"] == "Health/1.0"
                              and e["action"] == "rollout-halt"]), 1)

    def test_unknown_keys_are_kept_and_bad_bodies_refused(self):
        self.assertIn(self.call("PUT", "/api/v1/devices/KEEPS001", body={"serial": "KEEPS001"})[0], (200, 201))
        body = {"StatusItems": {"device": {"model": {"family": "Mac"}}, "future.item": [1, {"x": "y"}],
                                "softwareupdate": {"pending-version": {"os-version": "15.2"}}},
                "Errors": []}
        out = self.report("KEEPS001", body)
        self.assertEqual(out["packages"], [])
        status, _, kept = self.call("GET", "/api/v1/devices/KEEPS001/status")
        self.assertEqual(status, 200, kept)
        self.assertEqual(kept["last_report"], body)
        self.assertEqual(kept["softwareupdate"]["pending_version"], "15.2")
        self.report("KEEPS001", [1, 2], expect=400)
        self.report("NOSUCH01", {"package.list": []}, expect=404)
        self.assertEqual(self.call("GET", "/api/v1/devices/NOSUCH01/status")[0], 404)


if __name__ == "__main__":
    unittest.main()
