// A package version's targeting rule (fleet.h's TargetRule): its JSON form
// (PUT /api/v1/packages/{name}/{version}/targeting) and the check of one
// device against it: eligible, or the first reason why not, worded for a
// helpdesk. Pure: no I/O, no clock (a deadline is a value, never compared
// with now here), never throws.
//
// JSON keys (INTERFACE.md; every one optional, null the same as absent):
//   channels, groups, exclude_groups, models   arrays of non-empty strings
//                                              (at most 64, no duplicates,
//                                              each at most 128 bytes of
//                                              text without control bytes)
//   arch             array of "arm64" / "x86_64"
//   min_os, max_os   dotted numeric versions (device.h's osVersionProblem),
//                    both inclusive; min_os must not be above max_os
//   rollout_percent  a number from 0 to 100
//   install          "required" or "optional" (the default)
//   deadline         an RFC 3339 date-time (parseRfc3339), kept as Unix
//                    seconds and shown back in UTC ("...Z")
// Unknown keys are refused, naming them; every problem starts with its key.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "catalog/fleet.h"

namespace orchard::catalog {

inline constexpr size_t kMaxRuleListItems = 64;
inline constexpr size_t kMaxRuleItemBytes = 128;

// Strict RFC 3339 (section 5.6): YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM),
// fixed widths, a real calendar date (leap years by the Gregorian rule),
// hours 00-23, minutes 00-59, seconds 00-60 (a leap second counts as the
// first second of the next minute), offsets up to 23:59. 'T' and 'Z' may
// be lower case (RFC 3339's note); nothing else is accepted: no space for
// 'T', no missing seconds, no "+0100". A fraction is truncated toward the
// past (whole seconds). Returns Unix seconds (UTC), nullopt when malformed.
std::optional<int64_t> parseRfc3339(std::string_view s);

// Unix seconds as "YYYY-MM-DDTHH:MM:SSZ"; years outside 0000-9999 (never
// produced by parseRfc3339) give nullopt.
std::optional<std::string> formatRfc3339(int64_t unixSeconds);

std::variant<TargetRule, std::string> ruleFromJson(const nlohmann::json& body);

// The rule as the API shows it: absent fields left out, install always.
void toJson(nlohmann::json& out, const TargetRule& rule);

// Checks, in this order, the first failure deciding the answer:
//   1. channel         the device's channel is one of `channels`
//   2. excluded_group  the device is in none of `exclude_groups`
//   3. not_in_group    the device is in at least one of `groups`
//   4. arch            the device's arch is one of `archs` (unknown fails)
//   5. model           the device's model is one of `models` (exact match;
//                      unknown fails)
//   6. os_too_old      os_version >= min_os (compareVersions; unknown fails)
//   7. os_too_new      os_version <= max_os (unknown fails)
// An empty list or version means unrestricted. Exclusion comes before
// membership so that a device in both hears that it was excluded.
// rollout_percent, install and deadline are not checked here (rollout.h
// decides the staged share). nullopt when eligible; otherwise the code and
// a detail such as "needs macOS 14.0 or later; this Mac runs 13.6".
std::optional<std::pair<WhyNot, std::string>> checkRule(const TargetRule& rule, const Device& device);

// checkRule in two halves: the code alone (no allocation: the installs
// answer asks it of every version for every device), and the detail for a
// code it returned (built only for the reason the answer reports).
std::optional<WhyNot> ruleWhyNot(const TargetRule& rule, const Device& device);
std::string ruleWhyNotDetail(const TargetRule& rule, const Device& device, WhyNot why);

}  // namespace orchard::catalog
