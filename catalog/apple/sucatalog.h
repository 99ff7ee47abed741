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
  // Plist nodes (elements of an XML plist, references of a binary one):
  // libplist spends about 100 bytes of heap on each, so this bounds the
  // tree (Apple's merged catalog has well under a million).
  uint64_t maxNodes = 8'000'000;
};

// Field bounds: a product or package breaking one is skipped.
inline constexpr size_t kMaxProductIdBytes = 64;      // [A-Za-z0-9._-]
inline constexpr size_t kMaxUrlBytes = 8192;
inline constexpr size_t kMaxDistributions = 256;      // languages of one product
inline constexpr uint64_t kMaxPackageSize = 1ull << 40;  // Size and IntegrityDataSize

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
//
// Precisely: a package without URL or Size skips its whole product (half a
// product cannot be installed); so do a bad product id, no Packages array
// (an empty one is fine), a field of the wrong type, a URL
// contentCacheUrl() refuses, a Size of 0 or above kMaxPackageSize, a
// Digest that is not hex, more packages than maxPackagesPerProduct or more
// than kMaxDistributions distributions. A key repeated in any dictionary
// (a product id included) counts once, the last one, in XML and binary
// alike. More products than maxProducts, or a plist over maxNodes or
// deeper than 32 levels, fails the whole catalog: a truncated list would
// look complete. PostDate is libplist 2.2's 32-bit seconds since 2001, so
// dates after 2069 do not come out right.
Result<SuCatalog> parseSuCatalog(std::string_view bytes, const ParseLimits& limits = {}, size_t* skipped = nullptr);

// The content-cache form of an origin URL on the box:
// "<boxBase>/<path>[?<query>&]source=<host[:port]>&sourceScheme=<scheme>".
// nullopt when `url` is not an absolute http(s) URL with a host.
//
// Precisely: scheme and host are lower-cased, a port is kept as given, a
// fragment is dropped, one trailing '/' of boxBase is dropped. Refused:
// more than kMaxUrlBytes, any byte that is a control, space, DEL,
// non-ASCII or one of " < > \ ^ ` { | }, userinfo ('@'), an empty or
// malformed host or port, and a query that already has a source or
// sourceScheme parameter (the box's router takes the first one, so the
// origin would change). So the URLs of a rewritten catalog are refused:
// a box reads Apple's catalog (through its parents when it has any), not
// another box's copy.
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
// XML plist. Same input rules and errors as parseSuCatalog(): the products
// parseSuCatalog() skips are left out of the copy (counted in *skipped).
// The other top-level keys (CatalogVersion, ApplePostURL, IndexDate) are
// kept as they are.
Result<std::string> rewriteSuCatalog(std::string_view bytes, const RewriteOptions& options,
                                     const ParseLimits& limits = {}, size_t* skipped = nullptr);

}  // namespace orchard::catalog::apple
