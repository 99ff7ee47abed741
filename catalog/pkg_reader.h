// Reads what a macOS flat package (.pkg: a xar archive) says about itself
// and what its signature proves, for the publish path. Blocking file I/O:
// callers run it on a worker thread, never on a loop.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "catalog/package.h"
#include "catalog/xar_signature.h"
#include "common/result.h"

namespace orchard::catalog {

inline constexpr size_t kMaxDistributionBytes = 4u << 20;
inline constexpr size_t kMaxPackageInfoBytes = 1u << 20;
inline constexpr size_t kMaxComponents = 64;

struct PackageFileInfo {
  bool isPackage = false;  // false: not an installer xar (a .dmg, say); the rest is empty
  PackageMetadata metadata;
  SignatureInfo signature;
  std::vector<std::string> warnings;  // for PackageVersion::warnings
};

// `roots` may be null (nothing is then trusted). A file that is not a xar,
// or a xar with neither Distribution nor PackageInfo, is isPackage=false.
// Errors: NotFound/Io for the file; Invalid for a malformed xar or
// installer XML, a Distribution over 4 MiB, a PackageInfo over 1 MiB, more
// than 64 components or 100000 entries; Corrupt when the TOC does not match
// its stored checksum; Unsupported for a xar libarchive cannot read (a
// SHA-256 TOC checksum: libarchive 3.6 knows SHA-1, MD5 and none).
// Skipping the payload seeks; only the XML files are read into memory.
Result<PackageFileInfo> readPackageFile(const std::string& path, const TrustStore* roots);

// The same over bytes in memory (tests and the fuzz target).
Result<PackageFileInfo> readPackageBytes(std::string_view bytes, const TrustStore* roots);

}  // namespace orchard::catalog
