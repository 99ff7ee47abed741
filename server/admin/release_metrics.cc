// Release gauges for /metrics (see release_metrics.h). The count for a
// version is what GET .../rollout reports for its current ring: devices
// its rule admits that the ring (and the rings before it) holds, under the
// package's effective plan (FleetStore::planFor). A version's log gets its
// implicit Start from candidatesFor, as in the installs answer; a version
// not released yet (a manual release) holds no device and has no ring.
#include "server/admin/release_metrics.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "catalog/installs.h"
#include "catalog/rollout.h"
#include "catalog/targeting.h"

namespace orchard::server {

// Prometheus label values escape backslash, double quote and newline.
void appendLabel(std::string& out, const char* name, const std::string& value, bool first) {
  if (!first) out += ',';
  out += name;
  out += "=\"";
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += '"';
}

namespace {


}  // namespace

size_t appendReleaseMetrics(std::string& out, const catalog::Catalog& catalog, const catalog::FleetStore& fleet,
                            int64_t now) {
  const auto snapshot = fleet.deviceSnapshot();
  const std::vector<catalog::Device>& devices = *snapshot;
  out += "# HELP orchard_fleet_devices registered devices\n# TYPE orchard_fleet_devices gauge\norchard_fleet_devices ";
  out += std::to_string(devices.size());
  out += '\n';
  out += "# HELP orchard_release_devices devices the current ring of a package's newest version holds among those "
         "its rule admits (0 and ring \"\" while it is not released); newest version only, at most ";
  out += std::to_string(kMaxReleaseSeries);
  out += " series (packages past that, in name order, are left out)\n# TYPE orchard_release_devices gauge\n";
  // checkRule reads only these fields, and a fleet has few distinct
  // combinations of them: the rule is checked once per combination per
  // version rather than once per device (10,000 x 100 calls took 74 ms).
  std::vector<size_t> profileOf(devices.size());
  std::vector<const catalog::Device*> profiles;
  {
    std::unordered_map<std::string, size_t> index;
    std::string key;
    for (size_t i = 0; i < devices.size(); ++i) {
      const catalog::Device& d = devices[i];
      key.clear();
      for (const auto& g : d.groups) (key += g) += '\x1f';
      for (const std::string* f : {&d.osVersion, &d.arch, &d.model, &d.channel}) (key += '\x1e') += *f;
      auto [it, fresh] = index.try_emplace(key, profiles.size());
      if (fresh) profiles.push_back(&d);
      profileOf[i] = it->second;
    }
  }
  std::vector<char> admits(profiles.size());
  size_t series = 0;
  for (const std::string& name : catalog.names()) {
    if (series == kMaxReleaseSeries) break;
    auto versions = catalog.versions(name);  // newest first
    if (versions.empty()) continue;
    const auto& v = *versions.front();
    const catalog::RingPlan plan = fleet.planFor(name);
    auto candidates = catalog::candidatesFor(catalog::Device{}, {versions.front()}, fleet, plan.release);
    const catalog::VersionCandidate& c = candidates.front();
    const catalog::RolloutView view = catalog::viewAt(plan.rings, c.events, now, plan.promoteAfterSecs);
    for (size_t k = 0; k < profiles.size(); ++k) admits[k] = !catalog::ruleWhyNot(c.rule, *profiles[k]);
    std::string ring;
    size_t held = 0;
    const double percent = c.rule.rolloutPercent.value_or(100.0);
    if (!plan.rings.empty() && view.started) ring = plan.rings[std::min(view.ring, plan.rings.size() - 1)].name;
    for (size_t i = 0; i < devices.size() && view.started; ++i) {
      if (!admits[profileOf[i]]) continue;
      const catalog::Device& d = devices[i];
      if (plan.rings.empty() ? catalog::inStage(d.serial, name, percent)
                             : catalog::inRing(d, plan.rings, view.ring, name))
        ++held;
    }
    out += "orchard_release_devices{";
    appendLabel(out, "package", name, true);
    appendLabel(out, "version", v.version, false);
    appendLabel(out, "ring", ring, false);
    out += "} ";
    out += std::to_string(held);
    out += '\n';
    ++series;
  }
  return series;
}

}  // namespace orchard::server
