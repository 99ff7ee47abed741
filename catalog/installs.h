// The installs answer for one device: for each published package, the
// version this Mac gets now and why, joining the catalog (versions), the
// fleet store (rules, rings, rollout events, pins), the rule check and
// chooseVersion(), over the release index the two stores' views make. The
// time is an argument. Each package is answered with its effective plan
// (FleetStore::planFor, kept in the index). A version of a package whose
// release is on_publish enters the first ring when it is published (a
// Start event at its publish time unless its log has one); under manual
// only an explicit Start (POST .../rollout/release) releases it
// (fleet_store.h says what a switch of mode does to the versions already
// published).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/fleet_store.h"
#include "catalog/rollout.h"

namespace orchard::catalog {

struct InstallAnswer {
  std::string name;
  std::shared_ptr<const PackageVersion> version;  // null: nothing now (choice.whyCode says why)
  InstallChoice choice;
};

// Reads fleet.releaseIndex() (release_index.h): `catalog` must be the one
// the fleet store was opened with (the index is built from that one).
std::vector<InstallAnswer> installsFor(const Device& device, const Catalog& catalog, const FleetStore& fleet,
                                       int64_t now);

// One package's candidates as chooseVersion() takes them (newest first),
// with each rule's verdict for `device`; `release` is the package's
// (planFor(name).release): the implicit Start only under OnPublish.
std::vector<VersionCandidate> candidatesFor(const Device& device, const std::vector<std::shared_ptr<const PackageVersion>>& versions,
                                            const FleetStore& fleet, ReleaseMode release);

}  // namespace orchard::catalog
