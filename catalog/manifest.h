// The InstallEnterpriseApplication manifest of a published package version
// (Apple's ManifestURL schema), served at /manifests/{name}/{version}.plist
// and named by the MDM command's ManifestURL, plus the URLs Macs fetch.
//
// Shape written (an XML plist):
//   { items: [ { assets:   [ { kind: "software-package", url: <string>,
//                               sha256-size: <integer>,
//                               sha256s: [ <hex string>, ... ] } ],
//                metadata: { bundle-identifier, bundle-version,
//                            kind: "software", title[, subtitle] } } ] }
// There is deliberately no whole-file `sha256` key: a device that sees one
// ignores the chunk hashes (so it cannot check a download piece by piece),
// and nothing the schema marks removed (sizeInBytes, nested items).
//
// Pure: no I/O. Strings are written as given except that bytes XML 1.0
// cannot carry (C0 controls other than tab, LF and CR; invalid UTF-8) each
// become U+FFFD, so the document always parses; callers validate the
// metadata first (request_metadata.h) and should never hit this.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/package.h"

namespace orchard::catalog {

struct ManifestInput {
  std::string url;                       // the package's bytes: packageUrl()
  std::vector<std::string> chunkSha256;  // hex SHA-256 of each chunkSize piece, in order
  uint64_t chunkSize = kChunkSize;       // sha256-size
  std::string bundleId, bundleVersion, title, subtitle;  // subtitle omitted when empty
};

// The manifest as an XML plist document.
std::string writeManifest(const ManifestInput& in);

// <base>/pkgs/<name>/<version>/<filename>, each segment percent-encoded
// (encodePathSegment). `baseUrl` is scheme://host[:port][/prefix] without a
// trailing slash; one trailing slash is tolerated.
std::string packageUrl(std::string_view baseUrl, std::string_view name, std::string_view version,
                       std::string_view filename);

// <base>/manifests/<name>/<version>.plist, segments percent-encoded.
std::string manifestUrl(std::string_view baseUrl, std::string_view name, std::string_view version);

}  // namespace orchard::catalog
