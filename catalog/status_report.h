// Delivery reports (issue "Catalog, part 2", "Delivery reports"): what the
// MDM forwards of a device's Declarative Device Management status items
// (POST /api/v1/devices/{serial}/status), parsed into the few items release
// control reads. Pure: bytes in, values out; no I/O, no clock.
//
// Accepted shapes (both as Apple sends them and as an MDM flattens them):
//   {"StatusItems": {"package": {"list": [...]}, "softwareupdate": {"install-state": "..."}}}
//   {"package.list": [...], "softwareupdate.install-state": "...", ...}
// An item is looked up by its dotted path, first as one flat key, then
// through nested objects. Every other key is kept: the report's JSON is
// stored verbatim as the device's last report; nothing unknown is refused.
//
// A package.list entry: {"identifier" (the declaration Identifier,
// org.orchard.package.<name>) or "bundle-id"/"bundle_id", "name",
// "version" or "short-version", "state": downloading | installing |
// installed | failed (any case), "reasons": anything}. An entry without an
// identifier, bundle id or name is skipped (counted in skipped); an unknown
// state is kept as PackageState::Other.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace orchard::catalog {

inline constexpr size_t kMaxStatusBody = 256 * 1024;  // bytes of one report
inline constexpr size_t kMaxStatusPackages = 4096;    // package.list entries read of one report

enum class PackageState { Downloading, Installing, Installed, Failed, Other };
const char* packageStateName(PackageState s);  // "downloading", ..., "other"
PackageState packageStateFrom(std::string_view s);  // case-insensitive; else Other

struct PackageStatus {
  std::string identifier;  // declaration Identifier as reported ("" when absent)
  std::string bundleId;
  std::string name;
  std::string version;
  PackageState state = PackageState::Other;
  std::string reasons;  // the reasons as compact JSON ("" when none)
  bool operator==(const PackageStatus&) const = default;
};

struct StatusReport {
  std::vector<PackageStatus> packages;
  std::string installState;    // softwareupdate.install-state
  std::string pendingVersion;  // softwareupdate.pending-version (its os-version when an object)
  std::string failureReason;   // softwareupdate.failure-reason (its reason when an object; else compact JSON)
  size_t skipped = 0;          // package.list entries that name no package
  nlohmann::json raw;          // the whole report as sent (an object)
};

// The body as a report, or why not ("status: ..."): only a body that is
// not a JSON object, or is larger than kMaxStatusBody, is refused.
std::variant<StatusReport, std::string> parseStatusReport(std::string_view body);

// The package name a declaration Identifier stands for (the inverse of
// packageDeclarationIdentifier), or nullopt when it is not one of ours.
std::optional<std::string> packageNameFromIdentifier(std::string_view identifier);

}  // namespace orchard::catalog
