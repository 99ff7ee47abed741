// ReleaseIndex: an immutable copy of what the installs answer reads for
// every package (its versions newest first, each version's rule and
// rollout log with the implicit publish-time Start when the package's
// release is on_publish, the pin, the package's effective ring plan,
// FleetStore::planFor), built once per change of the catalog or the fleet's records
// rather than gathered and copied on every call. The installs answer then
// walks it without a lock, an allocation per version or a version sort:
// at 10,000 devices and 500 versions the gathering was most of its time.
//
// FleetStore::releaseIndex() keeps the newest index and rebuilds it when
// Catalog::generation() or FleetStore::generation() moved since it was
// built. Device records are not in it (the answer is for a device the
// caller has), so a device change costs a rebuild only because it shares
// the fleet's generation; a rebuild at 500 versions takes about a
// millisecond.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/fleet_store.h"
#include "catalog/rollout.h"

namespace orchard::catalog {

struct ReleaseIndex {
  struct Package {
    std::string name;
    std::vector<std::shared_ptr<const PackageVersion>> versions;  // newest first
    // The same order; checkRule set (chooseVersion checks each rule against
    // the device), events sorted by time with the implicit Start.
    std::vector<VersionCandidate> candidates;
    std::optional<Pin> pin;
    RingPlan plan;  // the package's effective plan (its release policy over the global plan)
  };
  std::vector<Package> packages;  // by name
  uint64_t catalogGeneration = 0;
  uint64_t fleetGeneration = 0;
};

// Reads the two stores' views (their locks, one at a time). The
// generations are read by the caller before this is called.
std::shared_ptr<const ReleaseIndex> buildReleaseIndex(const Catalog& catalog, const FleetStore& fleet,
                                                      uint64_t catalogGeneration, uint64_t fleetGeneration);

// A version's candidate as chooseVersion takes it: its rule, its log
// (sorted by time) with the implicit publish-time Start when `release` (its
// package's) is OnPublish and the log has no Start, isPkg; checkRule set.
VersionCandidate candidateOf(const PackageVersion& v, TargetRule rule, std::vector<RolloutEvent> events,
                             ReleaseMode release);

}  // namespace orchard::catalog
