#include "server/apple/apple_routes.h"

#include <algorithm>

#include "catalog/apple/sucatalog.h"
#include "catalog/targeting.h"
#include "common/ascii.h"
#include "server/apple/apple_publish.h"
#include "server/apple/apple_service.h"
#include "server/apple/mirror.h"
#include "server/catalog/catalog_http.h"

namespace orchard::server {

namespace {

namespace apple = catalog::apple;
using nlohmann::ordered_json;

constexpr size_t kJsonBody = 1 << 20;  // a prewarm list of many URLs

std::string dump(const ordered_json& j) { return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace) + "\n"; }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(asciiLower(static_cast<unsigned char>(c)));
  return s;
}

std::string isoDate(int64_t t) {
  if (t <= 0) return "";
  return catalog::formatRfc3339(t).value_or("");
}

ordered_json holdingJson(const Holding& h) {
  ordered_json j;
  j["state"] = Holding::name(h.state);
  j["bytes"] = h.bytes;
  j["percent"] = h.percent;
  return j;
}

ordered_json productJson(AppleService* svc, const apple::CatalogProduct& p, const apple::ProductInfo& info) {
  ordered_json j;
  j["id"] = p.id;
  j["kind"] = p.installer ? "installer" : "update";
  j["title"] = info.title;
  j["version"] = info.version;
  j["build"] = info.build;
  j["post_date"] = isoDate(p.postDate);
  ordered_json pkgs = ordered_json::array();
  uint64_t total = 0, held = 0;
  for (const auto& pkg : p.packages) {
    Holding h = svc->holding(pkg);
    total += pkg.size;
    held += std::min(h.bytes, pkg.size);
    ordered_json e;
    e["url"] = pkg.url;
    e["size"] = pkg.size;
    if (!pkg.integrityUrl.empty()) e["integrity_url"] = pkg.integrityUrl;
    e["held"] = holdingJson(h);
    pkgs.push_back(std::move(e));
  }
  j["size"] = total;
  j["held_percent"] = total ? static_cast<int>(held * 100 / total) : 0;
  j["packages"] = std::move(pkgs);
  if (auto job = svc->mirrors()->job(p.id)) j["mirror"] = apple::jobStateName(job->job.state);
  return j;
}

ordered_json jobJson(AppleService* svc, const JobView& v) {
  ordered_json j;
  j["id"] = v.job.id;
  j["kind"] = v.job.kind;
  j["state"] = apple::jobStateName(v.job.state);
  if (!v.job.reason.empty()) j["reason"] = v.job.reason;
  j["created_at"] = isoDate(v.job.createdAt);
  if (v.job.finishedAt) j["finished_at"] = isoDate(v.job.finishedAt);
  j["total_bytes"] = v.totalBytes;
  j["done_bytes"] = v.doneBytes;
  j["percent"] = v.totalBytes ? static_cast<int>(std::min<uint64_t>(v.doneBytes, v.totalBytes) * 100 / v.totalBytes)
                              : (v.job.state == apple::JobState::Done ? 100 : 0);
  j["rate"] = static_cast<uint64_t>(v.rate);
  if (v.etaSeconds >= 0) j["eta_seconds"] = v.etaSeconds;
  if (!v.current.empty()) j["current"] = v.current;
  ordered_json items = ordered_json::array();
  uint64_t heldBytes = 0;
  for (const auto& i : v.job.items) {
    ordered_json e;
    e["url"] = i.url;
    e["size"] = i.size;
    e["state"] = apple::jobStateName(i.state);
    if (!i.reason.empty()) e["reason"] = i.reason;
    if (i.attempts) e["verify_failures"] = i.attempts;
    if (!i.sha256.empty()) e["sha256"] = i.sha256;
    if (i.url.rfind("http", 0) == 0) {
      Holding h = svc->holdingOfUrl(i.url, i.size);
      heldBytes += h.bytes;
      e["held"] = holdingJson(h);
    }
    items.push_back(std::move(e));
  }
  // What the store holds now (a wiped store shows here whatever the job says).
  j["held_percent"] = v.totalBytes ? static_cast<int>(std::min(heldBytes, v.totalBytes) * 100 / v.totalBytes) : 0;
  j["items"] = std::move(items);
  return j;
}

OffLoopAnswer::Runner runnerOf(AppleService* svc) {
  return [svc](std::function<void()> task) { return svc->runRouteWork(std::move(task)); };
}

OffLoopAnswer::Reply json200(const ordered_json& j, int status = 200) { return OffLoopAnswer::Reply{status, dump(j)}; }

OffLoopAnswer::Reply noCatalog(AppleService* svc, const Error& e) {
  std::string why = svc->lastError();
  if (why.empty()) why = e.message();
  return errorReply(503, "Apple's catalog is not available: " + why);
}

RequestHandler* listProducts(HandlerRequest&& r, const ServerContext* ctx) {
  AppleService* svc = ctx->apple;
  if (!svc) return FixedAnswer::error(r.writer, std::move(r.head), 503, "the box is starting or stopping");
  std::string kind = lower(queryParam(r.head.target, "kind").value_or(""));
  std::string q = lower(queryParam(r.head.target, "q").value_or(""));
  const bool refresh = queryParam(r.head.target, "refresh").value_or("") == "1";
  uint64_t limit = 200;
  if (auto l = queryParam(r.head.target, "limit")) {
    char* end = nullptr;
    limit = std::strtoull(l->c_str(), &end, 10);
    if (l->empty() || *end || limit == 0 || limit > 5000)
      return FixedAnswer::error(r.writer, std::move(r.head), 400, "limit must be a count from 1 to 5000");
  }
  if (!kind.empty() && kind != "installer" && kind != "update")
    return FixedAnswer::error(r.writer, std::move(r.head), 400, "kind must be installer or update");
  return new OffLoopAnswer(r.writer, std::move(r.head), [svc, kind, q, refresh, limit](std::string) {
    auto cat = svc->catalog(refresh);
    if (!cat) return noCatalog(svc, cat.error());
    ordered_json list = ordered_json::array();
    size_t matched = 0;
    // Newest first, as an admin looks for the current installer.
    std::vector<const apple::CatalogProduct*> order;
    for (const auto& p : (*cat)->catalog.products) order.push_back(&p);
    std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->postDate > b->postDate; });
    for (const apple::CatalogProduct* p : order) {
      if (kind == "installer" && !p->installer) continue;
      if (kind == "update" && p->installer) continue;
      // Titles come from each product's .dist (fetched through the box on
      // first need): only for products shown, or searched.
      if (q.empty() && list.size() >= limit) {
        ++matched;
        continue;
      }
      apple::ProductInfo info = svc->info(*p);
      if (!q.empty() && lower(info.title + " " + info.version + " " + info.build + " " + p->id).find(q) ==
                            std::string::npos)
        continue;
      ++matched;
      if (list.size() < limit) list.push_back(productJson(svc, *p, info));
    }
    ordered_json j;
    j["catalog_url"] = (*cat)->url;
    j["loaded_at"] = isoDate((*cat)->loadedAt);
    j["cache_status"] = (*cat)->cacheStatus;
    j["matched"] = matched;
    j["products"] = std::move(list);
    return json200(j);
  }, 0, runnerOf(svc));
}

RequestHandler* getProduct(HandlerRequest&& r, const ServerContext* ctx) {
  AppleService* svc = ctx->apple;
  if (!svc) return FixedAnswer::error(r.writer, std::move(r.head), 503, "the box is starting or stopping");
  const std::string id(r.params.get("id"));
  return new OffLoopAnswer(r.writer, std::move(r.head), [svc, id](std::string) {
    auto cat = svc->catalog(false);
    if (!cat) return noCatalog(svc, cat.error());
    const apple::CatalogProduct* p = (*cat)->catalog.find(id);
    if (!p) return errorReply(404, "the catalog has no product " + id);
    return json200(productJson(svc, *p, svc->info(*p)));
  }, 0, runnerOf(svc));
}

RequestHandler* mirrorProduct(HandlerRequest&& r, const ServerContext* ctx) {
  AppleService* svc = ctx->apple;
  if (!svc) return FixedAnswer::error(r.writer, std::move(r.head), 503, "the box is starting or stopping");
  const std::string id(r.params.get("id"));
  const int64_t now = ctx->clock->nowSeconds();
  return new OffLoopAnswer(r.writer, std::move(r.head), [svc, id, now](std::string) {
    auto cat = svc->catalog(false);
    if (!cat) return noCatalog(svc, cat.error());
    const apple::CatalogProduct* p = (*cat)->catalog.find(id);
    if (!p) return errorReply(404, "the catalog has no product " + id);
    if (p->packages.empty()) return errorReply(409, "product " + id + " has no packages to mirror");
    bool already = false;
    auto job = svc->mirrors()->mirror(*p, now, &already);
    if (!job) return errorReply(503, job.error().message());
    auto view = svc->mirrors()->job(id);
    ordered_json j = view ? jobJson(svc, *view) : ordered_json::object();
    j["already_queued"] = already;
    if (!svc->mirrors()->windowOpen()) j["note"] = "outside apple.mirror_window: the job waits for it to open";
    return json200(j, already ? 200 : 202);
  }, 0, runnerOf(svc));
}

RequestHandler* listMirrors(HandlerRequest&& r, const ServerContext* ctx) {
  AppleService* svc = ctx->apple;
  if (!svc) return FixedAnswer::error(r.writer, std::move(r.head), 503, "the box is starting or stopping");
  return new OffLoopAnswer(r.writer, std::move(r.head), [svc](std::string) {
    ordered_json list = ordered_json::array();
    for (const JobView& v : svc->mirrors()->jobs())
      if (v.job.kind == "mirror") list.push_back(jobJson(svc, v));
    ordered_json j;
    j["window_open"] = svc->mirrors()->windowOpen();
    j["mirrors"] = std::move(list);
    return json200(j);
  }, 0, runnerOf(svc));
}

RequestHandler* getMirror(HandlerRequest&& r, const ServerContext* ctx) {
  AppleService* svc = ctx->apple;
  if (!svc) return FixedAnswer::error(r.writer, std::move(r.head), 503, "the box is starting or stopping");
  const std::string id(r.params.get("id"));
  return new OffLoopAnswer(r.writer, std::move(r.head), [svc, id](std::string) {
    auto v = svc->mirrors()->job(id);
    if (!v || v->job.kind != "mirror") return errorReply(404, "no mirror job for " + id);
    return json200(jobJson(svc, *v));
  }, 0, runnerOf(svc));
}

ordered_json prewarmJson(AppleService* svc, const apple::PrewarmList& l) {
  ordered_json j;
  j["name"] = l.name;
  j["urls"] = l.urls;
  j["products"] = l.products;
  j["window"] = l.window;
  j["interval"] = l.intervalMs / 1000;
  j["updated_at"] = isoDate(l.updatedAt);
  if (auto v = svc->mirrors()->job("prewarm:" + l.name)) {
    ordered_json job = jobJson(svc, *v);
    j["state"] = job["state"];
    if (job.contains("reason")) j["reason"] = job["reason"];
    j["coverage_percent"] = job["held_percent"];
    j["items"] = job["items"];
    if (v->job.finishedAt) j["last_run"] = isoDate(v->job.finishedAt);
  }
  return j;
}

bool validListName(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  return n != "index" && n != "mirrored";
}

RequestHandler* putPrewarm(HandlerRequest&& r, const ServerContext* ctx) {
  AppleService* svc = ctx->apple;
  if (!svc) return FixedAnswer::error(r.writer, std::move(r.head), 503, "the box is starting or stopping");
  const std::string name(r.params.get("name"));
  if (!validListName(name))
    return FixedAnswer::error(r.writer, std::move(r.head), 400,
                              "a prewarm list name is 1-64 letters, digits, '-', '_' or '.' (not index or mirrored)");
  const int64_t now = ctx->clock->nowSeconds();
  const BoxFetch* fetch = &svc->fetcher();
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [svc, name, now, fetch](std::string body) {
        std::string why;
        auto list = apple::prewarmFromJson(body, &why);
        if (!list) return errorReply(400, why);
        list->name = name;
        for (const std::string& u : list->urls)
          if (auto k = fetch->cacheKeyText(u); !k) return errorReply(400, "not a URL the box may fetch: " + u);
        if (auto rr = svc->mirrors()->putPrewarm(*list, now); !rr) return errorReply(500, rr.error().message());
        auto stored = svc->mirrors()->prewarm(name);
        return json200(stored ? prewarmJson(svc, *stored) : ordered_json::object(), 200);
      },
      kJsonBody, runnerOf(svc));
}

RequestHandler* getPrewarm(HandlerRequest&& r, const ServerContext* ctx) {
  AppleService* svc = ctx->apple;
  if (!svc) return FixedAnswer::error(r.writer, std::move(r.head), 503, "the box is starting or stopping");
  const std::string name(r.params.get("name"));
  return new OffLoopAnswer(r.writer, std::move(r.head), [svc, name](std::string) {
    auto l = svc->mirrors()->prewarm(name);
    if (!l) return errorReply(404, "no prewarm list " + name);
    return json200(prewarmJson(svc, *l));
  }, 0, runnerOf(svc));
}

RequestHandler* listPrewarm(HandlerRequest&& r, const ServerContext* ctx) {
  AppleService* svc = ctx->apple;
  if (!svc) return FixedAnswer::error(r.writer, std::move(r.head), 503, "the box is starting or stopping");
  return new OffLoopAnswer(r.writer, std::move(r.head), [svc](std::string) {
    ordered_json list = ordered_json::array();
    for (const auto& l : svc->mirrors()->prewarmLists()) list.push_back(prewarmJson(svc, l));
    ordered_json j;
    j["prewarm"] = std::move(list);
    return json200(j);
  }, 0, runnerOf(svc));
}

RequestHandler* deletePrewarm(HandlerRequest&& r, const ServerContext* ctx) {
  AppleService* svc = ctx->apple;
  if (!svc) return FixedAnswer::error(r.writer, std::move(r.head), 503, "the box is starting or stopping");
  const std::string name(r.params.get("name"));
  return new OffLoopAnswer(r.writer, std::move(r.head), [svc, name](std::string) {
    if (auto rr = svc->mirrors()->removePrewarm(name); !rr) {
      if (rr.error().code == Errc::NotFound) return errorReply(404, "no prewarm list " + name);
      return errorReply(500, rr.error().message());
    }
    ordered_json j;
    j["deleted"] = name;
    return json200(j);
  }, 0, runnerOf(svc));
}

RequestHandler* localCatalog(HandlerRequest&& r, const ServerContext* ctx) {
  AppleService* svc = ctx->apple;
  if (!svc) return FixedAnswer::error(r.writer, std::move(r.head), 503, "the box is starting or stopping");
  std::string file(r.params.get("file"));
  constexpr std::string_view kExt = ".sucatalog";
  if (file.size() <= kExt.size() || file.substr(file.size() - kExt.size()) != kExt)
    return FixedAnswer::error(r.writer, std::move(r.head), 404, "catalogs are /apple/catalogs/{name}.sucatalog");
  const std::string name = file.substr(0, file.size() - kExt.size());
  std::string base = baseUrl(r.writer->wc()->snapshot(), r.head);
  while (!base.empty() && base.back() == '/') base.pop_back();
  return new OffLoopAnswer(r.writer, std::move(r.head), [svc, name, base](std::string) {
    auto cat = svc->catalog(false);
    if (!cat) return noCatalog(svc, cat.error());
    apple::RewriteOptions opt;
    opt.boxBase = base;
    if (name == "mirrored") {
      for (const JobView& v : svc->mirrors()->jobs())
        if (v.job.kind == "mirror" && v.job.state == apple::JobState::Done) opt.subset.push_back(v.job.id);
      if (opt.subset.empty()) return errorReply(404, "no product is mirrored on this box yet");
    } else if (name != "index") {
      auto l = svc->mirrors()->prewarm(name);
      if (!l) return errorReply(404, "no catalog " + name + " (index, mirrored, or a prewarm list's name)");
      opt.subset = l->products;
      if (opt.subset.empty()) return errorReply(404, "prewarm list " + name + " names no products");
    }
    auto snap = svc->context()->control->snapshot();
    apple::ParseLimits limits;
    limits.maxExpanded = snap->config.appleCatalogMaxSize;
    // The catalog's bytes again, from the store (a hit).
    auto bytes = svc->fetcher().getSmall((*cat)->url, snap->config.appleCatalogMaxSize);
    if (!bytes) return errorReply(502, "cannot read Apple's catalog through the box: " + bytes.error().message());
    auto out = apple::rewriteSuCatalog(*bytes, opt, limits);
    if (!out) return errorReply(502, "Apple's catalog does not parse: " + out.error().message());
    return OffLoopAnswer::Reply(200, std::move(out).value(), "", "application/xml");
  }, 0, runnerOf(svc));
}

}  // namespace

void registerAppleRoutes(RouteTable& routes, const ServerContext* ctx) {
  using config::Scope;
  routes.add("GET", "/api/v1/apple/products", withToken(ctx, Scope::Read, &listProducts));
  routes.add("GET", "/api/v1/apple/products/{id}", withToken(ctx, Scope::Read, &getProduct));
  routes.add("POST", "/api/v1/apple/products/{id}/mirror", withToken(ctx, Scope::Publish, &mirrorProduct));
  routes.add("GET", "/api/v1/apple/mirrors", withToken(ctx, Scope::Read, &listMirrors));
  routes.add("GET", "/api/v1/apple/mirrors/{id}", withToken(ctx, Scope::Read, &getMirror));
  routes.add("GET", "/api/v1/prewarm", withToken(ctx, Scope::Read, &listPrewarm));
  routes.add("PUT", "/api/v1/prewarm/{name}", withToken(ctx, Scope::Publish, &putPrewarm));
  routes.add("GET", "/api/v1/prewarm/{name}", withToken(ctx, Scope::Read, &getPrewarm));
  routes.add("DELETE", "/api/v1/prewarm/{name}", withToken(ctx, Scope::Publish, &deletePrewarm));
  routes.add("GET", "/apple/catalogs/{file}", openRoute(ctx, &localCatalog));
  registerApplePublishRoute(routes, ctx);
}

}  // namespace orchard::server
