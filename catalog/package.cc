// JSON form of the catalog's records (package.h). The field names are the
// API's; a stored record that does not parse is reported, never guessed at.
#include "catalog/package.h"

#include <nlohmann/json.hpp>

namespace orchard::catalog {

using nlohmann::json;

void toJson(json& j, const BundleInfo& v) {
  j = json{{"id", v.id}, {"version", v.version}};
  if (!v.path.empty()) j["path"] = v.path;
}

void toJson(json& j, const PkgRef& v) {
  j = json{{"id", v.id}, {"version", v.version}};
  if (v.installKBytes) j["install_kbytes"] = v.installKBytes;
}

void toJson(json& j, const PackageMetadata& v) {
  j = json::object();
  j["title"] = v.title;
  j["bundle_id"] = v.bundleId;
  j["bundle_version"] = v.bundleVersion;
  j["package_id"] = v.packageId;
  j["package_version"] = v.packageVersion;
  j["min_os"] = v.minOs;
  j["max_os"] = v.maxOs;
  j["archs"] = v.archs;
  json bundles = json::array();
  for (const auto& b : v.bundles) {
    json e;
    toJson(e, b);
    bundles.push_back(std::move(e));
  }
  j["bundles"] = std::move(bundles);
  json refs = json::array();
  for (const auto& r : v.pkgRefs) {
    json e;
    toJson(e, r);
    refs.push_back(std::move(e));
  }
  j["pkg_refs"] = std::move(refs);
  j["distribution"] = v.distribution;
  j["kind"] = v.kind;
  j["source"] = v.source;
}

void toJson(json& j, const SignatureInfo& v) {
  j = json{{"present", v.present}, {"verified", v.verified}, {"trusted", v.trusted}, {"chain", v.chain}};
  if (!v.problem.empty()) j["problem"] = v.problem;
}

void toJson(json& j, const PackageVersion& v, bool withChunks) {
  j = json::object();
  j["name"] = v.name;
  j["version"] = v.version;
  j["filename"] = v.filename;
  j["size"] = v.size;
  j["sha256"] = v.sha256;
  if (withChunks) j["chunks"] = v.chunks;
  j["published"] = v.published;
  j["published_by"] = v.publishedBy;
  toJson(j["metadata"], v.metadata);
  toJson(j["signature"], v.signature);
  j["warnings"] = v.warnings;
}

namespace {

// Typed reads that report instead of throwing on a wrong type.
bool getString(const json& j, const char* k, std::string* out, bool required = false) {
  auto it = j.find(k);
  if (it == j.end() || it->is_null()) return !required;
  if (!it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

bool getStrings(const json& j, const char* k, std::vector<std::string>* out) {
  auto it = j.find(k);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_array()) return false;
  for (const auto& e : *it) {
    if (!e.is_string()) return false;
    out->push_back(e.get<std::string>());
  }
  return true;
}

bool getBool(const json& j, const char* k, bool* out) {
  auto it = j.find(k);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_boolean()) return false;
  *out = it->get<bool>();
  return true;
}

bool getU64(const json& j, const char* k, uint64_t* out, bool required = false) {
  auto it = j.find(k);
  if (it == j.end() || it->is_null()) return !required;
  if (!it->is_number_unsigned()) return false;
  *out = it->get<uint64_t>();
  return true;
}

const Error kBadRecord{Errc::Invalid, 0, "catalog record: a field is missing or has the wrong type"};

}  // namespace

Result<PackageMetadata> metadataFromJson(const json& j) {
  if (!j.is_object()) return kBadRecord;
  PackageMetadata m;
  bool ok = getString(j, "title", &m.title) && getString(j, "bundle_id", &m.bundleId) &&
            getString(j, "bundle_version", &m.bundleVersion) && getString(j, "package_id", &m.packageId) &&
            getString(j, "package_version", &m.packageVersion) && getString(j, "min_os", &m.minOs) &&
            getString(j, "max_os", &m.maxOs) && getStrings(j, "archs", &m.archs) && getString(j, "kind", &m.kind) &&
            getBool(j, "distribution", &m.distribution);
  if (!ok) return kBadRecord;
  if (auto it = j.find("bundles"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return kBadRecord;
    for (const auto& e : *it) {
      BundleInfo b;
      if (!e.is_object() || !getString(e, "id", &b.id) || !getString(e, "version", &b.version) ||
          !getString(e, "path", &b.path))
        return kBadRecord;
      m.bundles.push_back(std::move(b));
    }
  }
  if (auto it = j.find("pkg_refs"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return kBadRecord;
    for (const auto& e : *it) {
      PkgRef r;
      if (!e.is_object() || !getString(e, "id", &r.id) || !getString(e, "version", &r.version) ||
          !getU64(e, "install_kbytes", &r.installKBytes))
        return kBadRecord;
      m.pkgRefs.push_back(std::move(r));
    }
  }
  if (auto it = j.find("source"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return kBadRecord;
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string()) return kBadRecord;
      m.source[k] = v.get<std::string>();
    }
  }
  return m;
}

Result<PackageVersion> packageVersionFromJson(const json& j) {
  if (!j.is_object()) return kBadRecord;
  PackageVersion v;
  bool ok = getString(j, "name", &v.name, true) && getString(j, "version", &v.version, true) &&
            getString(j, "filename", &v.filename, true) && getU64(j, "size", &v.size, true) &&
            getString(j, "sha256", &v.sha256, true) && getStrings(j, "chunks", &v.chunks) &&
            getString(j, "published_by", &v.publishedBy) && getStrings(j, "warnings", &v.warnings);
  if (!ok) return kBadRecord;
  if (auto it = j.find("published"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) return kBadRecord;
    v.published = it->get<int64_t>();
  }
  if (auto it = j.find("metadata"); it != j.end() && !it->is_null()) {
    auto m = metadataFromJson(*it);
    if (!m) return m.error();
    v.metadata = std::move(*m);
  }
  if (auto it = j.find("signature"); it != j.end() && !it->is_null()) {
    const json& s = *it;
    if (!s.is_object() || !getBool(s, "present", &v.signature.present) ||
        !getBool(s, "verified", &v.signature.verified) || !getBool(s, "trusted", &v.signature.trusted) ||
        !getStrings(s, "chain", &v.signature.chain) || !getString(s, "problem", &v.signature.problem))
      return kBadRecord;
  }
  return v;
}

}  // namespace orchard::catalog
