// What a flat package's installer XML says, as pure functions of its text:
// the Distribution (a product archive's description), each component's
// PackageInfo, and how they merge into PackageMetadata, including which
// bundle is "the" app an admin means. No I/O: pkg_reader.h finds the files.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catalog/package.h"
#include "common/result.h"

namespace orchard::catalog {

// A bundle and the pkg-ref (component id) that installs it, whose
// installKBytes stands in for the bundle's size.
struct OwnedBundle {
  BundleInfo bundle;
  std::string pkgRef;
};

struct DistributionInfo {
  std::string title;
  std::string productId;
  std::string productVersion;
  std::string minOs;
  std::string maxOs;
  std::vector<std::string> archs;
  // pkg-ref elements merged by id (declarations with version/installKBytes
  // and references from choices), in order of first appearance.
  std::vector<PkgRef> pkgRefs;
  std::vector<OwnedBundle> bundles;  // pkg-ref/bundle-version/bundle
};

struct ComponentInfo {
  std::string identifier;
  std::string version;
  std::string installLocation;
  uint64_t installKBytes = 0;  // <payload installKBytes>
  std::vector<BundleInfo> bundles;  // every <bundle>, nested ones included, once per (id, path)
};

// Invalid when the text is not well-formed XML (or has a DOCTYPE) or its
// root is not <installer-gui-script> / <installer-script> / <pkg-info>.
Result<DistributionInfo> parseDistribution(std::string_view xml);
Result<ComponentInfo> parsePackageInfo(std::string_view xml);

// A component as found in the archive: its directory ("" at the top, for a
// component-only package) and what its PackageInfo said.
struct FoundComponent {
  std::string dir;
  ComponentInfo info;
};

// Merges into the catalog's record, with `source` naming where each field
// came from ("Distribution", "PackageInfo", "<dir>/PackageInfo"). Without a
// Distribution, distribution=false and the first component names the package.
PackageMetadata mergeMetadata(const DistributionInfo* dist, const std::vector<FoundComponent>& components);

// The main bundle: the one whose id is `packageId`; else the largest app
// (path ending in ".app"; size = installKBytes of its pkg-ref, ties to the
// shorter path, then the first); else the first bundle. -1 when none.
int chooseMainBundle(const std::vector<OwnedBundle>& bundles, const std::string& packageId,
                     const std::vector<PkgRef>& refs);

}  // namespace orchard::catalog
