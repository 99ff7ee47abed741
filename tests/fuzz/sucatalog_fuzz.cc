// Fuzz target: catalog/apple/sucatalog, Apple's software update catalog as
// it comes over the WAN (gzip or not, XML or binary plist): maybeGunzip,
// the plist checks in front of libplist (plist_input.h), parseSuCatalog,
// rewriteSuCatalog and contentCacheUrl.
//
// Input: the catalog's bytes, parsed with small limits so the bounds are
// reachable (1 MiB expanded, 64 products, 16 packages, 20000 nodes).
// Seeds (corpus/sucatalog/): a catalog in Apple's shape as XML, the same
// gzip-compressed, and as a binary plist.
//
// Invariants beyond "no crash":
//   - the rewrite succeeds exactly when the parse does, and leaves out
//     exactly the products the parse skips: its Products dictionary lists
//     the parsed ids, and both count the same skipped products;
//   - a parsed catalog is sorted by id without repeats, find() finds each
//     product, each package has 0 < size <= kMaxPackageSize and URLs that
//     contentCacheUrl() accepts, at most maxPackagesPerProduct packages;
//   - every URL of the rewritten copy points at the box.
#include <plist/plist.h>

#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "catalog/apple/sucatalog.h"
#include "tests/fuzz/fuzz_util.h"

using namespace orchard;
using namespace orchard::catalog::apple;

namespace {

constexpr const char* kBox = "https://box.example";

void checkUrl(const std::string& url, const char* what) {
  FUZZ_CHECK(contentCacheUrl(kBox, url).has_value(), "%s not accepted: %s", what, fuzz::escape(url).c_str());
}

// Product ids of the rewritten copy, and that each URL string in it points
// at the box (walks the fixed catalog paths only).
std::set<std::string> rewrittenIds(const std::string& xml) {
  std::set<std::string> ids;
  plist_t root = nullptr;
  plist_from_xml(xml.data(), static_cast<uint32_t>(xml.size()), &root);
  FUZZ_CHECK(root != nullptr, "the rewritten catalog does not parse");
  plist_t products = plist_dict_get_item(root, "Products");
  FUZZ_CHECK(products && plist_get_node_type(products) == PLIST_DICT, "no Products in the rewrite");
  plist_dict_iter it = nullptr;
  plist_dict_new_iter(products, &it);
  const std::string prefix = std::string(kBox) + "/";
  auto boxUrl = [&](plist_t n) {
    if (!n) return;
    char* v = nullptr;
    plist_get_string_val(n, &v);
    FUZZ_CHECK(v && std::string(v).rfind(prefix, 0) == 0, "a rewritten URL not on the box: %s", v ? v : "(null)");
    std::free(v);
  };
  while (true) {
    char* key = nullptr;
    plist_t p = nullptr;
    plist_dict_next_item(products, it, &key, &p);
    if (!p) break;
    ids.insert(key);
    std::free(key);
    plist_t pkgs = plist_dict_get_item(p, "Packages");
    for (uint32_t i = 0; pkgs && i < plist_array_get_size(pkgs); ++i) {
      plist_t pkg = plist_array_get_item(pkgs, i);
      FUZZ_CHECK(!plist_dict_get_item(pkg, "Digest"), "a Digest survived the rewrite");
      for (const char* k : {"URL", "MetadataURL", "IntegrityDataURL"}) boxUrl(plist_dict_get_item(pkg, k));
    }
    boxUrl(plist_dict_get_item(p, "ServerMetadataURL"));
  }
  std::free(it);
  plist_free(root);
  return ids;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = fuzz::asView(data, size);
  ParseLimits limits;
  limits.maxExpanded = 1u << 20;
  limits.maxProducts = 64;
  limits.maxPackagesPerProduct = 16;
  limits.maxNodes = 20000;

  size_t skipped = 0;
  auto cat = parseSuCatalog(bytes, limits, &skipped);
  size_t dropped = 0;
  auto rewritten = rewriteSuCatalog(bytes, {kBox, {}}, limits, &dropped);
  FUZZ_CHECK(cat.ok() == rewritten.ok(), "parse %d but rewrite %d (%s)", cat.ok(), rewritten.ok(),
             cat.ok() ? rewritten.error().context : cat.error().context);
  if (!cat) {
    FUZZ_CHECK(cat.error().code == Errc::Invalid, "unexpected error code: %s", cat.error().context);
    return 0;
  }
  FUZZ_CHECK(skipped == dropped, "parse skipped %zu, rewrite dropped %zu", skipped, dropped);
  FUZZ_CHECK(cat->products.size() <= limits.maxProducts, "too many products");
  std::set<std::string> ids;
  for (size_t i = 0; i < cat->products.size(); ++i) {
    const CatalogProduct& p = cat->products[i];
    FUZZ_CHECK(i == 0 || cat->products[i - 1].id < p.id, "not sorted or repeated: %s", p.id.c_str());
    FUZZ_CHECK(cat->find(p.id) == &p, "find() misses %s", p.id.c_str());
    FUZZ_CHECK(!p.id.empty() && p.id.size() <= kMaxProductIdBytes, "bad id length");
    FUZZ_CHECK(p.packages.size() <= limits.maxPackagesPerProduct, "too many packages");
    for (const CatalogPackage& k : p.packages) {
      FUZZ_CHECK(k.size > 0 && k.size <= kMaxPackageSize, "size %llu", static_cast<unsigned long long>(k.size));
      checkUrl(k.url, "URL");
      if (!k.metadataUrl.empty()) checkUrl(k.metadataUrl, "MetadataURL");
      if (!k.integrityUrl.empty()) checkUrl(k.integrityUrl, "IntegrityDataURL");
    }
    for (const auto& [lang, url] : p.distributions) checkUrl(url, "a distribution");
    if (!p.serverMetadataUrl.empty()) checkUrl(p.serverMetadataUrl, "ServerMetadataURL");
    ids.insert(p.id);
  }
  FUZZ_CHECK(rewrittenIds(*rewritten) == ids, "the rewrite keeps other products than the parse");
  return 0;
}
