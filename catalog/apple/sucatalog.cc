// Apple's software update catalog: gunzip, parse, the content-cache URL
// form and the rewritten local copy (see sucatalog.h).
//
// One reader decides what a product is (readProduct): parseSuCatalog()
// collects what it reads, rewriteSuCatalog() keeps exactly the products it
// accepts, so the box never hands out a catalog entry it would not itself
// list or mirror. The plist comes through detail::parseUntrustedPlist
// (plist_input.h), which bounds depth, nodes and expansion before libplist
// builds its tree; everything here walks fixed paths (root, Products,
// product, Packages, package), never a generic recursion.
//
// libplist 2.2 notes: strings are read in place (plist_get_string_ptr, with
// their length, so an embedded NUL is seen and refused); dates are seconds
// since 2001-01-01; a negative <integer> reads as a huge unsigned value,
// which the size bounds refuse; dictionary keys come back malloc'd.
#include "catalog/apple/sucatalog.h"

#include <plist/plist.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>

#include "catalog/apple/plist_input.h"

namespace orchard::catalog::apple {

namespace {

constexpr int64_t kAppleEpoch = 978307200;  // 2001-01-01T00:00:00Z in Unix seconds

bool isGzip(std::string_view b) {
  return b.size() >= 2 && static_cast<unsigned char>(b[0]) == 0x1f && static_cast<unsigned char>(b[1]) == 0x8b;
}

// ---- origin URLs ----

struct OriginUrl {
  std::string scheme;      // "http" | "https"
  std::string authority;   // host (lower case) [":" port], brackets kept for IPv6
  std::string_view path;   // "/..." ("/" when the URL has none)
  std::string_view query;  // without '?', "" when none
};

char lowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lowerAscii(c);
  return out;
}

bool isAlnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool validHostName(std::string_view h) {
  if (h.empty() || h.size() > 253 || h.front() == '.' || h.back() == '.' || h.find("..") != std::string_view::npos)
    return false;
  for (char c : h)
    if (!(isAlnum(c) || c == '-' || c == '.' || c == '_')) return false;
  return true;
}

bool validIpv6(std::string_view h) {
  if (h.size() < 2 || h.size() > 45) return false;
  for (char c : h)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
      return false;
  return h.find(':') != std::string_view::npos;
}

bool validPort(std::string_view p) {
  if (p.empty() || p.size() > 5) return false;
  uint32_t v = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v >= 1 && v <= 65535;
}

// A query parameter named exactly `name` (as the box's router reads it).
bool hasParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view p = query.substr(0, amp);
    if (p.substr(0, p.find('=')) == name) return true;
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

std::optional<OriginUrl> parseOriginUrl(std::string_view url) {
  if (url.empty() || url.size() > kMaxUrlBytes) return std::nullopt;
  for (char ch : url) {
    const auto c = static_cast<unsigned char>(ch);
    // Controls, space, DEL, non-ASCII and the characters RFC 3986 never
    // allows unencoded: nothing a Mac would fetch as given.
    if (c <= 0x20 || c >= 0x7f || std::strchr("\"<>\\^`{|}", ch)) return std::nullopt;
  }
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  OriginUrl out;
  out.scheme = lowerCopy(url.substr(0, sep));
  if (out.scheme != "http" && out.scheme != "https") return std::nullopt;
  std::string_view rest = url.substr(sep + 3);
  const size_t authEnd = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, authEnd);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  std::string_view host = authority;
  std::string_view port;
  if (authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port = after.substr(1);
      if (!validPort(port)) return std::nullopt;
    }
    if (!validIpv6(host)) return std::nullopt;
  } else {
    const size_t colon = authority.find(':');
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      host = authority.substr(0, colon);
      if (!validPort(port)) return std::nullopt;
    }
    if (!validHostName(host)) return std::nullopt;
  }
  out.authority = lowerCopy(authority);
  std::string_view tail = authEnd == std::string_view::npos ? std::string_view() : rest.substr(authEnd);
  tail = tail.substr(0, tail.find('#'));  // a fragment is never sent to a server
  const size_t q = tail.find('?');
  out.path = tail.substr(0, q);
  if (out.path.empty()) out.path = "/";
  if (q != std::string_view::npos) out.query = tail.substr(q + 1);
  // The router takes the first source= it finds: an origin URL that already
  // has one would send the box somewhere else.
  if (hasParam(out.query, "source") || hasParam(out.query, "sourceScheme")) return std::nullopt;
  return out;
}

std::string cacheForm(std::string_view boxBase, const OriginUrl& u) {
  if (!boxBase.empty() && boxBase.back() == '/') boxBase.remove_suffix(1);
  std::string out;
  out.reserve(boxBase.size() + u.path.size() + u.query.size() + u.authority.size() + 32);
  out += boxBase;
  out += u.path;
  out += '?';
  if (!u.query.empty()) {
    out += u.query;
    out += '&';
  }
  out += "source=";
  out += u.authority;
  out += "&sourceScheme=";
  out += u.scheme;
  return out;
}

// ---- plist fields ----

enum class Got { Absent, Ok, Bad };

Got stringField(plist_t dict, const char* key, std::string_view* out) {
  plist_t n = plist_dict_get_item(dict, key);
  if (!n) return Got::Absent;
  if (plist_get_node_type(n) != PLIST_STRING) return Got::Bad;
  uint64_t len = 0;
  const char* p = plist_get_string_ptr(n, &len);
  *out = p ? std::string_view(p, len) : std::string_view();
  return Got::Ok;
}

Got uintField(plist_t dict, const char* key, uint64_t* out) {
  plist_t n = plist_dict_get_item(dict, key);
  if (!n) return Got::Absent;
  if (plist_get_node_type(n) != PLIST_UINT) return Got::Bad;
  plist_get_uint_val(n, out);
  return Got::Ok;
}

// An optional URL field: absent is fine, present must be a good URL.
bool optionalUrl(plist_t dict, const char* key, std::string* out) {
  std::string_view v;
  switch (stringField(dict, key, &v)) {
    case Got::Absent: return true;
    case Got::Bad: return false;
    case Got::Ok: break;
  }
  if (!parseOriginUrl(v)) return false;
  *out = std::string(v);
  return true;
}

bool validProductId(std::string_view id) {
  if (id.empty() || id.size() > kMaxProductIdBytes) return false;
  for (char c : id)
    if (!(isAlnum(c) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

bool validLanguage(std::string_view l) {
  if (l.empty() || l.size() > 64) return false;
  for (char c : l)
    if (!(isAlnum(c) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

bool validHex(std::string_view h) {
  if (h.empty() || h.size() > 128) return false;
  for (char c : h)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  return true;
}

// Iterates a dictionary's (key, value) pairs; the key is valid for the
// callback only. The callback returns false to stop.
template <typename F>
void forEachEntry(plist_t dict, F&& f) {
  plist_dict_iter it = nullptr;
  plist_dict_new_iter(dict, &it);
  if (!it) return;
  while (true) {
    char* key = nullptr;
    plist_t value = nullptr;
    plist_dict_next_item(dict, it, &key, &value);
    if (!value) {
      std::free(key);
      break;
    }
    const bool more = f(std::string_view(key ? key : ""), value);
    std::free(key);
    if (!more) break;
  }
  std::free(it);
}

bool readPackage(plist_t pkg, CatalogPackage* out) {
  if (plist_get_node_type(pkg) != PLIST_DICT) return false;
  std::string_view url;
  if (stringField(pkg, "URL", &url) != Got::Ok || !parseOriginUrl(url)) return false;
  out->url = std::string(url);
  if (uintField(pkg, "Size", &out->size) != Got::Ok || out->size == 0 || out->size > kMaxPackageSize) return false;
  std::string_view digest;
  switch (stringField(pkg, "Digest", &digest)) {
    case Got::Absent: break;
    case Got::Bad: return false;
    case Got::Ok:
      if (!validHex(digest)) return false;
      out->digest = std::string(digest);
      break;
  }
  if (!optionalUrl(pkg, "MetadataURL", &out->metadataUrl)) return false;
  if (!optionalUrl(pkg, "IntegrityDataURL", &out->integrityUrl)) return false;
  switch (uintField(pkg, "IntegrityDataSize", &out->integritySize)) {
    case Got::Absent: break;
    case Got::Bad: return false;
    case Got::Ok:
      if (out->integritySize > kMaxPackageSize) return false;
      break;
  }
  return true;
}

// The one definition of an acceptable product (see sucatalog.h).
bool readProduct(std::string_view id, plist_t p, const ParseLimits& limits, CatalogProduct* out) {
  if (!validProductId(id) || plist_get_node_type(p) != PLIST_DICT) return false;
  out->id = std::string(id);

  if (plist_t date = plist_dict_get_item(p, "PostDate")) {
    if (plist_get_node_type(date) != PLIST_DATE) return false;
    int32_t sec = 0, usec = 0;
    plist_get_date_val(date, &sec, &usec);
    out->postDate = int64_t(sec) + kAppleEpoch;
  }

  plist_t pkgs = plist_dict_get_item(p, "Packages");
  if (!pkgs || plist_get_node_type(pkgs) != PLIST_ARRAY) return false;
  const uint32_t n = plist_array_get_size(pkgs);  // the tree's real count
  if (n > limits.maxPackagesPerProduct) return false;
  out->packages.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    CatalogPackage pkg;
    if (!readPackage(plist_array_get_item(pkgs, i), &pkg)) return false;
    out->packages.push_back(std::move(pkg));
  }

  if (plist_t dists = plist_dict_get_item(p, "Distributions")) {
    if (plist_get_node_type(dists) != PLIST_DICT || plist_dict_get_size(dists) > kMaxDistributions) return false;
    bool good = true;
    forEachEntry(dists, [&](std::string_view lang, plist_t v) {
      uint64_t len = 0;
      const char* s = plist_get_node_type(v) == PLIST_STRING ? plist_get_string_ptr(v, &len) : nullptr;
      const std::string_view url = s ? std::string_view(s, len) : std::string_view();
      if (!s || !validLanguage(lang) || !parseOriginUrl(url)) {
        good = false;
        return false;
      }
      out->distributions.emplace(std::string(lang), std::string(url));
      return true;
    });
    if (!good) return false;
  }

  if (!optionalUrl(p, "ServerMetadataURL", &out->serverMetadataUrl)) return false;

  if (plist_t ext = plist_dict_get_item(p, "ExtendedMetaInfo")) {
    if (plist_get_node_type(ext) != PLIST_DICT) return false;
    if (plist_t ids = plist_dict_get_item(ext, "InstallAssistantPackageIdentifiers")) {
      if (plist_get_node_type(ids) != PLIST_DICT) return false;
      out->installer = true;
    }
  }
  return true;
}

// The catalog's Products dictionary, after the whole-document checks.
Result<detail::PlistPtr> openCatalog(std::string_view bytes, const ParseLimits& limits, plist_t* products) {
  // Plain input is read where it is (no copy of tens of MB).
  std::string expanded;
  std::string_view doc = bytes;
  if (isGzip(bytes)) {
    auto r = maybeGunzip(bytes, limits.maxExpanded);
    if (!r) return r.error();
    expanded = std::move(*r);
    doc = expanded;
  }
  if (doc.size() > limits.maxExpanded) return Error{Errc::Invalid, 0, "sucatalog: larger than apple.catalog_max_size"};
  auto root = detail::parseUntrustedPlist(doc, {limits.maxExpanded, limits.maxNodes},
                                          "sucatalog: not a plist (or beyond the depth and size bounds)");
  if (!root) return root.error();
  if (plist_get_node_type(root->get()) != PLIST_DICT)
    return Error{Errc::Invalid, 0, "sucatalog: the root is not a dictionary"};
  plist_t p = plist_dict_get_item(root->get(), "Products");
  if (!p || plist_get_node_type(p) != PLIST_DICT)
    return Error{Errc::Invalid, 0, "sucatalog: no Products dictionary"};
  if (plist_dict_get_size(p) > limits.maxProducts)
    return Error{Errc::Invalid, 0, "sucatalog: more products than the limit"};
  *products = p;
  return std::move(*root);
}

void count(size_t* skipped) {
  if (skipped) ++*skipped;
}

}  // namespace

const std::string& CatalogProduct::distributionUrl() const {
  static const std::string kNone;
  for (const char* lang : {"English", "en"}) {
    auto it = distributions.find(lang);
    if (it != distributions.end()) return it->second;
  }
  return distributions.empty() ? kNone : distributions.begin()->second;
}

const CatalogProduct* SuCatalog::find(std::string_view id) const {
  auto it = std::lower_bound(products.begin(), products.end(), id,
                             [](const CatalogProduct& p, std::string_view k) { return p.id < k; });
  return it != products.end() && it->id == id ? &*it : nullptr;
}

Result<std::string> maybeGunzip(std::string_view bytes, uint64_t maxExpanded) {
  if (!isGzip(bytes)) {
    if (bytes.size() > maxExpanded) return Error{Errc::Invalid, 0, "sucatalog: larger than apple.catalog_max_size"};
    return std::string(bytes);
  }
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return Error{Errc::NoSpace, ENOMEM, "sucatalog: cannot start zlib"};
  std::string out;
  char buf[64 * 1024];
  const auto* in = reinterpret_cast<const Bytef*>(bytes.data());
  size_t left = bytes.size();
  // zlib takes at most 4 GiB at a time (uInt): feed it in 1 GiB pieces.
  auto refill = [&] {
    if (zs.avail_in > 0 || left == 0) return;
    const size_t take = std::min<size_t>(left, size_t(1) << 30);
    zs.next_in = const_cast<Bytef*>(in);
    zs.avail_in = static_cast<uInt>(take);
    in += take;
    left -= take;
  };
  Error err{Errc::Invalid, 0, "sucatalog: gzip data is corrupt"};
  bool done = false;
  while (true) {
    refill();
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    const int rc = inflate(&zs, Z_NO_FLUSH);
    const size_t produced = sizeof buf - zs.avail_out;
    if (produced > maxExpanded - out.size()) {  // out.size() <= maxExpanded holds
      err = Error{Errc::Invalid, 0, "sucatalog: larger than apple.catalog_max_size"};
      break;
    }
    out.append(buf, produced);
    if (rc == Z_OK) continue;
    if (rc != Z_STREAM_END) break;  // Z_BUF_ERROR (truncated), Z_DATA_ERROR, Z_MEM_ERROR, ...
    refill();
    if (zs.avail_in == 0) {
      done = true;
      break;
    }
    // Concatenated members are one gzip file (RFC 1952 2.2); anything else
    // after a member is corrupt. (A member boundary that falls on a 1 GiB
    // piece boundary is checked on its first byte only.)
    if (zs.next_in[0] != 0x1f || (zs.avail_in >= 2 && zs.next_in[1] != 0x8b)) break;
    if (inflateReset(&zs) != Z_OK) break;
  }
  inflateEnd(&zs);
  if (!done) return err;
  return out;
}

Result<SuCatalog> parseSuCatalog(std::string_view bytes, const ParseLimits& limits, size_t* skipped) {
  plist_t products = nullptr;
  auto root = openCatalog(bytes, limits, &products);
  if (!root) return root.error();
  SuCatalog cat;
  cat.products.reserve(plist_dict_get_size(products));
  forEachEntry(products, [&](std::string_view id, plist_t p) {
    CatalogProduct prod;
    if (readProduct(id, p, limits, &prod)) cat.products.push_back(std::move(prod));
    else count(skipped);
    return true;
  });
  // Ids are unique: libplist keeps one value per key (plist_input.h).
  std::sort(cat.products.begin(), cat.products.end(),
            [](const CatalogProduct& a, const CatalogProduct& b) { return a.id < b.id; });
  return cat;
}

std::optional<std::string> contentCacheUrl(std::string_view boxBase, std::string_view url) {
  auto u = parseOriginUrl(url);
  if (!u) return std::nullopt;
  return cacheForm(boxBase, *u);
}

namespace {

// Rewrites the string node `n` (a URL readProduct accepted) in place.
bool rewriteNode(plist_t n, std::string_view boxBase) {
  if (!n) return true;
  uint64_t len = 0;
  const char* s = plist_get_string_ptr(n, &len);
  auto u = s ? contentCacheUrl(boxBase, std::string_view(s, len)) : std::nullopt;
  if (!u) return false;
  plist_set_string_val(n, u->c_str());
  return true;
}

bool rewriteProduct(plist_t p, std::string_view boxBase) {
  plist_t pkgs = plist_dict_get_item(p, "Packages");
  const uint32_t n = plist_array_get_size(pkgs);
  for (uint32_t i = 0; i < n; ++i) {
    plist_t pkg = plist_array_get_item(pkgs, i);
    for (const char* key : {"URL", "MetadataURL", "IntegrityDataURL"})
      if (!rewriteNode(plist_dict_get_item(pkg, key), boxBase)) return false;
    if (plist_dict_get_item(pkg, "Digest")) plist_dict_remove_item(pkg, "Digest");
  }
  if (plist_t dists = plist_dict_get_item(p, "Distributions")) {
    bool good = true;
    forEachEntry(dists, [&](std::string_view, plist_t v) {
      good = rewriteNode(v, boxBase);
      return good;
    });
    if (!good) return false;
  }
  return rewriteNode(plist_dict_get_item(p, "ServerMetadataURL"), boxBase);
}

}  // namespace

Result<std::string> rewriteSuCatalog(std::string_view bytes, const RewriteOptions& options, const ParseLimits& limits,
                                     size_t* skipped) {
  plist_t products = nullptr;
  auto root = openCatalog(bytes, limits, &products);
  if (!root) return root.error();
  const std::set<std::string_view> subset(options.subset.begin(), options.subset.end());
  // Keys are unique here (plist_input.h), so removing by key is exact.
  std::vector<std::string> drop;
  forEachEntry(products, [&](std::string_view id, plist_t p) {
    CatalogProduct prod;
    if (!subset.empty() && !subset.count(id)) {
      drop.emplace_back(id);
    } else if (!readProduct(id, p, limits, &prod) || !rewriteProduct(p, options.boxBase)) {
      count(skipped);
      drop.emplace_back(id);
    }
    return true;
  });
  for (const std::string& id : drop) plist_dict_remove_item(products, id.c_str());

  char* xml = nullptr;
  uint32_t length = 0;
  plist_to_xml(root->get(), &xml, &length);
  if (!xml) return Error{Errc::NoSpace, ENOMEM, "sucatalog: cannot write the rewritten catalog"};
  std::string out(xml, length);
  plist_to_xml_free(xml);
  // Every string came through the XML check already (plist_input.h) and
  // the new URLs are ASCII: this only guards that reasoning.
  if (!detail::xmlPlistShapeOk(out, limits.maxNodes + 1))
    return Error{Errc::Invalid, 0, "sucatalog: the rewritten catalog is not well-formed XML"};
  return out;
}

}  // namespace orchard::catalog::apple
