// Rollout health and auto-halt (see health.h). Hard parts: a device's
// package entry counts for a version only when it is about that version,
// and the ring counts are cumulative, as inRing() defines a ring.
#include "catalog/health.h"

#include <cstdio>

#include "catalog/rollout.h"

namespace orchard::catalog {

using nlohmann::json;

std::optional<std::string> resolvePackage(const PackageStatus& p,
                                          const std::function<std::optional<std::string>(std::string_view)>& byBundleId,
                                          const std::function<bool(std::string_view)>& known) {
  if (!p.identifier.empty()) {
    if (auto n = packageNameFromIdentifier(p.identifier); n && known(*n)) return n;
    if (auto n = byBundleId(p.identifier)) return n;  // some MDMs report the bundle id as the identifier
  }
  if (!p.bundleId.empty())
    if (auto n = byBundleId(p.bundleId)) return n;
  if (!p.name.empty() && known(p.name)) return p.name;
  return std::nullopt;
}

void mergeReport(DeviceStatus& into, const StatusReport& report, int64_t now,
                 const std::function<std::optional<std::string>(const PackageStatus&)>& resolve) {
  into.at = now;
  for (const PackageStatus& p : report.packages)
    if (auto name = resolve(p)) into.packages[*name] = p;
  if (!report.installState.empty()) into.installState = report.installState;
  if (!report.pendingVersion.empty()) into.pendingVersion = report.pendingVersion;
  if (!report.failureReason.empty()) into.failureReason = report.failureReason;
  into.lastReport = report.raw;
}

json deviceStatusToJson(const DeviceStatus& s) {
  json pkgs = json::object();
  for (const auto& [name, p] : s.packages)
    pkgs[name] = json{{"identifier", p.identifier}, {"bundle_id", p.bundleId}, {"name", p.name},
                      {"version", p.version}, {"state", packageStateName(p.state)}, {"reasons", p.reasons}};
  return json{{"at", s.at},
              {"packages", pkgs},
              {"softwareupdate",
               {{"install_state", s.installState}, {"pending_version", s.pendingVersion},
                {"failure_reason", s.failureReason}}},
              {"last_report", s.lastReport}};
}

std::optional<DeviceStatus> deviceStatusFromJson(const json& j) {
  if (!j.is_object() || !j.contains("at") || !j["at"].is_number_integer()) return std::nullopt;
  DeviceStatus s;
  s.at = j["at"].get<int64_t>();
  auto str = [](const json& o, const char* k) {
    auto it = o.find(k);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (auto it = j.find("packages"); it != j.end() && it->is_object())
    for (const auto& [name, p] : it->items()) {
      if (!p.is_object()) return std::nullopt;
      s.packages[name] = PackageStatus{str(p, "identifier"), str(p, "bundle_id"), str(p, "name"), str(p, "version"),
                                       packageStateFrom(str(p, "state")), str(p, "reasons")};
    }
  if (auto it = j.find("softwareupdate"); it != j.end() && it->is_object()) {
    s.installState = str(*it, "install_state");
    s.pendingVersion = str(*it, "pending_version");
    s.failureReason = str(*it, "failure_reason");
  }
  if (auto it = j.find("last_report"); it != j.end()) s.lastReport = *it;
  return s;
}

namespace {

// Adds one device to c: its state for (name, version) from its record.
void count(HealthCounts& c, const DeviceStatus* s, std::string_view name, std::string_view version, int64_t now,
           int64_t staleAfterSecs) {
  ++c.eligible;
  if (!s || now - s->at > staleAfterSecs) ++c.stale;
  if (!s) return;
  auto it = s->packages.find(name);
  if (it == s->packages.end()) return;
  const PackageStatus& p = it->second;
  const bool thisVersion = p.version == version;
  const bool unnamed = p.version.empty();
  switch (p.state) {
    case PackageState::Downloading:
    case PackageState::Installing:
      if (!thisVersion && !unnamed) return;
      ++c.downloading;
      break;
    case PackageState::Installed:
      if (!thisVersion) return;
      ++c.installed;
      break;
    case PackageState::Failed:
      if (!thisVersion && !unnamed) return;
      ++c.failed;
      break;
    case PackageState::Other: return;
  }
  ++c.reported;
}

}  // namespace

RolloutHealth rolloutHealth(const std::vector<Device>& devices, const std::function<bool(const Device&)>& ruleAdmits,
                            const std::vector<Ring>& rings, std::string_view name, std::string_view version,
                            const std::function<const DeviceStatus*(std::string_view serial)>& statusOf,
                            int64_t now, int64_t staleAfterSecs) {
  RolloutHealth h;
  h.rings.resize(rings.size());
  for (const Device& d : devices) {
    if (!ruleAdmits(d)) continue;
    const DeviceStatus* s = statusOf(d.serial);
    count(h.total, s, name, version, now, staleAfterSecs);
    // Rings are cumulative: the first ring holding the device and every later one.
    if (auto first = ringOf(d, rings, name))
      for (size_t k = *first; k < rings.size(); ++k) count(h.rings[k], s, name, version, now, staleAfterSecs);
  }
  return h;
}

std::optional<std::string> autoHaltReason(const HealthCounts& ring, std::string_view ringName, const HealthLimits& l) {
  if (ring.reported == 0 || ring.reported < l.minReports) return std::nullopt;
  if (ring.failed * 100 <= static_cast<size_t>(l.haltPercent) * ring.reported) return std::nullopt;
  const double share = 100.0 * static_cast<double>(ring.failed) / static_cast<double>(ring.reported);
  char buf[160];
  std::snprintf(buf, sizeof buf, "%zu of %zu reporting devices failed (%.0f %% > %d %%)", ring.failed, ring.reported,
                share, l.haltPercent);
  std::string out = "auto-halt: ";
  if (!ringName.empty()) out += "ring " + std::string(ringName) + ": ";
  return out + buf;
}

json healthCountsJson(const HealthCounts& c) {
  return json{{"eligible", c.eligible}, {"downloading", c.downloading}, {"installed", c.installed},
              {"failed", c.failed},     {"reported", c.reported},       {"stale", c.stale}};
}

}  // namespace orchard::catalog
