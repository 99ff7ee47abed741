// Rollout health (issue "Catalog, part 2", "Delivery reports"): per
// package version and ring, how delivery went on the devices the version's
// rule admits and the ring holds, from the devices' last status reports;
// and the auto-halt decision (a ring whose failure share passes the limit
// halts its own promotion). Pure: records and `now` in, counts out.
//
// Counting, per device the rule admits (and per ring, the ring holds):
//   eligible     every such device
//   downloading  its report says downloading or installing this version
//   installed    ... installed this version
//   failed       ... failed this version
//   reported     downloading + installed + failed (a report about this
//                version; one naming another version or no version of the
//                package is not about this one, unless it names none and
//                the state is failed or downloading: then it is counted)
//   stale        its last report (any) is older than staleAfter, or it
//                never reported
// Auto-halt of the current ring: reported >= minReports and
// failed * 100 > haltPercent * reported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/fleet.h"
#include "catalog/status_report.h"

namespace orchard::catalog {

// What the box remembers of one device's reports (catalog.status): each
// package's latest state (reports carry the items that changed, so a
// package absent from a report keeps its last state) and the last report
// verbatim.
struct DeviceStatus {
  int64_t at = 0;  // Unix seconds of the last report
  std::map<std::string, PackageStatus, std::less<>> packages;  // by catalog package name
  std::string installState, pendingVersion, failureReason;    // softwareupdate.*
  nlohmann::json lastReport;                                   // as sent
};

// The package a report entry is about: by declaration Identifier
// (org.orchard.package.<name>), else by bundle id, else by name, through
// `byBundleId` (bundle id -> package name) and `known` (is this a package
// name). nullopt: not one of the catalog's.
std::optional<std::string> resolvePackage(const PackageStatus& p,
                                          const std::function<std::optional<std::string>(std::string_view)>& byBundleId,
                                          const std::function<bool(std::string_view)>& known);

// Folds a report into the device's record at `now`; entries whose package
// does not resolve are left out of `packages` (they stay in lastReport).
void mergeReport(DeviceStatus& into, const StatusReport& report, int64_t now,
                 const std::function<std::optional<std::string>(const PackageStatus&)>& resolve);

nlohmann::json deviceStatusToJson(const DeviceStatus& s);
std::optional<DeviceStatus> deviceStatusFromJson(const nlohmann::json& j);

struct HealthCounts {
  size_t eligible = 0, downloading = 0, installed = 0, failed = 0, reported = 0, stale = 0;
  bool operator==(const HealthCounts&) const = default;
};

struct RolloutHealth {
  std::vector<HealthCounts> rings;  // one per ring (cumulative, as the ring holds devices)
  HealthCounts total;               // every device the rule admits
};

struct HealthLimits {
  int64_t staleAfterSecs = 7 * 86400;
  int haltPercent = 20;    // 0..100
  size_t minReports = 10;  // reports needed before a share counts
};

// `ruleAdmits`: checkRule's verdict (true = admitted); `statusOf`: the
// device's record or null. Devices are visited once.
RolloutHealth rolloutHealth(const std::vector<Device>& devices, const std::function<bool(const Device&)>& ruleAdmits,
                            const std::vector<Ring>& rings, std::string_view name, std::string_view version,
                            const std::function<const DeviceStatus*(std::string_view serial)>& statusOf,
                            int64_t now, int64_t staleAfterSecs);

// The auto-halt reason when `ring` (of name ringName, "" without rings)
// passes the limits, e.g. "auto-halt: ring canary: 3 of 10 reporting
// devices failed (30 % > 20 %)"; nullopt when it does not.
std::optional<std::string> autoHaltReason(const HealthCounts& ring, std::string_view ringName, const HealthLimits& l);

nlohmann::json healthCountsJson(const HealthCounts& c);

}  // namespace orchard::catalog
