// installsFor and candidatesFor (see installs.h): both take each version's
// rule and log as candidateOf (release_index.h) shapes them, so a version
// published without any rollout action is offered by its rule and rings at
// once (its implicit Start is its publish time), when its package's release
// is on_publish (manual: it waits for its explicit Start).
#include "catalog/installs.h"

#include <cassert>

#include "catalog/release_index.h"
#include "catalog/targeting.h"

namespace orchard::catalog {

std::vector<VersionCandidate> candidatesFor(const Device& device,
                                            const std::vector<std::shared_ptr<const PackageVersion>>& versions,
                                            const FleetStore& fleet, ReleaseMode release) {
  std::vector<VersionCandidate> out;
  if (versions.empty()) return out;
  out.reserve(versions.size());
  std::vector<std::string_view> names;
  names.reserve(versions.size());
  for (const auto& v : versions) names.push_back(v->version);
  // One package's versions (the callers pass one package's list).
  auto records = fleet.versionRecords(versions.front()->name, names);
  for (size_t i = 0; i < versions.size(); ++i) {
    VersionCandidate c =
        candidateOf(*versions[i], std::move(records[i].rule), std::move(records[i].events), release);
    c.checkRule = false;
    c.ruleVerdict = checkRule(c.rule, device);
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<InstallAnswer> installsFor(const Device& device, const Catalog& catalog, const FleetStore& fleet,
                                       int64_t now) {
  const std::shared_ptr<const ReleaseIndex> index = fleet.releaseIndex();
  assert(&fleet.catalog() == &catalog);
  (void)catalog;
  std::vector<InstallAnswer> out;
  out.reserve(index->packages.size());
  for (const ReleaseIndex::Package& p : index->packages) {
    InstallAnswer a;
    a.name = p.name;
    a.choice = chooseVersion(device, p.name, p.candidates, p.plan.rings, p.pin, now, p.plan.promoteAfterSecs,
                             /*sortedNewestFirst=*/true);
    if (a.choice.version)
      for (const auto& v : p.versions)
        if (v->version == *a.choice.version) {
          a.version = v;
          break;
        }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace orchard::catalog
