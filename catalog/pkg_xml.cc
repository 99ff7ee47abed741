// Distribution and PackageInfo parsing and their merge (see pkg_xml.h).
//
// Hard parts: a Distribution names each component several times, once as
// a declaration (<pkg-ref id version installKBytes>#file</pkg-ref>), once
// or more as a reference from a <choice>, and again around its
// <bundle-version> list; the merge keys them by id and keeps the first
// non-empty value of each field. The OS bounds live in
// <allowed-os-versions> (current) or <volume-check> (older); a bare
// <os-version> anywhere is the fallback. Bundle versions prefer
// CFBundleShortVersionString, which is what admins and MDMs compare.
#include "catalog/pkg_xml.h"

#include <cstdlib>

#include "catalog/safe_xml.h"

namespace orchard::catalog {

namespace {

uint64_t parseKBytes(const std::string& s) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  return *end == '\0' ? v : 0;
}

BundleInfo bundleOf(xml::Node b) {
  BundleInfo out;
  out.id = xml::attr(b, "id");
  out.version = xml::attr(b, "CFBundleShortVersionString");
  if (out.version.empty()) out.version = xml::attr(b, "CFBundleVersion");
  out.path = xml::attr(b, "path");
  return out;
}

std::vector<std::string> splitArchs(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string a = s.substr(i, j - i);
    while (!a.empty() && a.front() == ' ') a.erase(a.begin());
    while (!a.empty() && a.back() == ' ') a.pop_back();
    if (!a.empty()) out.push_back(std::move(a));
    i = j + 1;
  }
  return out;
}

PkgRef* refById(std::vector<PkgRef>& refs, const std::string& id) {
  for (auto& r : refs)
    if (r.id == id) return &r;
  return nullptr;
}

bool endsWith(const std::string& s, std::string_view suffix) {
  std::string_view v = s;
  while (v.ends_with('/')) v.remove_suffix(1);
  return v.ends_with(suffix);
}

}  // namespace

Result<DistributionInfo> parseDistribution(std::string_view text) {
  auto doc = xml::parseUntrusted(text, "Distribution is not well-formed XML");
  if (!doc) return doc.error();
  xml::Node root = xml::root(*doc);
  if (xml::name(root) != "installer-gui-script" && xml::name(root) != "installer-script")
    return Error{Errc::Invalid, 0, "Distribution: the root is not <installer-gui-script>"};
  DistributionInfo d;
  d.title = xml::text(xml::firstChild(root, "title"));
  if (xml::Node p = xml::firstChild(root, "product")) {
    d.productId = xml::attr(p, "id");
    d.productVersion = xml::attr(p, "version");
  }
  if (xml::Node o = xml::firstChild(root, "options")) d.archs = splitArchs(xml::attr(o, "hostArchitectures"));

  xml::Node os = nullptr;
  for (const char* where : {"allowed-os-versions", "volume-check"}) {
    for (xml::Node w : xml::descendants(root, where)) {
      auto v = xml::descendants(w, "os-version");
      if (!v.empty()) {
        os = v.front();
        break;
      }
    }
    if (os) break;
  }
  if (!os) {
    auto v = xml::descendants(root, "os-version");
    if (!v.empty()) os = v.front();
  }
  if (os) {
    d.minOs = xml::attr(os, "min");
    d.maxOs = xml::attr(os, "before");
  }

  for (xml::Node r : xml::descendants(root, "pkg-ref")) {
    std::string id = xml::attr(r, "id");
    if (id.empty()) continue;
    PkgRef* ref = refById(d.pkgRefs, id);
    if (!ref) {
      d.pkgRefs.push_back(PkgRef{id, "", 0});
      ref = &d.pkgRefs.back();
    }
    if (ref->version.empty()) ref->version = xml::attr(r, "version");
    if (ref->installKBytes == 0) ref->installKBytes = parseKBytes(xml::attr(r, "installKBytes"));
    for (xml::Node bv : xml::children(r, "bundle-version"))
      for (xml::Node b : xml::descendants(bv, "bundle")) d.bundles.push_back(OwnedBundle{bundleOf(b), id});
  }
  return d;
}

Result<ComponentInfo> parsePackageInfo(std::string_view text) {
  auto doc = xml::parseUntrusted(text, "PackageInfo is not well-formed XML");
  if (!doc) return doc.error();
  xml::Node root = xml::root(*doc);
  if (xml::name(root) != "pkg-info") return Error{Errc::Invalid, 0, "PackageInfo: the root is not <pkg-info>"};
  ComponentInfo c;
  c.identifier = xml::attr(root, "identifier");
  c.version = xml::attr(root, "version");
  c.installLocation = xml::attr(root, "install-location");
  if (xml::Node p = xml::firstChild(root, "payload")) c.installKBytes = parseKBytes(xml::attr(p, "installKBytes"));
  for (xml::Node b : xml::descendants(root, "bundle")) {
    BundleInfo info = bundleOf(b);
    if (info.id.empty()) continue;
    bool seen = false;
    for (const auto& e : c.bundles) seen = seen || (e.id == info.id && e.path == info.path);
    if (!seen) c.bundles.push_back(std::move(info));
  }
  return c;
}

int chooseMainBundle(const std::vector<OwnedBundle>& bundles, const std::string& packageId,
                     const std::vector<PkgRef>& refs) {
  if (bundles.empty()) return -1;
  for (size_t i = 0; i < bundles.size(); ++i)
    if (!packageId.empty() && bundles[i].bundle.id == packageId) return static_cast<int>(i);
  int best = -1;
  uint64_t bestSize = 0;
  for (size_t i = 0; i < bundles.size(); ++i) {
    const BundleInfo& b = bundles[i].bundle;
    if (!endsWith(b.path, ".app")) continue;
    uint64_t size = 0;
    for (const auto& r : refs)
      if (r.id == bundles[i].pkgRef) size = r.installKBytes;
    if (best < 0 || size > bestSize ||
        (size == bestSize && b.path.size() < bundles[static_cast<size_t>(best)].bundle.path.size())) {
      best = static_cast<int>(i);
      bestSize = size;
    }
  }
  return best >= 0 ? best : 0;
}

PackageMetadata mergeMetadata(const DistributionInfo* dist, const std::vector<FoundComponent>& components) {
  PackageMetadata m;
  std::vector<OwnedBundle> bundles;
  auto set = [&m](std::string& field, const std::string& value, const char* key, const std::string& from) {
    if (value.empty() || !field.empty()) return;
    field = value;
    m.source[key] = from;
  };
  auto fileOf = [](const FoundComponent& c) { return c.dir.empty() ? "PackageInfo" : c.dir + "/PackageInfo"; };

  if (dist) {
    m.distribution = true;
    const std::string from = "Distribution";
    set(m.title, dist->title, "title", from);
    set(m.packageId, dist->productId, "package_id", from);
    set(m.packageVersion, dist->productVersion, "package_version", from);
    set(m.minOs, dist->minOs, "min_os", from);
    set(m.maxOs, dist->maxOs, "max_os", from);
    if (!dist->archs.empty()) {
      m.archs = dist->archs;
      m.source["archs"] = from;
    }
    m.pkgRefs = dist->pkgRefs;
    if (!m.pkgRefs.empty()) m.source["pkg_refs"] = from;
    bundles = dist->bundles;
    if (!bundles.empty()) m.source["bundles"] = from;
  }
  for (const FoundComponent& c : components) {
    const ComponentInfo& ci = c.info;
    if (ci.identifier.empty()) continue;
    PkgRef* ref = refById(m.pkgRefs, ci.identifier);
    if (!ref && !dist) {
      m.pkgRefs.push_back(PkgRef{ci.identifier, "", 0});
      ref = &m.pkgRefs.back();
      m.source["pkg_refs"] = fileOf(c);
    }
    if (ref && ref->version.empty()) ref->version = ci.version;
    if (ref && ref->installKBytes == 0) ref->installKBytes = ci.installKBytes;
    for (const BundleInfo& b : ci.bundles) {
      bool seen = false;
      for (const auto& e : bundles) seen = seen || e.bundle.id == b.id;
      if (seen) continue;
      bundles.push_back(OwnedBundle{b, ci.identifier});
      if (!m.source.count("bundles")) m.source["bundles"] = fileOf(c);
    }
  }
  // The package is the product; else the first component (in the
  // Distribution's order when there is one).
  if (m.packageId.empty() && dist && !m.pkgRefs.empty()) {
    const PkgRef& r = m.pkgRefs.front();
    std::string from = "Distribution";
    if (dist->pkgRefs.front().version.empty())
      for (const auto& c : components)
        if (c.info.identifier == r.id) from = fileOf(c);
    set(m.packageId, r.id, "package_id", "Distribution");
    set(m.packageVersion, r.version, "package_version", from);
  } else if (m.packageId.empty() && !components.empty()) {
    const FoundComponent& first = components.front();
    set(m.packageId, first.info.identifier, "package_id", fileOf(first));
    set(m.packageVersion, first.info.version, "package_version", fileOf(first));
  }
  for (const auto& b : bundles) m.bundles.push_back(b.bundle);
  int main = chooseMainBundle(bundles, m.packageId, m.pkgRefs);
  if (main >= 0) {
    const BundleInfo& b = bundles[static_cast<size_t>(main)].bundle;
    const std::string& from = m.source["bundles"];
    set(m.bundleId, b.id, "bundle_id", from);
    set(m.bundleVersion, b.version, "bundle_version", from);
  }
  return m;
}

}  // namespace orchard::catalog
