// OS targets (see os_target.h): the body's validation, the JSON form, and
// the declaration for one device.
#include "catalog/os_target.h"

#include <cctype>

#include "catalog/declarations.h"
#include "catalog/device.h"
#include "catalog/rollout.h"
#include "catalog/targeting.h"

namespace orchard::catalog {

using nlohmann::json;

std::variant<OsTarget, std::string> osTargetFromJson(const json& j) {
  if (!j.is_object()) return std::string("os target: the body must be a JSON object {\"version\": ...}");
  OsTarget t;
  for (const auto& [k, v] : j.items()) {
    if (k == "version") {
      if (!v.is_string() || v.get<std::string>().empty()) return std::string("version: a macOS version such as 15.2");
      if (auto p = osVersionProblem(v.get<std::string>())) return "version: " + *p;
      t.version = v.get<std::string>();
    } else if (k == "build") {
      if (v.is_null()) continue;
      const bool text = v.is_string() && !v.get<std::string>().empty() && v.get<std::string>().size() <= 32;
      bool alnum = text;
      if (text)
        for (unsigned char c : v.get<std::string>()) alnum = alnum && std::isalnum(c);
      if (!alnum) return std::string("build: a macOS build such as 24C101 (1-32 letters and digits)");
      t.build = v.get<std::string>();
    } else if (k == "deadline") {
      if (v.is_null()) continue;
      std::optional<int64_t> at = v.is_string() ? parseRfc3339(v.get<std::string>()) : std::nullopt;
      if (!at) return std::string("deadline: an RFC 3339 date-time such as 2026-01-10T18:00:00Z");
      t.deadline = at;
    } else {
      return "os target: unknown field " + k;
    }
  }
  if (t.version.empty()) return std::string("version: the target macOS version is required");
  return t;
}

json osTargetJson(const OsTarget& t, std::string_view ring) {
  json j{{"version", t.version},
         {"build", t.build ? json(*t.build) : json()},
         {"deadline", t.deadline ? json(formatRfc3339(*t.deadline).value_or("")) : json()}};
  if (!ring.empty()) j["ring"] = std::string(ring);
  return j;
}

std::optional<json> osTargetDeclaration(const Device& device, const std::vector<Ring>& rings,
                                        const std::map<std::string, OsTarget, std::less<>>& targets) {
  const std::optional<size_t> ring = ringOf(device, rings, kOsScope);
  if (!ring) return std::nullopt;
  auto it = targets.find(rings[*ring].name);
  if (it == targets.end()) return std::nullopt;
  const OsTarget& t = it->second;
  std::optional<std::string> local;
  if (t.deadline) local = localDateTime(*t.deadline, 0);
  return softwareUpdateDeclaration(t.version, t.build, local);
}

}  // namespace orchard::catalog
