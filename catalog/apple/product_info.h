// What a product's distribution (.dist, XML) and server metadata (.smd,
// plist) say about it: its title, version and build. Both come from the
// WAN: parsed with libxml2 (catalog/safe_xml.h: no entities, no network,
// bounded size) and libplist, every field checked.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace orchard::catalog::apple {

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
Result<ProductInfo> parseDistribution(std::string_view xml);

// A .smd: localization.<English|en>.title, CFBundleShortVersionString.
// Errc::Invalid when it is not a plist dictionary.
Result<ProductInfo> parseServerMetadata(std::string_view plist);

}  // namespace orchard::catalog::apple
