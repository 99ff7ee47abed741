// Request metadata: overrides from the PUT's query or a JSON body, and the
// manifest's defaults (see request_metadata.h). Hard parts: the JSON body is
// untrusted, so its size and nesting are bounded before nlohmann builds a
// tree (a byte scan, since nlohmann has no depth limit), parse errors are
// caught and their text made printable (they quote input bytes); both entry
// points share one field table and one setter so the rules cannot drift;
// and every call works on a copy so a refusal leaves the record untouched.
#include "catalog/request_metadata.h"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <vector>

#include "catalog/utf8.h"

namespace orchard::catalog {
namespace {

enum class Kind { Text, OsVersion, Archs };

struct Field {
  std::string_view key;
  std::string PackageMetadata::*member;  // null for archs
  Kind kind;
};

constexpr std::array<Field, 8> kFields = {{
    {"title", &PackageMetadata::title, Kind::Text},
    {"bundle_id", &PackageMetadata::bundleId, Kind::Text},
    {"bundle_version", &PackageMetadata::bundleVersion, Kind::Text},
    {"package_id", &PackageMetadata::packageId, Kind::Text},
    {"package_version", &PackageMetadata::packageVersion, Kind::Text},
    {"min_os", &PackageMetadata::minOs, Kind::OsVersion},
    {"max_os", &PackageMetadata::maxOs, Kind::OsVersion},
    {"archs", nullptr, Kind::Archs},
}};

const Field* findField(std::string_view key) {
  for (const Field& f : kFields)
    if (f.key == key) return &f;
  return nullptr;
}

std::string unknownKey(std::string_view key) {
  std::string known;
  for (const Field& f : kFields) known += (known.empty() ? "" : ", ") + std::string(f.key);
  return printable(key) + ": unknown metadata field (known: " + known + ")";
}

std::optional<std::string> valueProblem(Kind kind, std::string_view v) {
  if (v.empty()) return "is empty";
  if (auto p = textProblem(v, kMaxMetadataValueBytes)) return p;
  if (kind != Kind::OsVersion) return std::nullopt;
  size_t parts = 0, digits = 0;
  for (char c : v) {
    if (c >= '0' && c <= '9') {
      if (digits++ == 0) ++parts;
      if (digits > 9) return "is not a dotted numeric version (a component has more than 9 digits)";
    } else if (c == '.' && digits > 0) {
      digits = 0;
    } else {
      return "is not a dotted numeric version such as 14.0";
    }
  }
  if (digits == 0) return "is not a dotted numeric version such as 14.0 (ends with '.')";
  if (parts > 4) return "is not a dotted numeric version (more than 4 components)";
  return std::nullopt;
}

// Sets archs from a list, checking each item; `items` are untrusted.
std::optional<std::string> setArchs(PackageMetadata* m, const std::vector<std::string_view>& items) {
  if (items.empty()) return "archs: is empty";
  std::vector<std::string> archs;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string_view a = items[i];
    if (a != "arm64" && a != "x86_64")
      return "archs: item " + std::to_string(i + 1) + " (" + printable(a, 32) + ") is not arm64 or x86_64";
    if (std::find(archs.begin(), archs.end(), a) == archs.end()) archs.emplace_back(a);
  }
  m->archs = std::move(archs);
  m->source["archs"] = "request";
  return std::nullopt;
}

std::vector<std::string_view> splitArchs(std::string_view v) {
  std::vector<std::string_view> out;
  while (true) {
    const size_t comma = v.find(',');
    std::string_view item = v.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    out.push_back(item);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return out;
}

std::optional<std::string> applyJsonField(PackageMetadata* m, const std::string& key, const nlohmann::json& value) {
  const Field* f = findField(key);
  if (!f) return unknownKey(key);
  if (f->kind != Kind::Archs) {
    if (!value.is_string()) return std::string(f->key) + ": must be a string";
    return applyOverride(m, key, value.get_ref<const std::string&>());
  }
  if (!value.is_array()) return "archs: must be an array of strings";
  std::vector<std::string_view> items;
  for (const auto& item : value) {
    if (!item.is_string()) return "archs: item " + std::to_string(items.size() + 1) + " must be a string";
    items.emplace_back(item.get_ref<const std::string&>());
  }
  return setArchs(m, items);
}

std::string sourceOf(const PackageMetadata& m, const std::string& field) {
  const auto it = m.source.find(field);
  return it != m.source.end() && !it->second.empty() ? it->second : field;
}

}  // namespace

// The deepest nesting of arrays and objects in `body`, counted without
// parsing (brackets inside strings skipped); stops counting past `limit`.
int jsonNestingDepth(std::string_view body, int limit) {
  int depth = 0, deepest = 0;
  bool inString = false, escaped = false;
  for (char c : body) {
    if (inString) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

std::optional<std::string> applyOverride(PackageMetadata* m, std::string_view key, std::string_view value) {
  const Field* f = findField(key);
  if (!f) return unknownKey(key);
  if (f->kind == Kind::Archs) {
    if (value.empty()) return "archs: is empty";
    if (auto p = textProblem(value, kMaxMetadataValueBytes)) return "archs: " + *p;
    PackageMetadata copy = *m;
    if (auto p = setArchs(&copy, splitArchs(value))) return p;
    *m = std::move(copy);
    return std::nullopt;
  }
  if (auto p = valueProblem(f->kind, value)) return std::string(f->key) + ": " + *p;
  m->*(f->member) = std::string(value);
  m->source[std::string(f->key)] = "request";
  return std::nullopt;
}

std::optional<std::string> parseMetadataJson(std::string_view body, PackageMetadata* m) {
  if (body.size() > kMaxMetadataBodyBytes)
    return "metadata: body is " + std::to_string(body.size()) + " bytes (at most " +
           std::to_string(kMaxMetadataBodyBytes) + ")";
  if (jsonNestingDepth(body, kMaxMetadataJsonDepth) > kMaxMetadataJsonDepth)
    return "metadata: nested deeper than " + std::to_string(kMaxMetadataJsonDepth) + " levels";
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(body.begin(), body.end());
  } catch (const nlohmann::json::exception& e) {
    return "metadata: not JSON (" + printable(e.what(), 160) + ")";
  }
  if (!doc.is_object()) return "metadata: must be a JSON object";
  PackageMetadata copy = *m;
  for (auto it = doc.begin(); it != doc.end(); ++it)
    if (auto p = applyJsonField(&copy, it.key(), it.value())) return p;
  *m = std::move(copy);
  return std::nullopt;
}

std::optional<std::string> completeMetadata(PackageMetadata* m, std::string_view name, std::string_view version,
                                            bool fromPackageFile) {
  if (m->title.empty()) {
    m->title = std::string(name);
    m->source["title"] = "name";
  }
  if (m->bundleId.empty() && fromPackageFile && !m->packageId.empty()) {
    m->bundleId = m->packageId;
    m->source["bundle_id"] = sourceOf(*m, "package_id");
  }
  if (m->bundleVersion.empty()) {
    if (!m->packageVersion.empty()) {
      m->bundleVersion = m->packageVersion;
      m->source["bundle_version"] = sourceOf(*m, "package_version");
    } else {
      m->bundleVersion = std::string(version);
      m->source["bundle_version"] = "version";
    }
  }
  if (m->bundleId.empty())
    return std::string("bundle_id: none was given and none could be read from the file; pass bundle_id");
  return std::nullopt;
}

}  // namespace orchard::catalog
