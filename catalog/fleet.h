// The fleet's records for release control (issue "Catalog, part 2"): the
// devices MDM tells us about, the targeting rule of a package version, the
// rings a package's versions move through, pins, and the decision the
// box makes per device ("which version does this Mac get now, and why").
// Plain values; the logic over them is pure functions (no clock reads: the
// time is always an argument), table-tested:
//   catalog/device.h     validation, JSON and CSV import
//   catalog/targeting.h  a rule against a device (eligible, or why not)
//   catalog/rollout.h    staged percentages, rings and promotion, pins,
//                        and the installs answer for one device
// Field names are the API's (../shared/INTERFACE.md): extend, never rename.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace orchard::catalog {

// A Mac as the MDM describes it (PUT /api/v1/devices/{serial}).
struct Device {
  std::string serial;     // validated: 8-14 upper-case letters and digits (Apple serials)
  std::string udid;
  std::vector<std::string> groups;
  std::string osVersion;  // "14.5"
  std::string osBuild;    // "23F79"
  std::string model;      // "Mac14,2"
  std::string boardId;
  std::string arch;       // "arm64" | "x86_64" | "" (unknown)
  std::string channel = "stable";
  std::string site;
  bool operator==(const Device&) const = default;
};

// Targeting of one package version (PUT .../{version}/targeting). Every
// field optional: absent (empty / nullopt) means unrestricted.
struct TargetRule {
  std::vector<std::string> channels;
  std::vector<std::string> groups;
  std::vector<std::string> excludeGroups;
  std::string minOs;  // inclusive
  std::string maxOs;  // inclusive
  std::vector<std::string> archs;
  std::vector<std::string> models;
  std::optional<double> rolloutPercent;  // 0..100; the one-ring case
  std::string install = "optional";      // "required" | "optional"
  std::optional<int64_t> deadline;       // Unix seconds; after it a required install is enforced
  bool operator==(const TargetRule&) const = default;
};

// One ring of a package's rollout (PUT /api/v1/rings): groups and/or a
// cumulative percentage of the devices eligible by the version's rule; a
// ring also holds every device of the rings before it.
struct Ring {
  std::string name;
  std::vector<std::string> groups;
  std::optional<double> percent;            // cumulative, 0..100
  std::optional<int64_t> promoteAfterSecs;  // this ring's time before promotion to the next
  bool operator==(const Ring&) const = default;
};

// A pin: these groups/devices get `version` of the package and nothing newer.
struct Pin {
  std::string version;
  std::vector<std::string> groups;
  std::vector<std::string> devices;  // serials
  bool operator==(const Pin&) const = default;
};

// Why a device gets nothing of a package (the installs answer's `why.code`).
enum class WhyNot {
  NotInGroup,      // not_in_group
  ExcludedGroup,   // excluded_group
  OsTooOld,        // os_too_old
  OsTooNew,        // os_too_new
  Arch,            // arch
  Model,           // model
  Channel,         // channel
  NotYetInRing,    // not_yet_in_ring (staged percentage or a ring not reached yet)
  Halted,          // halted (no new devices)
  Paused,          // paused (and not yet reached)
  NoVersion,       // no_version (nothing published)
};
const char* whyNotCode(WhyNot w);  // the snake_case code

}  // namespace orchard::catalog
