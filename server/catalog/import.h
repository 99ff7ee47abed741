// Imports into the catalog from the box's own cache (issue 14): an object
// the cache holds (or fetches now, through its own proxy path) becomes a
// published package without a second copy of its bytes and without a
// second trip over the WAN. The object file is complete and immutable, so
// Catalog::importFile hard-links it into the catalog's store; the cache may
// then evict or refetch its copy without touching the package.
//
//   POST /api/v1/packages/{name}/{version}/from-url   (scope publish)
//        {"url": "http(s)://<allowed host>/...",        required
//         "filename": "...",                            default: the URL's last path segment
//         "sha256": "<64 hex>",                         optional: the bytes must hash to it
//         "metadata": {...}}                            optional: as PATCH takes it (request_metadata.h)
//   201 (200 when the same bytes were published already) with the PUT
//   publish's JSON plus "source_url"; 400 for a URL that is not http(s) or
//   whose host is not in upstream.allow; 502 with the reason when the
//   fetch fails or the origin answers anything but 200 (its 404 included:
//   the package's URL is ours, the origin's status is its reason); 503
//   while another import is fetching over the WAN.
//
// POST /api/v1/apple/products/{id}/publish (server/apple/apple_publish.cc)
// calls importFromStore too.
//
// Threads: importFromStore blocks (the box's own HTTP, hashing the whole
// file): call it from the thread pool (OffLoopAnswer), never from a loop.
// At most kMaxFetchingImports of them fetch over the box at once, so they
// never hold every pool thread the fills they wait for need.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "catalog/catalog.h"
#include "server/catalog/catalog_http.h"
#include "server/context.h"
#include "server/http/route_table.h"

namespace orchard::server {

inline constexpr int kMaxFetchingImports = 2;

struct StoreImport {
  std::string url;       // the origin URL, as a Mac would fetch it through the box
  std::string name, version, filename;
  uint64_t expectedSize = 0;  // 0: whatever size the origin's object has
  std::string expectSha;      // lower-case hex, or empty
  // Metadata over the file's own: query-style pairs, then a JSON object
  // (catalog/package_draft.h).
  std::vector<std::pair<std::string, std::string>> overrides;
  std::string metadataJson;
  // Used only where the file leaves a field empty (DraftOptions::fallbacks).
  std::vector<std::pair<std::string, std::string>> fallbacks;
  std::string base;  // where Macs reach the box (baseUrl()), for the answer's URLs
  // A branch's fetch of a hub's pending version (server/catalog/follower.h):
  // the bytes become that very record (Catalog::importReplica: its size
  // and SHA-256 checked, no metadata read) instead of a new publish.
  std::shared_ptr<const catalog::PackageVersion> replica;
  // Body bytes fetched so far, for GET /api/v1/catalog/sync (may be null).
  std::atomic<uint64_t>* progress = nullptr;
  // Passed to the box fetch (stops it at shutdown; may be null).
  const std::atomic<bool>* stop = nullptr;
};

// Makes sure the object of `req.url` is complete in the cache (fetching it
// through BoxFetch::get when it is not: uncapped, the body dropped, the
// cache keeps it), finds its object file (Store::lookup of
// BoxFetch::cacheKeyText, Store::objectFilePath; pinned against eviction
// and verified while it is linked), imports it (Catalog::importFile, the
// metadata read like a PUT publish's) and answers the publish's JSON plus
// "source_url". An object replaced or evicted between the look-up and the
// link is fetched once more. Never calls AppleService (works with
// ctx->apple == nullptr).
OffLoopAnswer::Reply importFromStore(const ServerContext* ctx, const StoreImport& req, const catalog::Actor& actor);

// The default filename of a URL: its last path segment, percent-decoded
// ("" when there is none).
std::string urlFilename(std::string_view url);

// POST /api/v1/packages/{name}/{version}/from-url (registered by
// registerCatalogRoutes).
OffLoopAnswer::Runner appleRunner(const ServerContext* ctx);
RequestHandler* makeFromUrlHandler(HandlerRequest&& r, const ServerContext* ctx);

}  // namespace orchard::server
