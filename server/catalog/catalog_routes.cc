// The catalog's routes (see catalog_routes.h) and its small handlers: the
// lists, the delete, the audit log and the manifest. Reads of the catalog
// are in memory and answered on the loop; a delete (a durable batch) and
// the audit log (a RocksDB scan) run on the thread pool.
#include "server/catalog/catalog_routes.h"

#include <charconv>

#include "catalog/manifest.h"
#include "catalog/request_metadata.h"
#include "catalog/version.h"
#include "server/catalog/catalog_http.h"
#include "server/catalog/import.h"
#include "server/http/message.h"

namespace orchard::server {

namespace {

std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

bool parseU64(std::string_view s, uint64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

RequestHandler* listPackages(HandlerRequest&& r, const ServerContext* ctx) {
  nlohmann::ordered_json j;
  j["packages"] = nlohmann::ordered_json::array();
  for (const std::string& name : ctx->catalog->names()) {
    auto vs = ctx->catalog->versions(name);
    if (vs.empty()) continue;
    uint64_t bytes = 0;
    for (const auto& v : vs) bytes += v->size;
    j["packages"].push_back({{"name", name}, {"latest", vs.front()->version}, {"versions", vs.size()}, {"size", bytes}});
  }
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json", dump(j));
}

RequestHandler* showPackage(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string name(r.params.get("name"));
  auto vs = ctx->catalog->versions(name);
  if (vs.empty()) return FixedAnswer::error(r.writer, std::move(r.head), 404, "no package " + name);
  const std::string base = baseUrl(r.writer->wc()->snapshot(), r.head);
  nlohmann::ordered_json j;
  j["name"] = name;
  j["versions"] = nlohmann::ordered_json::array();
  for (const auto& v : vs) {
    auto e = versionJson(*v, base);
    e["downloads"] = ctx->catalog->downloads(v->name, v->version);
    j["versions"].push_back(std::move(e));
  }
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json", dump(j));
}

RequestHandler* deleteVersion(HandlerRequest&& r, const ServerContext* ctx) {
  catalog::Actor actor = actorOf(r);
  std::string name(r.params.get("name")), version(r.params.get("version"));
  const int64_t now = ctx->clock->nowSeconds();
  catalog::Catalog* cat = ctx->catalog;
  return new OffLoopAnswer(r.writer, std::move(r.head), [cat, actor, name, version, now](std::string) {
    if (auto p = cat->remove(name, version, actor, now)) return errorReply(statusFor(*p), p->detail);
    nlohmann::ordered_json j;
    j["deleted"] = {{"name", name}, {"version", version}};
    return OffLoopAnswer::Reply{200, dump(j)};
  });
}

// PATCH: the metadata of a published version, as a JSON object of the
// same fields the publish's query takes (catalog/request_metadata.h).
RequestHandler* patchMetadata(HandlerRequest&& r, const ServerContext* ctx) {
  catalog::Actor actor = actorOf(r);
  std::string name(r.params.get("name")), version(r.params.get("version"));
  const int64_t now = ctx->clock->nowSeconds();
  const std::string base = baseUrl(r.writer->wc()->snapshot(), r.head);
  catalog::Catalog* cat = ctx->catalog;
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [cat, actor, name, version, now, base](std::string body) {
        auto result = cat->updateMetadata(
            name, version,
            [&](catalog::PackageMetadata* m) -> std::optional<std::string> {
              if (auto p = catalog::parseMetadataJson(body, m)) return p;
              return catalog::completeMetadata(m, name, version, m->kind != "file");
            },
            actor, now);
        if (auto* p = std::get_if<catalog::Problem>(&result)) return errorReply(statusFor(*p), p->detail);
        return OffLoopAnswer::Reply{200, dump(versionJson(*std::get<0>(result), base))};
      },
      /*maxBody=*/64 * 1024);
}

RequestHandler* deliveries(HandlerRequest&& r, const ServerContext* ctx) {
  auto v = ctx->catalog->find(r.params.get("name"), r.params.get("version"));
  if (!v)
    return FixedAnswer::error(r.writer, std::move(r.head), 404,
                              "no version " + std::string(r.params.get("version")) + " of " + std::string(r.params.get("name")));
  nlohmann::ordered_json nets = nlohmann::ordered_json::array();
  catalog::DeliveryCount total;
  for (const auto& c : ctx->catalog->deliveries().of(v->name, v->version)) {
    nets.push_back({{"network", c.network},
                    {"started", c.started},
                    {"completed", c.completed},
                    {"bytes", c.bytes},
                    {"bytes_on_box", c.bytesOnBox},
                    {"bytes_from_upstream", c.bytesFromUpstream}});
    total.started += c.started;
    total.completed += c.completed;
    total.bytes += c.bytes;
  }
  nlohmann::ordered_json j;
  j["name"] = v->name;
  j["version"] = v->version;
  j["since"] = ctx->startedAt;
  j["downloads"] = ctx->catalog->downloads(v->name, v->version);
  j["total"] = {{"started", total.started}, {"completed", total.completed}, {"bytes", total.bytes}};
  j["networks"] = std::move(nets);
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json", dump(j));
}

RequestHandler* auditLog(HandlerRequest&& r, const ServerContext* ctx) {
  uint64_t after = 0, limit = 100;
  auto a = queryParam(r.head.target, "after");
  auto l = queryParam(r.head.target, "limit");
  if ((a && !parseU64(*a, &after)) || (l && (!parseU64(*l, &limit) || limit == 0 || limit > 1000)))
    return FixedAnswer::error(r.writer, std::move(r.head), 400,
                              "after must be a sequence number and limit a count from 1 to 1000");
  catalog::Catalog* cat = ctx->catalog;
  return new OffLoopAnswer(r.writer, std::move(r.head), [cat, after, limit](std::string) {
    auto entries = cat->audit(after, static_cast<size_t>(limit) + 1);  // one more: is there a next page?
    if (!entries) return errorReply(500, "cannot read the audit log: " + entries.error().message());
    nlohmann::ordered_json j;
    j["entries"] = nlohmann::ordered_json::array();
    const bool more = entries->size() > limit;
    if (more) entries->pop_back();
    for (const auto& e : *entries)
      j["entries"].push_back({{"seq", e.seq},
                              {"time", e.time},
                              {"action", e.action},
                              {"object", e.object},
                              {"client", e.client},
                              {"token", e.token},
                              {"detail", e.detail}});
    j["next"] = more && !entries->empty() ? nlohmann::ordered_json(entries->back().seq) : nlohmann::ordered_json();
    return OffLoopAnswer::Reply{200, dump(j)};
  });
}

RequestHandler* manifest(HandlerRequest&& r, const ServerContext* ctx) {
  std::string_view file = r.params.get("file");
  constexpr std::string_view kExt = ".plist";
  if (file.size() <= kExt.size() || file.substr(file.size() - kExt.size()) != kExt)
    return FixedAnswer::error(r.writer, std::move(r.head), 404, "manifests are /manifests/{name}/{version}.plist");
  const std::string name(r.params.get("name"));
  const std::string version(file.substr(0, file.size() - kExt.size()));
  auto v = ctx->catalog->find(name, version);
  if (!v) return FixedAnswer::error(r.writer, std::move(r.head), 404, "no version " + version + " of " + name);
  catalog::ManifestInput in;
  in.url = catalog::packageUrl(baseUrl(r.writer->wc()->snapshot(), r.head), v->name, v->version, v->filename);
  in.chunkSha256 = v->chunks;
  in.bundleId = v->metadata.bundleId;
  in.bundleVersion = v->metadata.bundleVersion.empty() ? v->version : v->metadata.bundleVersion;
  in.title = v->metadata.title.empty() ? v->name : v->metadata.title;
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/xml", catalog::writeManifest(in));
}

}  // namespace

void registerCatalogRoutes(RouteTable& routes, const ServerContext* ctx) {
  using config::Scope;
  routes.add("PUT", "/api/v1/packages/{name}/{version}/{filename}", catalogWrite(ctx, Scope::Publish, &makePublishHandler));
  routes.add("POST", "/api/v1/packages/{name}/{version}/from-url", catalogWrite(ctx, Scope::Publish, &makeFromUrlHandler));
  routes.add("GET", "/api/v1/packages", withToken(ctx, Scope::Read, &listPackages));
  routes.add("GET", "/api/v1/packages/{name}", withToken(ctx, Scope::Read, &showPackage));
  routes.add("DELETE", "/api/v1/packages/{name}/{version}", catalogWrite(ctx, Scope::Admin, &deleteVersion));
  routes.add("PATCH", "/api/v1/packages/{name}/{version}", catalogWrite(ctx, Scope::Publish, &patchMetadata));
  routes.add("GET", "/api/v1/audit", withToken(ctx, Scope::Read, &auditLog));
  routes.add("GET", "/api/v1/packages/{name}/{version}/deliveries", withToken(ctx, Scope::Read, &deliveries));
  routes.add("GET", "/pkgs/{name}/{version}/{filename}", openRoute(ctx, &makePackageSender));
  routes.add("GET", "/manifests/{name}/{file}", openRoute(ctx, &manifest));
  registerFleetRoutes(routes, ctx);
  registerStatusRoutes(routes, ctx);
  registerHubRoutes(routes, ctx);
}

}  // namespace orchard::server
