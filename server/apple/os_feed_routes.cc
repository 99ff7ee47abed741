// GET /api/v1/apple/os-versions (see os_feed.h): the feed's state copied on
// the loop (a lock and a few strings), its JSON built on the thread pool (a
// few hundred releases with their device lists).
#include <nlohmann/json.hpp>

#include "catalog/targeting.h"
#include "server/apple/os_feed.h"
#include "server/catalog/catalog_http.h"

namespace orchard::server {

namespace {

using nlohmann::ordered_json;

ordered_json timeJson(int64_t t) {
  auto s = catalog::formatRfc3339(t);
  return s ? ordered_json(*s) : ordered_json(t);
}

ordered_json attemptJson(const std::optional<OsFeed::Attempt>& a) {
  if (!a) return nullptr;
  return {{"time", timeJson(a->time)},
          {"ok", a->outcome == OsFeed::Outcome::Ok},
          {"result", OsFeed::outcomeLabel(a->outcome)},
          {"error", a->error.empty() ? ordered_json(nullptr) : ordered_json(a->error)}};
}

std::string dump(const ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

RequestHandler* getOsVersions(HandlerRequest&& r, const ServerContext* ctx) {
  if (!ctx->osFeed) return FixedAnswer::error(r.writer, std::move(r.head), 503, "the OS-version feed is not running");
  OsFeed::State state = ctx->osFeed->state();
  const int64_t now = ctx->clock->nowSeconds();
  if (!state.feed) {
    ordered_json j{{"error", "Service Unavailable"},
                   {"detail", state.lastAttempt ? "no good copy of Apple's OS-version feed yet: the last fetch failed"
                                                : "no good copy of Apple's OS-version feed yet: not fetched so far"},
                   {"last_attempt", attemptJson(state.lastAttempt)}};
    return new FixedAnswer(r.writer, std::move(r.head), 503, "application/json", dump(j));
  }
  const std::string platform = queryParam(r.head.target, "platform").value_or("");
  const std::string set = queryParam(r.head.target, "set").value_or("");
  return new OffLoopAnswer(r.writer, std::move(r.head), [state = std::move(state), now, platform, set](std::string) {
    return OffLoopAnswer::Reply{200, osVersionsJson(state, now, platform, set)};
  });
}

}  // namespace

std::string osVersionsJson(const OsFeed::State& state, int64_t nowSeconds, std::string_view platform,
                           std::string_view set) {
  ordered_json releases = ordered_json::array();
  if (state.feed)
    for (const catalog::apple::OsRelease& rel : state.feed->releases) {
      if (!platform.empty() && rel.platform != platform) continue;
      if (!set.empty() && rel.set != set) continue;
      auto orNull = [](const std::string& s) { return s.empty() ? ordered_json(nullptr) : ordered_json(s); };
      releases.push_back({{"set", rel.set},
                          {"platform", rel.platform},
                          {"version", rel.version},
                          {"version_extra", orNull(rel.versionExtra)},
                          {"build", orNull(rel.build)},
                          {"posting_date", orNull(rel.postingDate)},
                          {"expiration_date", orNull(rel.expirationDate)},
                          {"supported_devices", rel.supportedDevices}});
    }
  ordered_json j{{"source", state.source},
                 {"fetched_at", timeJson(state.fetchedAt)},
                 {"last_attempt", attemptJson(state.lastAttempt)},
                 {"stale", state.stale(nowSeconds)},
                 {"skipped", state.feed ? state.feed->skipped : 0},
                 {"releases", std::move(releases)}};
  return dump(j);
}

void registerOsFeedRoutes(RouteTable& routes, const ServerContext* ctx) {
  routes.add("GET", "/api/v1/apple/os-versions", withToken(ctx, config::Scope::Read, &getOsVersions));
}

}  // namespace orchard::server
