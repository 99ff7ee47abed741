// Writes the InstallEnterpriseApplication manifest with libplist (2.2 API:
// plist_to_xml_free releases the document). Hard parts: libplist copies
// strings into the XML as they are, so bytes XML cannot carry are replaced
// first (xmlSafe) or the device would refuse the whole manifest; the node
// tree is owned by its root once attached, so only the root is freed.
#include "catalog/manifest.h"

#include <plist/plist.h>

#include <cassert>
#include <initializer_list>
#include <memory>

#include "catalog/names.h"
#include "catalog/utf8.h"

namespace orchard::catalog {
namespace {

struct PlistFree {
  void operator()(plist_t p) const { plist_free(p); }
};
using PlistPtr = std::unique_ptr<void, PlistFree>;

// `s` with every byte XML 1.0 cannot carry replaced by U+FFFD.
std::string xmlSafe(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    const size_t n = utf8Decode(s, i, &cp);
    const bool ok = n > 0 && (cp >= 0x20 || cp == '\t' || cp == '\n' || cp == '\r');
    if (ok) out.append(s.substr(i, n));
    else out += "\xEF\xBF\xBD";
    i += n > 0 ? n : 1;
  }
  return out;
}

void setString(plist_t dict, const char* key, std::string_view value) {
  plist_dict_set_item(dict, key, plist_new_string(xmlSafe(value).c_str()));
}

// <base><route>/<seg>/<seg>...<suffix>, each segment percent-encoded and
// one trailing slash of `base` dropped.
std::string joinUrl(std::string_view base, std::string_view route, std::initializer_list<std::string_view> segments,
                    std::string_view suffix) {
  if (!base.empty() && base.back() == '/') base.remove_suffix(1);
  std::string out(base);
  out += route;
  for (std::string_view s : segments) {
    out += '/';
    out += encodePathSegment(s);
  }
  out += suffix;
  return out;
}

}  // namespace

std::string writeManifest(const ManifestInput& in) {
  plist_t asset = plist_new_dict();
  setString(asset, "kind", "software-package");
  setString(asset, "url", in.url);
  plist_dict_set_item(asset, "sha256-size", plist_new_uint(in.chunkSize));
  plist_t hashes = plist_new_array();
  for (const std::string& h : in.chunkSha256) plist_array_append_item(hashes, plist_new_string(xmlSafe(h).c_str()));
  plist_dict_set_item(asset, "sha256s", hashes);

  plist_t metadata = plist_new_dict();
  setString(metadata, "bundle-identifier", in.bundleId);
  setString(metadata, "bundle-version", in.bundleVersion);
  setString(metadata, "kind", "software");
  setString(metadata, "title", in.title);
  if (!in.subtitle.empty()) setString(metadata, "subtitle", in.subtitle);

  plist_t assets = plist_new_array();
  plist_array_append_item(assets, asset);
  plist_t item = plist_new_dict();
  plist_dict_set_item(item, "assets", assets);
  plist_dict_set_item(item, "metadata", metadata);
  plist_t items = plist_new_array();
  plist_array_append_item(items, item);
  PlistPtr root(plist_new_dict());
  plist_dict_set_item(root.get(), "items", items);

  char* xml = nullptr;
  uint32_t length = 0;
  plist_to_xml(root.get(), &xml, &length);
  assert(xml != nullptr);  // only fails on allocation failure or a malformed tree
  std::string out = xml ? std::string(xml, length) : std::string();
  plist_to_xml_free(xml);
  return out;
}

std::string packageUrl(std::string_view baseUrl, std::string_view name, std::string_view version,
                       std::string_view filename) {
  return joinUrl(baseUrl, "/pkgs", {name, version, filename}, "");
}

std::string manifestUrl(std::string_view baseUrl, std::string_view name, std::string_view version) {
  return joinUrl(baseUrl, "/manifests", {name, version}, ".plist");
}

}  // namespace orchard::catalog
