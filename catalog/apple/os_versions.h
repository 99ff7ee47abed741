// Apple's OS-version feed (gdmf.apple.com/v2/pmv, JSON): which OS versions
// Apple currently offers, per platform, in the public and the MDM asset
// sets, with posting and expiration dates and supported devices, plus
// Background Security Improvements. Parsed with nlohmann::json; pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace orchard::catalog::apple {

struct OsRelease {
  std::string set;        // "PublicAssetSets" | "AssetSets" | "PublicBackgroundSecurityImprovements" | ...
  std::string platform;   // "macOS", "iOS", "visionOS", ...
  std::string version;    // ProductVersion "15.1.1"
  std::string build;      // Build, "" when absent
  std::string postingDate;     // "2024-11-19", "" when absent
  std::string expirationDate;  // "" when absent
  std::vector<std::string> supportedDevices;
};

struct OsVersionFeed {
  std::vector<OsRelease> releases;
  // Count of macOS releases in the public and MDM sets: a feed without any
  // is "empty" (Apple has served such lists; they must not replace a good one).
  size_t macReleases() const;
  bool knows(std::string_view platform, std::string_view version) const;
};

// Errc::Invalid when the text is not a JSON object of the expected shape.
// Entries with wrong field types are skipped. An empty feed parses (the
// caller decides whether to keep it: see macReleases()).
Result<OsVersionFeed> parseOsVersionFeed(std::string_view json);

}  // namespace orchard::catalog::apple
