// What a product's distribution (.dist, XML) and server metadata (.smd,
// plist) say about it: its title, version and build. Both come from the
// WAN: parsed with libxml2 (catalog/safe_xml.h: no entities, no network,
// bounded size) and libplist, every field checked.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace orchard::catalog::apple {

// Larger files are refused before parsing (Apple's are tens of KiB).
inline constexpr size_t kDistributionMaxBytes = 4u << 20;
inline constexpr size_t kServerMetadataMaxBytes = 1u << 20;

// Every field is checked: a title that is not UTF-8 text of at most 256
// bytes without control characters, or a version or build that is not
// 1-32 of [A-Za-z0-9._-], counts as not given (the next source is tried).
struct ProductInfo {
  std::string title;    // "macOS Sonoma"
  std::string version;  // "14.6.1"
  std::string build;    // "23G93", "" when not given
};

// A .dist: <auxinfo><dict> BUILD / VERSION (InstallAssistant products), the
// <title> (resolved through the English <localization><strings> table when
// it names a key such as SU_TITLE), and for updates without auxinfo the
// version from <options> / pkg-ref version attributes where given.
// Errc::Invalid when it is not XML with an installer-gui-script root.
//
// Precisely, the version is the first good one of: auxinfo VERSION, the
// strings table's SU_VERS, <product version>, the first <pkg-ref version>.
// The strings table is the <strings> of language English, else en, en_US,
// en-US, else the first; it is Apple's .strings text ("KEY" = "value";
// with "..." or '...' quoting, \ escapes and /* */ or // comments), read
// up to the first syntax error.
Result<ProductInfo> parseDistribution(std::string_view xml);

// A .smd: localization.<English|en>.title, CFBundleShortVersionString.
// Errc::Invalid when it is not a plist dictionary.
Result<ProductInfo> parseServerMetadata(std::string_view plist);

}  // namespace orchard::catalog::apple
