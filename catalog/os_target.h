// OS targets per ring (PUT /api/v1/os-targets/{ring}): the macOS version a
// ring's Macs should run, and the DDM software-update declaration that asks
// for it. A device's ring for OS targets is ringOf(device, rings, kOsScope)
// (rollout.h): the staged percentage uses the word "macOS" as its scope, so
// a Mac's OS ring does not depend on any package.
//
// The route (server/catalog/os_target_routes.cc) also checks the version
// (and the build, when given) against the last good copy of Apple's
// OS-version feed (catalog/apple/os_versions.h: the public or MDM set's
// macOS releases); without a copy it is accepted as given, with a warning.
// Pure functions over records; the store is FleetStore's catalog.os_targets.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog/fleet.h"

namespace orchard::catalog {

struct OsTarget {
  std::string version;                // "15.2": dotted numeric (osVersionProblem), required
  std::optional<std::string> build;   // "24C101": 1-32 letters and digits
  std::optional<int64_t> deadline;    // Unix seconds (from RFC 3339)
  bool operator==(const OsTarget&) const = default;
};

// {"version": ..., "build": ... (optional), "deadline": RFC 3339 (optional)};
// unknown fields and bad values are refused with a message naming the field.
std::variant<OsTarget, std::string> osTargetFromJson(const nlohmann::json& j);
// The stored and answered form: {"version", "build", "deadline"} with absent
// ones null, the deadline as RFC 3339 UTC; `ring` added when not empty.
nlohmann::json osTargetJson(const OsTarget& t, std::string_view ring = {});

// The com.apple.configuration.softwareupdate.enforcement.specific
// declaration for `device`, when its OS ring has a target; nullopt otherwise.
// TargetLocalDateTime is the deadline's UTC wall time written without an
// offset (localDateTime with offset 0): the device reads it as its own
// local time, so a deadline of 2026-01-10T18:00:00Z means 18:00 on each
// Mac's own clock, wherever it is. Admins give deadlines in that sense.
std::optional<nlohmann::json> osTargetDeclaration(const Device& device, const std::vector<Ring>& rings,
                                                  const std::map<std::string, OsTarget, std::less<>>& targets);

}  // namespace orchard::catalog
