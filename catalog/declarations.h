// Declarative Device Management (DDM) declarations for one device's
// installs (GET /api/v1/devices/{serial}/declarations): a
// com.apple.configuration.package per package version the device gets, and
// a com.apple.configuration.softwareupdate.enforcement.specific where an
// OS target is set for the device's ring. Pure functions returning JSON
// (nlohmann); the handler only serialises them.
//
// Every declaration has a stable Identifier (the same package always gives
// the same one, so the device replaces rather than adds) and a ServerToken
// = lower-case hex SHA-256 of the Payload's canonical JSON (keys sorted, no
// whitespace: nlohmann's dump() of an object), so the token changes exactly
// when the payload does and the device re-applies only then.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace orchard::catalog {

inline constexpr std::string_view kPackageDeclarationType = "com.apple.configuration.package";
inline constexpr std::string_view kSoftwareUpdateDeclarationType =
    "com.apple.configuration.softwareupdate.enforcement.specific";
inline constexpr std::string_view kPackageIdentifierPrefix = "org.orchard.package.";
inline constexpr std::string_view kSoftwareUpdateIdentifier = "org.orchard.softwareupdate";

// "org.orchard.package." + the name with every byte outside [A-Za-z0-9.-]
// written as "_XX" (upper-case hex; '_' itself too), so the mapping is
// injective: "Google Chrome" -> "org.orchard.package.Google_20Chrome".
std::string packageDeclarationIdentifier(std::string_view packageName);

// The canonical JSON's hex SHA-256 (the ServerToken of a payload).
std::string serverToken(const nlohmann::json& payload);

// {"Type": "com.apple.configuration.package", "Identifier": ..., "ServerToken": ...,
//  "Payload": {"ManifestURL": manifestUrl, "InstallBehavior": {"Install": "Required"|"Optional"}}}
// install is "required" or "optional" (any case; the API validated it).
// InstallBehavior is always stated: macOS's default, Optional, silently
// installs nothing. Any other install value is a programming error and
// gives "Optional" (asserted in debug builds).
nlohmann::json packageDeclaration(std::string_view packageName, std::string_view manifestUrl,
                                  std::string_view install);

// {"Type": "...softwareupdate.enforcement.specific", "Identifier": "org.orchard.softwareupdate",
//  "ServerToken": ..., "Payload": {"TargetOSVersion": v, "TargetBuildVersion": b (only when
//  given), "TargetLocalDateTime": "YYYY-MM-DDTHH:MM:SS" (only when given)}}.
nlohmann::json softwareUpdateDeclaration(std::string_view targetOsVersion,
                                         const std::optional<std::string>& targetBuild,
                                         const std::optional<std::string>& localDeadline);

// A Unix time as a local date-time "YYYY-MM-DDTHH:MM:SS" at a fixed offset
// from UTC (seconds east; the site's), for TargetLocalDateTime: the device
// enforces it in its own time zone, so the box converts with the offset it
// is told, never the host's zone.
std::string localDateTime(int64_t unixSecs, int32_t utcOffsetSecs);

}  // namespace orchard::catalog
