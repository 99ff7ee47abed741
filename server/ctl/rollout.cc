// orchardctl rollout NAME [VERSION] [--release|--pause|--resume|--promote|--halt|--rollback
// [--reason TEXT]]: a version's rollout as the box reports it
// (GET /api/v1/packages/{name}/{version}/rollout), or an action posted to
// .../rollout/{action} followed by the state it answers. Without VERSION the
// newest published one (the first of GET /api/v1/packages/{name}).
#include <nlohmann/json.hpp>

#include <cstdio>

#include "server/ctl/commands.h"
#include "server/ctl/table.h"

namespace orchard::ctl {
namespace {

using nlohmann::json;

std::string flag(const json& j, const char* key) {
  return j.contains(key) && j[key].is_boolean() && j[key].get<bool>() ? "yes" : "no";
}

void printRollout(const json& j) {
  auto str = [&](const char* key) { return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : ""; };
  std::printf("%s %s\n", str("name").c_str(), str("version").c_str());
  std::printf("ring:            %s\n", str("ring").empty() ? "(no rings)" : str("ring").c_str());
  if (j.contains("released") && j["released"].is_boolean())
    std::printf("released:        %s (release %s)\n", flag(j, "released").c_str(),
                str("release").empty() ? "on_publish" : str("release").c_str());
  std::printf("paused:          %s\n", flag(j, "paused").c_str());
  std::printf("halted:          %s\n", flag(j, "halted").c_str());
  std::printf("rolled back:     %s\n", flag(j, "rolled_back").c_str());
  const bool next = j.contains("next_promotion_at") && j["next_promotion_at"].is_number();
  std::printf("next promotion:  %s\n", next ? rfc3339(j["next_promotion_at"].get<long long>()).c_str() : "none");
  if (!str("reason").empty()) std::printf("reason:          %s\n", str("reason").c_str());
  if (j.contains("devices_eligible") && j["devices_eligible"].is_number())
    std::printf("eligible:        %lld devices\n", j["devices_eligible"].get<long long>());
  // Health per ring (from the forwarded status reports), beside the ring's devices.
  auto count = [](const json& o, const char* k) {
    return o.is_object() && o.contains(k) && o[k].is_number() ? std::to_string(o[k].get<long long>()) : std::string();
  };
  const json health = j.contains("health") && j["health"].is_object() ? j["health"] : json::object();
  const json healthRings = health.contains("rings") && health["rings"].is_array() ? health["rings"] : json::array();
  Table t({{"RING"}, {"DEVICES", true}, {"INSTALLED", true}, {"FAILED", true}, {"STALE", true}, {"CURRENT"}});
  if (j.contains("rings") && j["rings"].is_array())
    for (size_t k = 0; k < j["rings"].size(); ++k) {
      const json& r = j["rings"][k];
      const json h = k < healthRings.size() ? healthRings[k] : json::object();
      const bool current = r.contains("current") && r["current"].is_boolean() && r["current"].get<bool>();
      t.add({r.value("name", std::string()), count(r, "devices"), count(h, "installed"), count(h, "failed"),
             count(h, "stale"), current ? "*" : ""});
    }
  if (!t.empty()) t.print(stdout);
  if (health.contains("total") && health["total"].is_object())
    std::printf("reports:         %s installed, %s failed, %s downloading, %s stale of %s eligible\n",
                count(health["total"], "installed").c_str(), count(health["total"], "failed").c_str(),
                count(health["total"], "downloading").c_str(), count(health["total"], "stale").c_str(),
                count(health["total"], "eligible").c_str());
}

}  // namespace

int runRollout(Context& ctx, const RolloutArgs& args) {
  std::string version = args.version;
  if (version.empty()) {
    Reply r = ctx.http.get("/api/v1/packages/" + ctx.http.escape(args.name));
    if (int rc = detail::checkReply(ctx, r)) return rc;
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("versions") || !j["versions"].is_array() || j["versions"].empty() ||
        !j["versions"][0].contains("version") || !j["versions"][0]["version"].is_string()) {
      std::fprintf(stderr, "orchardctl: %s has no published version\n", args.name.c_str());
      return kExitAnswer;
    }
    version = j["versions"][0]["version"].get<std::string>();  // newest first
  }
  const std::string path =
      "/api/v1/packages/" + ctx.http.escape(args.name) + "/" + ctx.http.escape(version) + "/rollout";
  Reply r = args.action.empty()
                ? ctx.http.get(path)
                : ctx.http.postJson(path + "/" + args.action,
                                    args.reason.empty() ? std::string() : json{{"reason", args.reason}}.dump());
  json j;
  if (auto rc = detail::takeJson(ctx, r, &j)) return *rc;
  printRollout(j);
  return kExitOk;
}

}  // namespace orchard::ctl
