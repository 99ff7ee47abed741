// Apple's software update catalog (a "sucatalog"): an XML or binary plist,
// sometimes gzip-compressed, whose "Products" dictionary maps a product id
// to its packages, distributions and metadata. Parsed with libplist; the
// bytes are hostile (they come over the WAN), so every field is checked for
// its type and every size is bounded by what the caller allows, never by
// what the input declares. Pure: no sockets, no files.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace orchard::catalog::apple {

// One package of a product (Products.<id>.Packages[]).
struct CatalogPackage {
  std::string url;           // URL (http or https; required)
  uint64_t size = 0;         // Size (required, > 0)
  std::string digest;        // Digest (hex SHA-1 on Apple's catalogs), "" when absent
  std::string metadataUrl;   // MetadataURL (.pkm), "" when absent
  std::string integrityUrl;  // IntegrityDataURL (a chunklist), "" when absent
  uint64_t integritySize = 0;  // IntegrityDataSize, 0 when absent
};

struct CatalogProduct {
  std::string id;              // the Products key, e.g. "052-96247"
  int64_t postDate = 0;        // PostDate, Unix seconds (0 when absent)
  std::vector<CatalogPackage> packages;
  std::map<std::string, std::string> distributions;  // language ("English", "en") -> .dist URL
  std::string serverMetadataUrl;                     // ServerMetadataURL (.smd), "" when absent
  // ExtendedMetaInfo.InstallAssistantPackageIdentifiers is present: a
  // full macOS installer (InstallAssistant.pkg and friends).
  bool installer = false;
  // The English (else the first) distribution URL, "" when none.
  const std::string& distributionUrl() const;
};

struct SuCatalog {
  std::vector<CatalogProduct> products;  // sorted by id
  const CatalogProduct* find(std::string_view id) const;
};

struct ParseLimits {
  uint64_t maxExpanded = 256ull << 20;  // bytes after gunzip (apple.catalog_max_size)
  size_t maxProducts = 100'000;
  size_t maxPackagesPerProduct = 4096;
};

// Gunzips `bytes` when they start with the gzip magic (1f 8b), refusing
// more than `maxExpanded` bytes of output; other input is returned as is.
// Errors: Errc::Invalid with a static context ("sucatalog: gzip data is
// corrupt", "sucatalog: larger than apple.catalog_max_size").
Result<std::string> maybeGunzip(std::string_view bytes, uint64_t maxExpanded);

// Parses a whole catalog (gzip or not, XML or binary plist). A product
// whose fields have the wrong types, or a package without URL or Size, is
// skipped (counted in *skipped when given) rather than failing the catalog;
// a document that is not a plist dictionary with a Products dictionary is an
// Errc::Invalid error.
Result<SuCatalog> parseSuCatalog(std::string_view bytes, const ParseLimits& limits = {}, size_t* skipped = nullptr);

// The content-cache form of an origin URL on the box:
// "<boxBase>/<path>[?<query>&]source=<host[:port]>&sourceScheme=<scheme>".
// nullopt when `url` is not an absolute http(s) URL with a host.
std::optional<std::string> contentCacheUrl(std::string_view boxBase, std::string_view url);

struct RewriteOptions {
  std::string boxBase;              // "https://orchard.branch.example" (no trailing slash)
  std::vector<std::string> subset;  // product ids to keep; empty = every product
};

// A local copy of the catalog for tools that take a custom catalog URL:
// the same document with every URL of every product (packages, metadata,
// integrity data, distributions, ServerMetadataURL) in contentCacheUrl()
// form pointing at the box, each package's Digest removed (as Reposado
// does), and only the products in `subset` when one is given. Output is an
// XML plist. Same input rules and errors as parseSuCatalog().
Result<std::string> rewriteSuCatalog(std::string_view bytes, const RewriteOptions& options,
                                     const ParseLimits& limits = {});

}  // namespace orchard::catalog::apple
