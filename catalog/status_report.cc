// parseStatusReport (see status_report.h). Hard parts: an item may be a
// flat dotted key or a nested path, the StatusItems wrapper is optional,
// and nothing in a report may make it fail except not being a JSON object.
#include "catalog/status_report.h"

#include <algorithm>

#include "catalog/declarations.h"

namespace orchard::catalog {

using nlohmann::json;

namespace {

std::string compact(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The item at a dotted path: the flat key first, then nested objects.
const json* item(const json& items, std::string_view path) {
  if (auto it = items.find(std::string(path)); it != items.end()) return &*it;
  const json* at = &items;
  while (!path.empty()) {
    const size_t dot = path.find('.');
    const std::string part(path.substr(0, dot));
    if (!at->is_object()) return nullptr;
    auto it = at->find(part);
    if (it == at->end()) return nullptr;
    at = &*it;
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
  }
  return at;
}

std::string stringField(const json& obj, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (auto it = obj.find(k); it != obj.end() && it->is_string()) return it->get<std::string>();
  return {};
}

// A string item, or the named field of an object item, or its compact JSON.
std::string textOf(const json* j, const char* field) {
  if (!j || j->is_null()) return {};
  if (j->is_string()) return j->get<std::string>();
  if (j->is_object()) {
    if (auto it = j->find(field); it != j->end() && it->is_string()) return it->get<std::string>();
  }
  return compact(*j);
}

}  // namespace

const char* packageStateName(PackageState s) {
  switch (s) {
    case PackageState::Downloading: return "downloading";
    case PackageState::Installing: return "installing";
    case PackageState::Installed: return "installed";
    case PackageState::Failed: return "failed";
    case PackageState::Other: return "other";
  }
  return "other";
}

PackageState packageStateFrom(std::string_view s) {
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
  for (auto st : {PackageState::Downloading, PackageState::Installing, PackageState::Installed, PackageState::Failed})
    if (lower == packageStateName(st)) return st;
  return PackageState::Other;
}

std::variant<StatusReport, std::string> parseStatusReport(std::string_view body) {
  if (body.size() > kMaxStatusBody) return std::string("status: a report is at most 256 KiB");
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::string("status: the body must be a JSON object");
  StatusReport r;
  const json* items = &j;
  if (auto it = j.find("StatusItems"); it != j.end() && it->is_object()) items = &*it;
  if (const json* list = item(*items, "package.list"); list && list->is_array()) {
    for (const json& e : *list) {
      if (r.packages.size() >= kMaxStatusPackages) {
        ++r.skipped;
        continue;
      }
      if (!e.is_object()) {
        ++r.skipped;
        continue;
      }
      PackageStatus p;
      p.identifier = stringField(e, {"identifier", "declaration-identifier"});
      p.bundleId = stringField(e, {"bundle-id", "bundle_id", "bundleId"});
      p.name = stringField(e, {"name"});
      p.version = stringField(e, {"version", "short-version", "bundle-version"});
      p.state = packageStateFrom(stringField(e, {"state"}));
      if (auto it = e.find("reasons"); it != e.end() && !it->is_null()) p.reasons = compact(*it);
      if (p.identifier.empty() && p.bundleId.empty() && p.name.empty()) {
        ++r.skipped;
        continue;
      }
      r.packages.push_back(std::move(p));
    }
  }
  r.installState = textOf(item(*items, "softwareupdate.install-state"), "state");
  r.pendingVersion = textOf(item(*items, "softwareupdate.pending-version"), "os-version");
  r.failureReason = textOf(item(*items, "softwareupdate.failure-reason"), "reason");
  r.raw = std::move(j);
  return r;
}

std::optional<std::string> packageNameFromIdentifier(std::string_view identifier) {
  if (!identifier.starts_with(kPackageIdentifierPrefix)) return std::nullopt;
  std::string_view rest = identifier.substr(kPackageIdentifierPrefix.size());
  if (rest.empty()) return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < rest.size(); ++i) {
    const char c = rest[i];
    if (c == '_') {
      if (i + 2 >= rest.size()) return std::nullopt;
      const int hi = hex(rest[i + 1]), lo = hex(rest[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-') {
      out.push_back(c);
    } else {
      return std::nullopt;
    }
  }
  // Only the canonical spelling maps back (the mapping is injective).
  if (packageDeclarationIdentifier(out) != identifier) return std::nullopt;
  return out;
}

}  // namespace orchard::catalog
