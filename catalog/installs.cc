// installsFor (see installs.h). Hard part: the versions' rollout logs get
// their implicit Start (the publish time) so that a version published
// without any rollout action is offered by its rule and rings at once.
#include "catalog/installs.h"

#include "catalog/targeting.h"

namespace orchard::catalog {

std::vector<VersionCandidate> candidatesFor(const Device& device,
                                            const std::vector<std::shared_ptr<const PackageVersion>>& versions,
                                            const FleetStore& fleet) {
  std::vector<VersionCandidate> out;
  if (versions.empty()) return out;
  out.reserve(versions.size());
  std::vector<std::string_view> names;
  names.reserve(versions.size());
  for (const auto& v : versions) names.push_back(v->version);
  // One package's versions (the callers pass one package's list).
  auto records = fleet.versionRecords(versions.front()->name, names);
  for (size_t i = 0; i < versions.size(); ++i) {
    const auto& v = versions[i];
    VersionCandidate c;
    c.version = v->version;
    c.rule = std::move(records[i].rule);
    c.events = std::move(records[i].events);
    bool started = false;
    for (const auto& e : c.events) started = started || e.kind == RolloutEventKind::Start;
    if (!started) c.events.insert(c.events.begin(), RolloutEvent{v->published, RolloutEventKind::Start, "published"});
    c.ruleVerdict = checkRule(c.rule, device);
    c.isPkg = v->metadata.kind != "file";
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<InstallAnswer> installsFor(const Device& device, const Catalog& catalog, const FleetStore& fleet,
                                       int64_t now) {
  std::vector<InstallAnswer> out;
  const RingPlan plan = fleet.rings();
  for (const std::string& name : catalog.names()) {
    auto versions = catalog.versions(name);  // newest first
    auto candidates = candidatesFor(device, versions, fleet);
    InstallAnswer a;
    a.name = name;
    a.choice = chooseVersion(device, name, candidates, plan.rings, fleet.pin(name), now, plan.promoteAfterSecs);
    if (a.choice.version)
      for (const auto& v : versions)
        if (v->version == *a.choice.version) a.version = v;
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace orchard::catalog
