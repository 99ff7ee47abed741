// POST /api/v1/purge and POST /api/v1/reload: see ops_routes.h.
//
// Hard parts: a purge must not tear the responses of a fill in flight
// (cache::Fill::purge keeps its readers going and only cuts it off from
// the table and the store), and the purge of a URL must key it exactly as
// the proxy does, so it goes through the form router (route()) rather than
// a copy of its rules. A reload waits for every loop to take the new
// snapshot, so it runs on the server's control thread; its answer is
// posted back to the handler's own loop, and dropped when the client left.
#include "server/admin/ops_routes.h"

#include <memory>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

#include "cache/key.h"
#include "cache/response_decision.h"
#include "common/log.h"
#include "server/catalog/catalog_http.h"
#include "server/proxy/router.h"

namespace orchard::server {

namespace {

// The stored half of a purge of one key (the fills are the caller's).
void purgeStored(cache::Store& store, const cache::CacheKey& key, PurgeCount* n) {
  if (auto m = store.lookup(key)) {
    if (m->kind == cache::ObjectMeta::Kind::VaryStub) {
      for (const auto& v : cache::stubVariants(*m))
        if (store.remove(cache::CacheKey::fromText(v)).ok()) ++n->objects;
    }
    if (store.remove(key).ok() && m->kind == cache::ObjectMeta::Kind::Complete) ++n->objects;
  }
  if (auto p = store.lookupPartial(key)) {
    store.dropObject(key, p->gen);
    ++n->partials;
  }
}

}  // namespace

PurgeCount purgeKey(cache::Store& store, cache::FillTable& fills, const cache::CacheKey& key) {
  PurgeCount n;
  // Fills first: once out of the table no new request joins one, and a
  // commit it has under way is undone by the fill itself.
  n.fills = fills.purgeWhere([&](std::string_view k) { return k == key.text; });
  purgeStored(store, key, &n);
  return n;
}

Result<PurgeCount> purgeWhere(cache::Store& store, cache::FillTable& fills,
                              const std::function<bool(std::string_view)>& match) {
  PurgeCount total;
  total.fills = fills.purgeWhere(match);
  auto keys = store.keysWhere(match);
  if (!keys) return keys.error();
  // A variant's record is listed too (its key starts with its URI's): it
  // goes with its stub or on its own, whichever comes first.
  for (const auto& text : *keys) purgeStored(store, cache::CacheKey::fromText(text), &total);
  return total;
}

namespace {

using nlohmann::json;

constexpr size_t kMaxPurgeBody = 64 * 1024;

const char* const kPurgeForms =
    "the body is one of {\"url\": \"http://host/path?query\"}, {\"host\": \"swcdn.apple.com\"} or {\"all\": true}";

OffLoopAnswer::Reply jsonReply(int status, const json& j) {
  OffLoopAnswer::Reply r;
  r.status = status;
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  return r;
}

// The key a request for `url` is stored under, as the proxy keys it: the
// running snapshot's router with every host allowed (an object of a host
// taken off upstream.allow since may still be stored) and no listener
// counted as the box itself.
std::variant<std::string, OffLoopAnswer::Reply> keyForUrl(const Snapshot& snap, const std::string& url) {
  RouterConfig rc = snap.router;
  rc.allowHost = [](std::string_view) { return true; };
  rc.isSelf = nullptr;
  RouteInput in;
  in.method = "GET";
  in.target = url;
  Route r = route(in, rc);
  if (r.kind == Route::Kind::Proxy) return r.keyText;
  if (r.kind == Route::Kind::Local)
    return errorReply(400, "\"url\" names no upstream host: give it as http://host/path (or /path?source=host)");
  return errorReply(400, "\"url\" is not a URL the cache keys: " + r.reason);
}

OffLoopAnswer::Reply purgeBody(const ServerContext* ctx, const std::string& token, const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object()) return errorReply(400, std::string("the body is not a JSON object: ") + kPurgeForms);
  for (const auto& [k, v] : j.items())
    if (k != "url" && k != "host" && k != "all") return errorReply(400, "unknown field \"" + k + "\": " + kPurgeForms);
  if (j.size() != 1) return errorReply(400, std::string("give exactly one of url, host or all: ") + kPurgeForms);
  cache::Store& store = *ctx->store;
  cache::FillTable& fills = *ctx->fills;
  const int64_t started = ctx->clock->monotonicMs();
  json out;
  PurgeCount n;
  std::string what;
  if (j.contains("url")) {
    if (!j["url"].is_string() || j["url"].get<std::string>().empty())
      return errorReply(400, "\"url\" is a non-empty string: http://host/path?query");
    auto snap = ctx->control ? ctx->control->snapshot() : nullptr;
    if (!snap) return errorReply(503, "the server is not running");
    auto key = keyForUrl(*snap, j["url"].get<std::string>());
    if (auto* refused = std::get_if<OffLoopAnswer::Reply>(&key)) return std::move(*refused);
    const cache::CacheKey k = cache::CacheKey::fromText(std::get<std::string>(std::move(key)));
    n = purgeKey(store, fills, k);
    if (n.objects == 0 && n.partials == 0 && n.fills == 0)
      return errorReply(404, "nothing is stored for " + k.text + " (no object, no partial, no fill in flight)");
    out["key"] = k.text;
    what = k.text;
  } else if (j.contains("host")) {
    if (!j["host"].is_string()) return errorReply(400, "\"host\" is a string: a host name or address, no port");
    std::string host;
    uint16_t port = 0;
    if (!splitHostPort(j["host"].get<std::string>(), &host, &port, 0))
      return errorReply(400, "\"host\" is not a host name or address: " + j["host"].get<std::string>());
    if (port != 0) return errorReply(400, "give \"host\" without a port: every port and scheme of it is purged");
    auto r = purgeWhere(store, fills, [&host](std::string_view k) { return cache::keyHost(k) == host; });
    if (!r) return errorReply(500, "reading the index: " + r.error().message());
    n = *r;
    what = "host " + host;
  } else {
    if (!j["all"].is_boolean() || !j["all"].get<bool>())
      return errorReply(400, "\"all\" must be true (to purge everything)");
    auto r = purgeWhere(store, fills, [](std::string_view) { return true; });
    if (!r) return errorReply(500, "reading the index: " + r.error().message());
    n = *r;
    what = "every object";
  }
  out["purged"] = n.objects;
  out["partials"] = n.partials;
  out["fills"] = n.fills;
  OLOG_INFO("purge of %s (token %s): %llu objects, %llu partials, %llu fills in flight, in %lld ms", what.c_str(),
            token.c_str(), static_cast<unsigned long long>(n.objects), static_cast<unsigned long long>(n.partials),
            static_cast<unsigned long long>(n.fills),
            static_cast<long long>(ctx->clock->monotonicMs() - started));
  return jsonReply(200, out);
}

RequestHandler* purge(HandlerRequest&& r, const ServerContext* ctx) {
  if (!r.head.hasBody()) return FixedAnswer::error(r.writer, std::move(r.head), 400, kPurgeForms);
  std::string token = r.token;
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [ctx, token](std::string body) { return purgeBody(ctx, token, body); }, kMaxPurgeBody);
}

// Answers once the control thread has reloaded (or refused) the file.
class ReloadAnswer final : public LocalHandler {
 public:
  ReloadAnswer(ResponseWriter* w, RequestHead req, ServerControl* control)
      : LocalHandler(w, std::move(req)), control_(control) {}
  ~ReloadAnswer() override { *alive_ = false; }

  void start() override {
    Worker* worker = w_->wc()->worker;
    std::weak_ptr<bool> alive = alive_;
    // `alive` is read on this loop only: the outcome is posted here first.
    control_->reloadAsync([worker, alive, this](ReloadResult result) {
      worker->post([alive, this, result = std::move(result)] {
        if (auto a = alive.lock(); a && *a && w_) reply(result);
      });
    });
  }

 private:
  void reply(const ReloadResult& r) {
    json j;
    if (r.ok) {
      j["applied"] = true;
      j["generation"] = r.generation;
      j["changed"] = r.applied;
      j["restart_required"] = r.needRestart;
      answer(200, "application/json", j.dump() + "\n");
      return;
    }
    const bool noFile = w_->wc()->server->configPath.empty();
    const int status = noFile ? 409 : 422;
    j["error"] = reasonPhrase(status);
    j["detail"] = r.problems.empty() ? std::string("the reload was refused")
                                     : r.problems.size() == 1 ? r.problems.front()
                                                              : r.problems.front() + " (and " +
                                                                    std::to_string(r.problems.size() - 1) + " more)";
    j["applied"] = false;
    j["generation"] = r.generation;
    json problems = json::array();
    for (const auto& p : r.details) {
      json e;
      e["key"] = p.key.empty() ? json(nullptr) : json(p.key);
      e["line"] = p.line > 0 ? json(p.line) : json(nullptr);
      e["message"] = p.message;
      problems.push_back(std::move(e));
    }
    j["problems"] = std::move(problems);
    answer(status, "application/json", j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
  }

  ServerControl* control_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

RequestHandler* reload(HandlerRequest&& r, const ServerContext* ctx) {
  if (!ctx->control) return FixedAnswer::error(r.writer, std::move(r.head), 503, "this server cannot reload");
  return new ReloadAnswer(r.writer, std::move(r.head), ctx->control);
}

}  // namespace

void registerOpsRoutes(RouteTable& routes, const ServerContext* ctx) {
  routes.add("POST", "/api/v1/purge", withToken(ctx, config::Scope::Admin, &purge));
  routes.add("POST", "/api/v1/reload", withToken(ctx, config::Scope::Admin, &reload));
}

}  // namespace orchard::server
