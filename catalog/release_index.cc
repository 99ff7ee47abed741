// buildReleaseIndex (see release_index.h). The one rule that matters here:
// a version whose log has no Start enters its package's first ring at its
// publish time, so a version published without any rollout action is
// offered by its rule and rings at once; unless its package's release is
// manual (fleet_store.h), where only an explicit Start releases it.
#include "catalog/release_index.h"

#include <algorithm>

namespace orchard::catalog {

VersionCandidate candidateOf(const PackageVersion& v, TargetRule rule, std::vector<RolloutEvent> events,
                             ReleaseMode release) {
  VersionCandidate c;
  c.version = v.version;
  c.rule = std::move(rule);
  c.events = std::move(events);
  const bool started = std::any_of(c.events.begin(), c.events.end(),
                                   [](const RolloutEvent& e) { return e.kind == RolloutEventKind::Start; });
  if (!started && release == ReleaseMode::OnPublish)
    c.events.insert(c.events.begin(), RolloutEvent{v.published, RolloutEventKind::Start, "published"});
  std::stable_sort(c.events.begin(), c.events.end(),
                   [](const RolloutEvent& a, const RolloutEvent& b) { return a.at < b.at; });
  c.checkRule = true;
  c.isPkg = v.metadata.kind != "file";
  return c;
}

std::shared_ptr<const ReleaseIndex> buildReleaseIndex(const Catalog& catalog, const FleetStore& fleet,
                                                      uint64_t catalogGeneration, uint64_t fleetGeneration) {
  auto index = std::make_shared<ReleaseIndex>();
  index->catalogGeneration = catalogGeneration;
  index->fleetGeneration = fleetGeneration;
  for (const std::string& name : catalog.names()) {
    ReleaseIndex::Package p;
    p.name = name;
    p.versions = catalog.versions(name);  // newest first
    if (p.versions.empty()) continue;     // deleted since names()
    std::vector<std::string_view> names;
    names.reserve(p.versions.size());
    for (const auto& v : p.versions) names.push_back(v->version);
    // The plan before the logs: a switch of release mode writes both at
    // once (fleet_store.h), so an older plan with newer logs is still a
    // true state, while a newer plan with older logs could briefly hide a
    // version that is out (the generations make the next call rebuild).
    p.plan = fleet.planFor(name);
    auto records = fleet.versionRecords(name, names);
    p.candidates.reserve(p.versions.size());
    for (size_t i = 0; i < p.versions.size(); ++i)
      p.candidates.push_back(
          candidateOf(*p.versions[i], std::move(records[i].rule), std::move(records[i].events), p.plan.release));
    p.pin = fleet.pin(name);
    index->packages.push_back(std::move(p));
  }
  return index;
}

}  // namespace orchard::catalog
