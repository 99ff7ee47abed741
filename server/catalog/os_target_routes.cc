// OS targets per ring (catalog/os_target.h): PUT, GET and DELETE
// /api/v1/os-targets/{ring} and GET /api/v1/os-targets. Thin: validation is
// osTargetFromJson and, when Apple's OS-version feed has a good copy
// (server/apple/os_feed.h), targetFeedProblem; the record and its audit
// entry are FleetStore's. Writes run on the thread pool (OffLoopAnswer);
// reads are in memory, on the loop.
#include "catalog/apple/os_versions.h"
#include "catalog/fleet_store.h"
#include "catalog/os_target.h"
#include "catalog/targeting.h"
#include "server/apple/os_feed.h"
#include "server/catalog/catalog_http.h"
#include "server/catalog/catalog_routes.h"

namespace orchard::server {

namespace {

using nlohmann::json;
constexpr size_t kJsonBody = 16 * 1024;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

OffLoopAnswer::Reply okReply(const json& j) {
  OffLoopAnswer::Reply r;
  r.body = dump(j);
  return r;
}


// Why the feed's copy refuses `t` (a macOS version, and build, that Apple
// does not list in its public or MDM set), or nullopt.
std::optional<std::string> targetFeedProblem(const catalog::OsTarget& t, const OsFeed::State& feed) {
  using catalog::apple::kMacPlatform;
  const std::string copy = "Apple's OS-version feed (copy fetched at " +
                           catalog::formatRfc3339(feed.fetchedAt).value_or(std::to_string(feed.fetchedAt)) + ")";
  if (!feed.feed->knows(kMacPlatform, t.version)) {
    std::string listed;
    const std::vector<std::string> versions = feed.feed->versions(kMacPlatform);
    for (size_t i = 0; i < versions.size() && i < 12; ++i) listed += (i ? ", " : "") + versions[i];
    if (versions.size() > 12) listed += ", ...";
    return "version: macOS " + t.version + " is not listed by " + copy + "; it lists " + listed;
  }
  if (t.build && !feed.feed->knowsBuild(kMacPlatform, t.version, *t.build))
    return "build: " + *t.build + " is not a build of macOS " + t.version + " listed by " + copy;
  return std::nullopt;
}

RequestHandler* putOsTarget(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string ring(r.params.get("ring"));
  auto actor = actorOf(r);
  const int64_t now = ctx->clock->nowSeconds();
  auto* fleet = ctx->fleet;
  const OsFeed* osFeed = ctx->osFeed;
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [fleet, osFeed, ring, actor, now](std::string body) {
        json j = json::parse(body, nullptr, false);
        if (j.is_discarded()) return errorReply(400, "the body is not JSON");
        auto t = catalog::osTargetFromJson(j);
        if (auto* p = std::get_if<std::string>(&t)) return errorReply(400, *p);
        const catalog::OsTarget& target = std::get<catalog::OsTarget>(t);
        // Checked against the feed's last good copy; without one the
        // target is taken as given, and the answer says it was not checked.
        std::optional<std::string> warning;
        const OsFeed::State feed = osFeed ? osFeed->state() : OsFeed::State{};
        if (feed.feed) {
          if (auto p = targetFeedProblem(target, feed)) return errorReply(400, *p);
        } else {
          warning = "not checked against Apple's OS-version feed: the box has no good copy of it yet";
        }
        if (auto p = fleet->putOsTarget(ring, target, actor, now)) return errorReply(statusFor(*p), p->detail);
        json answer = catalog::osTargetJson(target, ring);
        if (warning) answer["warning"] = *warning;
        return okReply(answer);
      },
      kJsonBody);
}

RequestHandler* getOsTarget(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string ring(r.params.get("ring"));
  auto t = ctx->fleet->osTarget(ring);
  if (!t) return FixedAnswer::error(r.writer, std::move(r.head), 404, "no OS target for ring " + ring);
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json", dump(catalog::osTargetJson(*t, ring)));
}

RequestHandler* deleteOsTarget(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string ring(r.params.get("ring"));
  auto actor = actorOf(r);
  const int64_t now = ctx->clock->nowSeconds();
  auto* fleet = ctx->fleet;
  return new OffLoopAnswer(r.writer, std::move(r.head), [fleet, ring, actor, now](std::string) {
    if (auto p = fleet->removeOsTarget(ring, actor, now)) return errorReply(statusFor(*p), p->detail);
    return okReply(json{{"deleted", ring}});
  });
}

// Every target, in ring-plan order (a target whose ring was since removed
// from the plan comes last, marked "in_plan": false: it applies to no one).
RequestHandler* listOsTargets(HandlerRequest&& r, const ServerContext* ctx) {
  auto targets = ctx->fleet->osTargets();
  json list = json::array();
  for (const auto& ring : ctx->fleet->rings().rings) {
    auto it = targets.find(ring.name);
    if (it == targets.end()) continue;
    json j = catalog::osTargetJson(it->second, ring.name);
    j["in_plan"] = true;
    list.push_back(std::move(j));
    targets.erase(it);
  }
  for (const auto& [ring, t] : targets) {
    json j = catalog::osTargetJson(t, ring);
    j["in_plan"] = false;
    list.push_back(std::move(j));
  }
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json", dump(json{{"os_targets", list}}));
}

}  // namespace

void registerOsTargetRoutes(RouteTable& routes, const ServerContext* ctx) {
  using config::Scope;
  routes.add("PUT", "/api/v1/os-targets/{ring}", catalogWrite(ctx, Scope::Admin, &putOsTarget));
  routes.add("GET", "/api/v1/os-targets/{ring}", withToken(ctx, Scope::Read, &getOsTarget));
  routes.add("DELETE", "/api/v1/os-targets/{ring}", catalogWrite(ctx, Scope::Admin, &deleteOsTarget));
  routes.add("GET", "/api/v1/os-targets", withToken(ctx, Scope::Read, &listOsTargets));
}

}  // namespace orchard::server
