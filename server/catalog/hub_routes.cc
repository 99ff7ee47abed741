// Publish once at a hub (issue 15): the hub's change feed, a branch's sync
// state, and the sites' reports.
//   GET /api/v1/catalog/changes?since=SEQ[&limit=N][&wait=SECONDS]  (scope read)
//       {"changes": [...], "last": L, "more": bool} (catalog/change_feed.h),
//       changes with seq > SEQ in order, at most N (1..1000, default 100)
//       and about kPageBytes; ETag "changes-<last>". If-None-Match with the
//       current ETag, or nothing past SEQ: with wait > 0 the answer waits
//       up to min(wait, 60) s for a change (ChangeWaiter: no loop or pool
//       thread is held), then answers the page, or 304 when If-None-Match
//       still matches.
//   GET /api/v1/catalog/sync  (scope read)
//       following or not, the hub, the feed position and lag, last
//       contact and error, and the versions waiting for their bytes.
//   PUT /api/v1/sites/{site}  (scope mdm: a report, like the devices'
//       status reports; a branch following with a read token cannot send
//       it; kept per site name, at most kMaxSiteReport bytes)
//   GET /api/v1/sites  (scope read)
//       every site's last report, with the totals summed over the sites
//       and this box's own counts.
#include <charconv>

#include "catalog/change_feed.h"
#include "catalog/names.h"
#include "server/catalog/catalog_http.h"
#include "server/catalog/catalog_routes.h"
#include "server/catalog/change_waiter.h"
#include "server/catalog/follower.h"
#include "server/http/message.h"

namespace orchard::server {

namespace {

using nlohmann::json;
constexpr int64_t kMaxWaitSecs = 60;
constexpr size_t kMaxSiteReport = 4u << 20;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

bool parseU64(std::string_view s, uint64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string etagOf(uint64_t last) { return "\"changes-" + std::to_string(last) + "\""; }

// Does If-None-Match name this ETag (or *)?
bool matches(const std::optional<std::string_view>& inm, const std::string& etag) {
  if (!inm) return false;
  std::string_view v = *inm;
  if (v.find('*') != std::string_view::npos) return true;
  return v.find(etag) != std::string_view::npos;
}

OffLoopAnswer::Reply changesPage(const catalog::Catalog* cat, uint64_t since, uint64_t limit, bool conditional,
                                 const std::string& inmEtag) {
  const uint64_t last = cat->lastChange();
  const std::string etag = etagOf(last);
  const std::string extra = "ETag: " + etag + "\r\nCache-Control: private, no-cache\r\n";
  if (conditional && etag == inmEtag) return OffLoopAnswer::Reply{304, "", extra, ""};
  bool more = false;
  auto texts = cat->changes(since, static_cast<size_t>(limit), catalog::kPageBytes, &more);
  if (!texts) return errorReply(500, "cannot read the change feed: " + texts.error().message());
  // The entries are JSON already: spliced, not parsed and dumped again.
  std::string body = "{\"changes\":[";
  for (size_t i = 0; i < texts->size(); ++i) {
    if (i) body += ',';
    body += (*texts)[i];
  }
  body += "],\"last\":" + std::to_string(last) + ",\"more\":" + (more ? "true" : "false") + "}\n";
  return OffLoopAnswer::Reply{200, std::move(body), extra};
}

RequestHandler* getChanges(HandlerRequest&& r, const ServerContext* ctx) {
  uint64_t since = 0, limit = 100, wait = 0;
  auto s = queryParam(r.head.target, "since");
  auto l = queryParam(r.head.target, "limit");
  auto w = queryParam(r.head.target, "wait");
  if ((s && !parseU64(*s, &since)) || (l && (!parseU64(*l, &limit) || limit == 0 || limit > catalog::kMaxChangesPerPage)) ||
      (w && !parseU64(*w, &wait)))
    return FixedAnswer::error(r.writer, std::move(r.head), 400,
                              "since must be a sequence number, limit a count from 1 to 1000 and wait seconds");
  const catalog::Catalog* cat = ctx->catalog;
  auto inm = r.head.header("If-None-Match");
  const bool conditional = inm.has_value();
  // The ETag the client holds, when it names one of ours.
  std::string inmEtag;
  if (inm) {
    const size_t at = inm->find("\"changes-");
    if (at != std::string_view::npos) {
      const size_t end = inm->find('"', at + 1);
      if (end != std::string_view::npos) inmEtag = std::string(inm->substr(at, end - at + 1));
    }
  }
  const bool nothingNew = cat->lastChange() <= since || (conditional && matches(inm, etagOf(cat->lastChange())));
  OffLoopAnswer::Runner runner;
  if (wait > 0 && nothingNew && ctx->changeWaiter) {
    const auto deadline = ChangeWaiter::Clock::now() + std::chrono::seconds(std::min<int64_t>(wait, kMaxWaitSecs));
    // Waits until a change past what the client holds: `since`, or the
    // seq its ETag names when that is newer.
    uint64_t held = since;
    if (!inmEtag.empty()) {
      uint64_t e = 0;
      if (parseU64(std::string_view(inmEtag).substr(9, inmEtag.size() - 10), &e)) held = std::max(held, e);
    }
    ChangeWaiter* waiter = ctx->changeWaiter;
    runner = [waiter, held, deadline](std::function<void()> task) {
      auto shared = std::make_shared<std::function<void()>>(std::move(task));
      if (waiter->enqueue(held, deadline, [shared] { (*shared)(); })) return true;
      (*shared)();  // too many waiting: answer now
      return true;
    };
  }
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [cat, since, limit, conditional, inmEtag](std::string) {
        return changesPage(cat, since, limit, conditional, inmEtag);
      },
      0, std::move(runner));
}

RequestHandler* getSync(HandlerRequest&& r, const ServerContext* ctx) {
  json j;
  const Follower* f = ctx->follower;
  j["following"] = f != nullptr;
  j["last_change"] = ctx->catalog->lastChange();  // this box's own feed
  json waiting = json::array();
  uint64_t waitingBytes = 0;
  for (const auto& p : ctx->catalog->pending()) {
    waiting.push_back({{"name", p.record->name},
                       {"version", p.record->version},
                       {"filename", p.record->filename},
                       {"sha256", p.record->sha256},
                       {"size", p.record->size},
                       {"bytes_held", std::min(p.held->load(std::memory_order_relaxed), p.record->size)},
                       {"seq", p.seq}});
    waitingBytes += p.record->size;
  }
  if (f) {
    const Follower::State st = f->state();
    const int64_t now = ctx->clock->nowSeconds();
    j["hub"] = st.hub;
    j["applied"] = st.applied;
    j["hub_last"] = st.hubLast;
    j["lag_changes"] = st.hubLast > st.applied ? st.hubLast - st.applied : 0;
    // Seconds behind: 0 when caught up, else since the change last applied was made at the hub.
    j["lag_seconds"] = st.hubLast > st.applied && st.appliedTime > 0 ? std::max<int64_t>(0, now - st.appliedTime) : 0;
    j["last_contact"] = st.lastContact ? json(st.lastContact) : json();
    j["last_error"] = st.lastError.empty() ? json() : json(st.lastError);
    j["last_error_time"] = st.lastErrorTime ? json(st.lastErrorTime) : json();
    j["changes_applied"] = st.changesApplied;
    j["fetching"] = st.fetching.empty() ? json() : json(st.fetching);
    json errs = json::object();
    for (const auto& [k, v] : st.byteErrors) errs[k] = v;
    j["byte_errors"] = std::move(errs);
  }
  j["waiting"] = std::move(waiting);
  j["waiting_bytes"] = waitingBytes;
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json", dump(j));
}

RequestHandler* putSite(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string site(r.params.get("site"));
  if (site.empty() || site.size() > 128 || catalog::validateName(site))
    return FixedAnswer::error(r.writer, std::move(r.head), 400,
                              "the site name must be 1-128 characters of letters, digits, '.', '-' and '_'");
  catalog::Catalog* cat = ctx->catalog;
  const int64_t now = ctx->clock->nowSeconds();
  const std::string from = peerAddress(r.writer->peer());
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [cat, site, now, from](std::string body) {
        json j = json::parse(body, nullptr, false);
        if (j.is_discarded() || !j.is_object()) return errorReply(400, "the body must be a JSON object");
        json rec{{"site", site}, {"received", now}, {"from", from}};
        for (const char* k : {"applied", "hub_last", "waiting", "devices"})
          if (j.contains(k) && j[k].is_number_unsigned()) rec[k] = j[k];
        json versions = json::array();
        if (j.contains("versions") && j["versions"].is_array()) {
          for (const auto& v : j["versions"]) {
            if (!v.is_object() || !v.contains("name") || !v["name"].is_string() || !v.contains("version") ||
                !v["version"].is_string())
              continue;
            json e{{"name", v["name"]}, {"version", v["version"]}};
            for (const char* k : {"downloads", "started", "completed", "bytes"})
              e[k] = v.contains(k) && v[k].is_number_unsigned() ? v[k].get<uint64_t>() : 0;
            versions.push_back(std::move(e));
            if (versions.size() >= 10000) break;
          }
        }
        rec["versions"] = std::move(versions);
        if (auto p = cat->putSite(site, rec.dump(-1, ' ', false, json::error_handler_t::replace)))
          return errorReply(500, p->detail);
        return OffLoopAnswer::Reply{200, dump(json{{"site", site}, {"received", now}})};
      },
      kMaxSiteReport);
}

RequestHandler* listSites(HandlerRequest&& r, const ServerContext* ctx) {
  catalog::Catalog* cat = ctx->catalog;
  return new OffLoopAnswer(r.writer, std::move(r.head), [cat](std::string) {
    auto sites = cat->sites();
    if (!sites) return errorReply(500, "cannot read the sites: " + sites.error().message());
    // name \0 version -> totals over the sites and this box.
    std::map<std::string, json> totals;
    auto add = [&](const std::string& name, const std::string& version, uint64_t downloads, uint64_t started,
                   uint64_t completed, uint64_t bytes) {
      json& t = totals[name + '\0' + version];
      if (t.is_null()) t = json{{"name", name}, {"version", version}, {"downloads", 0}, {"started", 0},
                                {"completed", 0}, {"bytes", 0}, {"boxes", 0}};
      t["downloads"] = t["downloads"].get<uint64_t>() + downloads;
      t["started"] = t["started"].get<uint64_t>() + started;
      t["completed"] = t["completed"].get<uint64_t>() + completed;
      t["bytes"] = t["bytes"].get<uint64_t>() + bytes;
      t["boxes"] = t["boxes"].get<uint64_t>() + 1;
    };
    json list = json::array();
    for (const auto& [site, text] : *sites) {
      json rec = json::parse(text, nullptr, false);
      if (!rec.is_object()) continue;
      if (rec.contains("versions") && rec["versions"].is_array())
        for (const auto& v : rec["versions"])
          add(v.value("name", ""), v.value("version", ""), v.value("downloads", uint64_t{0}),
              v.value("started", uint64_t{0}), v.value("completed", uint64_t{0}), v.value("bytes", uint64_t{0}));
      list.push_back(std::move(rec));
    }
    // This box's own deliveries.
    json own = json::array();
    for (const std::string& name : cat->names())
      for (const auto& v : cat->versions(name)) {
        uint64_t started = 0, completed = 0, bytes = 0;
        for (const auto& c : cat->deliveries().of(v->name, v->version)) {
          started += c.started;
          completed += c.completed;
          bytes += c.bytes;
        }
        const uint64_t downloads = cat->downloads(v->name, v->version);
        own.push_back({{"name", v->name}, {"version", v->version}, {"downloads", downloads}, {"started", started},
                       {"completed", completed}, {"bytes", bytes}});
        add(v->name, v->version, downloads, started, completed, bytes);
      }
    json tot = json::array();
    for (auto& [k, t] : totals) tot.push_back(std::move(t));
    json j{{"sites", std::move(list)}, {"self", {{"versions", std::move(own)}}}, {"totals", std::move(tot)}};
    return OffLoopAnswer::Reply{200, dump(j)};
  });
}

}  // namespace

void registerHubRoutes(RouteTable& routes, const ServerContext* ctx) {
  using config::Scope;
  routes.add("GET", "/api/v1/catalog/changes", withToken(ctx, Scope::Read, &getChanges));
  routes.add("GET", "/api/v1/catalog/sync", withToken(ctx, Scope::Read, &getSync));
  routes.add("PUT", "/api/v1/sites/{site}", withToken(ctx, Scope::Mdm, &putSite));
  routes.add("GET", "/api/v1/sites", withToken(ctx, Scope::Read, &listSites));
}

}  // namespace orchard::server
