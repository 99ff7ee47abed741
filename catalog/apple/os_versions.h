// Apple's OS-version feed (gdmf.apple.com/v2/pmv, JSON): which OS versions
// Apple currently offers, per platform, in the public and the MDM asset
// sets, with posting and expiration dates and supported devices, plus
// Background Security Improvements. Parsed with nlohmann::json; pure.
//
// Shape (every set has the same one, any set name is taken):
//   {"PublicAssetSets": {"macOS": [{"ProductVersion": "15.1.1", "Build": "24B91",
//      "PostingDate": "2024-11-19", "ExpirationDate": "2025-02-24",
//      "SupportedDevices": ["J132AP", "Mac-..."]}, ...], "iOS": [...]},
//    "AssetSets": {...}, "PublicBackgroundSecurityImprovements": {...},
//    "PublicRapidSecurityResponses": {...}}
// The bytes come over the WAN and are hostile: the parse is a SAX pass (no
// document tree is built), so memory follows what is kept, and what is kept
// is bounded (OsFeedLimits); a feed past a bound is refused as a whole, never
// cut short silently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace orchard::catalog::apple {

inline constexpr std::string_view kPublicAssetSets = "PublicAssetSets";  // what any device is offered
inline constexpr std::string_view kMdmAssetSets = "AssetSets";           // what MDM may ask devices to install
inline constexpr std::string_view kMacPlatform = "macOS";

struct OsRelease {
  std::string set;        // "PublicAssetSets" | "AssetSets" | "PublicBackgroundSecurityImprovements" | ...
  std::string platform;   // "macOS", "iOS", "visionOS", ...
  std::string version;    // ProductVersion "15.1.1"
  std::string build;      // Build, "" when absent
  std::string postingDate;     // "2024-11-19", "" when absent
  std::string expirationDate;  // "" when absent
  std::vector<std::string> supportedDevices;
  std::string versionExtra;    // ProductVersionExtra ("(a)" on security responses), "" when absent
};

// What one feed may hold. Apple's real feed is a few hundred KB with a few
// hundred releases; these leave an order of magnitude of room.
struct OsFeedLimits {
  size_t maxBytes = 8u << 20;           // the JSON text
  int maxDepth = 16;                    // nested objects and arrays (the shape needs 5)
  size_t maxReleases = 4096;            // over every set and platform
  size_t maxDevicesPerRelease = 4096;   // SupportedDevices of one release
  size_t maxDevices = 131072;           // SupportedDevices over the whole feed
};

struct OsVersionFeed {
  std::vector<OsRelease> releases;
  // Entries left out because a field had the wrong type or an unusable
  // value (a ProductVersion that is not dotted numeric, a Build that is not
  // letters and digits, a device id with spaces, ...), or that were not objects.
  size_t skipped = 0;
  // Count of macOS releases in the public and MDM sets: a feed without any
  // is "empty" (Apple has served such lists; they must not replace a good one).
  size_t macReleases() const;
  // Whether the public or the MDM set lists `version` for `platform`
  // (compared as versions: "15.1" == "15.1.0"). Security responses and
  // improvements do not count: they are not OS versions to install.
  bool knows(std::string_view platform, std::string_view version) const;
  // knows(), and the build too when one is given and the feed names builds
  // for that version: true when a listed release has `build`, or when no
  // listed release of that version names a build at all.
  bool knowsBuild(std::string_view platform, std::string_view version, std::string_view build) const;
  // The distinct versions the public and MDM sets list for `platform`,
  // newest first (for an error message that says what would be accepted).
  std::vector<std::string> versions(std::string_view platform) const;
};

// Errc::Invalid when the text is not a JSON object of the expected shape.
// Entries with wrong field types are skipped. An empty feed parses (the
// caller decides whether to keep it: see macReleases()). Errc::NoSpace when
// the text is larger than limits.maxBytes; Errc::Invalid (context naming the
// bound) past any other limit.
Result<OsVersionFeed> parseOsVersionFeed(std::string_view json, const OsFeedLimits& limits = {});

}  // namespace orchard::catalog::apple
