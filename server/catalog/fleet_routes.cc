// Release control's routes (issue "Catalog, part 2"): devices and their
// bulk import, a version's targeting, the rings (the global plan and each
// package's release policy over it), rollout actions (release among them)
// and state, pins, and what one device gets now (installs, DDM
// declarations). Every per-package use of the rings takes the package's
// effective plan (FleetStore::planFor); the OS targets and their
// declaration keep the global plan (their scope is macOS, not a package). Thin:
// the logic is catalog/targeting, rollout, installs and declarations; the
// records are the FleetStore's. Writes (durable batches) run on the thread
// pool through OffLoopAnswer; reads are in memory and answered on the loop.
#include <algorithm>

#include "catalog/declarations.h"
#include "catalog/device.h"
#include "catalog/installs.h"
#include "catalog/manifest.h"
#include "catalog/names.h"
#include "catalog/os_target.h"
#include "catalog/targeting.h"
#include "server/catalog/catalog_http.h"
#include "server/catalog/catalog_routes.h"
#include "server/catalog/status_routes.h"
#include "server/http/message.h"

namespace orchard::server {

namespace {

using nlohmann::json;
constexpr size_t kJsonBody = 64 * 1024;
constexpr size_t kImportBody = 32u << 20;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

OffLoopAnswer::Reply okJson(const json& j, int status = 200) { return OffLoopAnswer::Reply{status, dump(j)}; }

// The body as a JSON value, or the 400 that says why not.
std::variant<json, OffLoopAnswer::Reply> parseBody(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return errorReply(400, "the body is not JSON");
  return j;
}


std::string queryValue(std::string_view target, std::string_view key) { return queryParam(target, key).value_or(""); }

json deviceJson(const catalog::Device& d) {
  json j;
  catalog::toJson(j, d);
  return j;
}

RequestHandler* putDevice(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string serial(r.params.get("serial"));
  auto actor = actorOf(r);
  const int64_t now = ctx->clock->nowSeconds();
  auto* fleet = ctx->fleet;
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [fleet, serial, actor, now](std::string body) {
        auto j = parseBody(body);
        if (auto* e = std::get_if<OffLoopAnswer::Reply>(&j)) return *e;
        auto d = catalog::deviceFromJson(std::get<json>(j), serial);
        if (auto* p = std::get_if<std::string>(&d)) return errorReply(400, *p);
        bool created = false;
        if (auto p = fleet->putDevice(std::get<catalog::Device>(d), actor, now, &created))
          return errorReply(statusFor(*p), p->detail);
        return okJson(deviceJson(std::get<catalog::Device>(d)), created ? 201 : 200);
      },
      kJsonBody);
}

RequestHandler* getDevice(HandlerRequest&& r, const ServerContext* ctx) {
  auto d = ctx->fleet->device(r.params.get("serial"));
  if (!d) return FixedAnswer::error(r.writer, std::move(r.head), 404, "no device " + std::string(r.params.get("serial")));
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json", dump(deviceJson(*d)));
}

RequestHandler* deleteDevice(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string serial(r.params.get("serial"));
  auto actor = actorOf(r);
  const int64_t now = ctx->clock->nowSeconds();
  auto* fleet = ctx->fleet;
  return new OffLoopAnswer(r.writer, std::move(r.head), [fleet, serial, actor, now](std::string) {
    if (auto p = fleet->removeDevice(serial, actor, now)) return errorReply(statusFor(*p), p->detail);
    return okJson(json{{"deleted", serial}});
  });
}

RequestHandler* listDevices(HandlerRequest&& r, const ServerContext* ctx) {
  size_t page = 1, pageSize = 100;
  if (auto p = queryValue(r.head.target, "page"); !p.empty()) page = std::strtoul(p.c_str(), nullptr, 10);
  if (auto p = queryValue(r.head.target, "page_size"); !p.empty()) pageSize = std::strtoul(p.c_str(), nullptr, 10);
  if (page == 0 || pageSize == 0 || pageSize > 1000)
    return FixedAnswer::error(r.writer, std::move(r.head), 400, "page counts from 1 and page_size is 1 to 1000");
  size_t total = 0;
  auto ds = ctx->fleet->devices(queryValue(r.head.target, "group"), queryValue(r.head.target, "site"), page, pageSize,
                                &total);
  json j{{"devices", json::array()}, {"total", total}, {"page", page}, {"pages", (total + pageSize - 1) / pageSize}};
  for (const auto& d : ds) j["devices"].push_back(deviceJson(d));
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json", dump(j));
}

RequestHandler* importDevices(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string type(r.head.header("Content-Type").value_or("application/json"));
  auto actor = actorOf(r);
  const int64_t now = ctx->clock->nowSeconds();
  auto* fleet = ctx->fleet;
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [fleet, type, actor, now](std::string body) {
        auto parsed = catalog::parseDeviceImport(body, type);
        if (auto* errs = std::get_if<std::vector<catalog::ImportRowError>>(&parsed)) {
          json rows = json::array();
          for (const auto& e : *errs) rows.push_back({{"row", e.row}, {"detail", e.detail}});
          json j{{"error", "Bad Request"},
                 {"detail", std::to_string(errs->size()) + " rows are wrong: nothing was imported"},
                 {"rows", rows}};
          return OffLoopAnswer::Reply{400, dump(j)};
        }
        const auto& ds = std::get<std::vector<catalog::Device>>(parsed);
        if (auto p = fleet->importDevices(ds, actor, now)) return errorReply(statusFor(*p), p->detail);
        return okJson(json{{"imported", ds.size()}});
      },
      kImportBody);
}

// A published version named by the path, or the 404 handler.
RequestHandler* needVersion(HandlerRequest& r, const ServerContext* ctx) {
  if (ctx->catalog->find(r.params.get("name"), r.params.get("version"))) return nullptr;
  return FixedAnswer::error(r.writer, std::move(r.head), 404,
                            "no version " + std::string(r.params.get("version")) + " of " + std::string(r.params.get("name")));
}

RequestHandler* putTargeting(HandlerRequest&& r, const ServerContext* ctx) {
  if (auto* h = needVersion(r, ctx)) return h;
  std::string name(r.params.get("name")), version(r.params.get("version"));
  auto actor = actorOf(r);
  const int64_t now = ctx->clock->nowSeconds();
  auto* fleet = ctx->fleet;
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [fleet, name, version, actor, now](std::string body) {
        auto j = parseBody(body);
        if (auto* e = std::get_if<OffLoopAnswer::Reply>(&j)) return *e;
        auto rule = catalog::ruleFromJson(std::get<json>(j));
        if (auto* p = std::get_if<std::string>(&rule)) return errorReply(400, *p);
        if (auto p = fleet->putRule(name, version, std::get<catalog::TargetRule>(rule), actor, now))
          return errorReply(statusFor(*p), p->detail);
        json out;
        catalog::toJson(out, std::get<catalog::TargetRule>(rule));
        return okJson(out);
      },
      kJsonBody);
}

RequestHandler* getTargeting(HandlerRequest&& r, const ServerContext* ctx) {
  if (auto* h = needVersion(r, ctx)) return h;
  json out;
  catalog::toJson(out, ctx->fleet->rule(r.params.get("name"), r.params.get("version")));
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json", dump(out));
}

RequestHandler* putRings(HandlerRequest&& r, const ServerContext* ctx) {
  auto actor = actorOf(r);
  const int64_t now = ctx->clock->nowSeconds();
  auto* fleet = ctx->fleet;
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [fleet, actor, now](std::string body) {
        auto j = parseBody(body);
        if (auto* e = std::get_if<OffLoopAnswer::Reply>(&j)) return *e;
        auto plan = catalog::ringPlanFromJson(std::get<json>(j));
        if (auto* p = std::get_if<std::string>(&plan)) return errorReply(400, *p);
        if (auto p = fleet->putRings(std::get<catalog::RingPlan>(plan), actor, now))
          return errorReply(statusFor(*p), p->detail);
        return okJson(catalog::ringPlanJson(std::get<catalog::RingPlan>(plan)));
      },
      kJsonBody);
}

RequestHandler* getRings(HandlerRequest&& r, const ServerContext* ctx) {
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json", dump(catalog::ringPlanJson(ctx->fleet->rings())));
}

// The {name} of /api/v1/rings/{name} is a package name (validated as at
// publish; the package need not be published yet: a policy set first
// holds its first version), or the 400 handler.
RequestHandler* badPolicyName(HandlerRequest& r) {
  if (auto p = catalog::validateName(r.params.get("name")))
    return FixedAnswer::error(r.writer, std::move(r.head), 400, "name: " + *p);
  return nullptr;
}

json policyChangeJson(const catalog::FleetStore::PolicyChange& c) {
  return json{{"kept_released", c.keptReleased}, {"released", c.released}};
}

RequestHandler* putPolicy(HandlerRequest&& r, const ServerContext* ctx) {
  if (auto* h = badPolicyName(r)) return h;
  const std::string name(r.params.get("name"));
  auto actor = actorOf(r);
  const int64_t now = ctx->clock->nowSeconds();
  auto* fleet = ctx->fleet;
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [fleet, name, actor, now](std::string body) {
        auto j = parseBody(body);
        if (auto* e = std::get_if<OffLoopAnswer::Reply>(&j)) return *e;
        auto policy = catalog::releasePolicyFromJson(std::get<json>(j));
        if (auto* p = std::get_if<std::string>(&policy)) return errorReply(400, *p);
        catalog::FleetStore::PolicyChange change;
        if (auto p = fleet->putPolicy(name, std::get<catalog::ReleasePolicy>(policy), actor, now, &change))
          return errorReply(statusFor(*p), p->detail);
        std::optional<catalog::ReleasePolicy> stored;
        const catalog::RingPlan plan = fleet->planFor(name, &stored);
        json out = catalog::effectivePlanJson(name, plan, stored);
        out["changed"] = policyChangeJson(change);
        return okJson(out);
      },
      kJsonBody);
}

RequestHandler* getPolicy(HandlerRequest&& r, const ServerContext* ctx) {
  if (auto* h = badPolicyName(r)) return h;
  std::optional<catalog::ReleasePolicy> stored;
  const catalog::RingPlan plan = ctx->fleet->planFor(r.params.get("name"), &stored);
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json",
                         dump(catalog::effectivePlanJson(r.params.get("name"), plan, stored)));
}

RequestHandler* deletePolicy(HandlerRequest&& r, const ServerContext* ctx) {
  if (auto* h = badPolicyName(r)) return h;
  const std::string name(r.params.get("name"));
  auto actor = actorOf(r);
  const int64_t now = ctx->clock->nowSeconds();
  auto* fleet = ctx->fleet;
  return new OffLoopAnswer(r.writer, std::move(r.head), [fleet, name, actor, now](std::string) {
    catalog::FleetStore::PolicyChange change;
    if (auto p = fleet->removePolicy(name, actor, now, &change)) return errorReply(statusFor(*p), p->detail);
    return okJson(json{{"deleted", name}, {"changed", policyChangeJson(change)}});
  });
}

// The rollout state of a version: its ring, flags, dates, and per ring the
// devices its rule admits and the ring holds.
json rolloutJson(const ServerContext* ctx, const catalog::PackageVersion& v, int64_t now,
                 const catalog::HealthLimits& limits) {
  const catalog::RingPlan plan = ctx->fleet->planFor(v.name);
  auto candidates = catalog::candidatesFor(catalog::Device{}, {std::make_shared<catalog::PackageVersion>(v)}, *ctx->fleet,
                                           plan.release);
  const auto& events = candidates.front().events;
  const catalog::RolloutView view = catalog::viewAt(plan.rings, events, now, plan.promoteAfterSecs);
  json j{{"name", v.name},
         {"version", v.version},
         {"ring", plan.rings.empty() ? "" : plan.rings[std::min(view.ring, plan.rings.size() - 1)].name},
         {"ring_index", view.ring},
         {"release", catalog::releaseModeName(plan.release)},
         {"released", view.started},
         {"paused", view.paused},
         {"halted", view.halted},
         {"rolled_back", view.rolledBack},
         {"started_at", view.startedAt},
         {"entered_ring_at", view.enteredRingAt},
         {"next_promotion_at", view.nextPromotionAt ? json(*view.nextPromotionAt) : json()},
         {"reason", view.reason}};
  json evs = json::array();
  for (const auto& e : events) evs.push_back(catalog::rolloutEventToJson(e));
  j["events"] = evs;
  // Device counts: eligible by the rule, and in each ring.
  const catalog::TargetRule rule = ctx->fleet->rule(v.name, v.version);
  std::vector<size_t> inRing(plan.rings.size(), 0);
  size_t eligible = 0;
  const auto all = ctx->fleet->deviceSnapshot();
  for (const auto& d : *all) {
    if (catalog::ruleWhyNot(rule, d)) continue;
    ++eligible;
    // Rings are cumulative: the first ring holding the device and every later one.
    if (auto first = catalog::ringOf(d, plan.rings, v.name))
      for (size_t k = *first; k < plan.rings.size(); ++k) ++inRing[k];
  }
  json rings = json::array();
  for (size_t k = 0; k < plan.rings.size(); ++k)
    rings.push_back(
        {{"name", plan.rings[k].name}, {"devices", inRing[k]}, {"current", view.started && k == view.ring}});
  j["devices_eligible"] = eligible;
  j["rings"] = rings;
  j["health"] = rolloutHealthJson(ctx, v, now, limits);
  return j;
}

RequestHandler* getRollout(HandlerRequest&& r, const ServerContext* ctx) {
  auto v = ctx->catalog->find(r.params.get("name"), r.params.get("version"));
  if (!v) return needVersion(r, ctx);
  // Off the loop: the counts walk every device (milliseconds at 10,000).
  const int64_t now = ctx->clock->nowSeconds();
  const catalog::HealthLimits limits = healthLimits(r.writer->wc()->snapshot().config);
  return new OffLoopAnswer(r.writer, std::move(r.head), [ctx, v, now, limits](std::string) {
    return OffLoopAnswer::Reply{200, dump(rolloutJson(ctx, *v, now, limits))};
  });
}

RequestHandler* rolloutAction(HandlerRequest&& r, const ServerContext* ctx) {
  auto v = ctx->catalog->find(r.params.get("name"), r.params.get("version"));
  if (!v) return needVersion(r, ctx);
  const std::string action(r.params.get("action"));
  catalog::RolloutEventKind kind;
  if (action == "release") kind = catalog::RolloutEventKind::Start;
  else if (action == "pause") kind = catalog::RolloutEventKind::Pause;
  else if (action == "resume") kind = catalog::RolloutEventKind::Resume;
  else if (action == "promote") kind = catalog::RolloutEventKind::Promote;
  else if (action == "halt") kind = catalog::RolloutEventKind::Halt;
  else if (action == "rollback") kind = catalog::RolloutEventKind::Rollback;
  else
    return FixedAnswer::error(r.writer, std::move(r.head), 404,
                              "actions are release, pause, resume, promote, halt and rollback");
  auto actor = actorOf(r);
  const int64_t now = ctx->clock->nowSeconds();
  const catalog::HealthLimits limits = healthLimits(r.writer->wc()->snapshot().config);
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [ctx, v, kind, actor, now, limits](std::string body) {
        std::string reason;
        if (!body.empty()) {
          json j = json::parse(body, nullptr, false);
          if (!j.is_object() || (j.contains("reason") && !j["reason"].is_string()))
            return errorReply(400, "the body, when given, is {\"reason\": \"...\"}");
          reason = j.value("reason", std::string());
        }
        // release: a Start now, refused (409) when the version is released
        // already, explicitly or by its package's on_publish release.
        auto p = kind == catalog::RolloutEventKind::Start
                     ? ctx->fleet->releaseVersion(v->name, v->version, v->published,
                                                  catalog::RolloutEvent{now, kind, reason.empty() ? "released" : reason},
                                                  actor)
                     : ctx->fleet->addEvent(v->name, v->version, catalog::RolloutEvent{now, kind, reason}, actor);
        if (p) return errorReply(statusFor(*p), p->detail);
        return okJson(rolloutJson(ctx, *v, now, limits));
      },
      kJsonBody);
}

RequestHandler* putPin(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string name(r.params.get("name"));
  auto actor = actorOf(r);
  const int64_t now = ctx->clock->nowSeconds();
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [ctx, name, actor, now](std::string body) {
        auto j = parseBody(body);
        if (auto* e = std::get_if<OffLoopAnswer::Reply>(&j)) return *e;
        auto pin = catalog::pinFromJson(std::get<json>(j));
        if (auto* p = std::get_if<std::string>(&pin)) return errorReply(400, *p);
        if (!ctx->catalog->find(name, std::get<catalog::Pin>(pin).version))
          return errorReply(404, "no version " + std::get<catalog::Pin>(pin).version + " of " + name + " to pin to");
        if (auto p = ctx->fleet->putPin(name, std::get<catalog::Pin>(pin), actor, now))
          return errorReply(statusFor(*p), p->detail);
        return okJson(catalog::pinToJson(std::get<catalog::Pin>(pin)));
      },
      kJsonBody);
}

RequestHandler* getPin(HandlerRequest&& r, const ServerContext* ctx) {
  auto p = ctx->fleet->pin(r.params.get("name"));
  if (!p) return FixedAnswer::error(r.writer, std::move(r.head), 404, "no pin for " + std::string(r.params.get("name")));
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json", dump(catalog::pinToJson(*p)));
}

RequestHandler* deletePin(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string name(r.params.get("name"));
  auto actor = actorOf(r);
  const int64_t now = ctx->clock->nowSeconds();
  return new OffLoopAnswer(r.writer, std::move(r.head), [ctx, name, actor, now](std::string) {
    if (auto p = ctx->fleet->removePin(name, actor, now)) return errorReply(statusFor(*p), p->detail);
    return okJson(json{{"deleted", name}});
  });
}

RequestHandler* installs(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string serial(r.params.get("serial"));
  auto d = ctx->fleet->device(serial);
  if (!d) return FixedAnswer::error(r.writer, std::move(r.head), 404, "no device " + serial);
  const std::string base = baseUrl(r.writer->wc()->snapshot(), r.head);
  json list = json::array();
  for (const auto& a : catalog::installsFor(*d, *ctx->catalog, *ctx->fleet, ctx->clock->nowSeconds())) {
    json e{{"name", a.name}};
    if (a.version) {
      e["version"] = a.version->version;
      e["url"] = catalog::packageUrl(base, a.version->name, a.version->version, a.version->filename);
      e["manifest_url"] = catalog::manifestUrl(base, a.version->name, a.version->version);
      e["sha256"] = a.version->sha256;
      e["size"] = a.version->size;
      e["install"] = a.choice.install;
      e["deadline"] = a.choice.deadline ? json(catalog::formatRfc3339(*a.choice.deadline).value_or("")) : json();
      e["ring"] = a.choice.ring;
    } else {
      e["version"] = nullptr;
    }
    e["why"] = {{"code", a.choice.whyCode}, {"detail", a.choice.whyDetail}};
    if (a.choice.downgradeNeeded) e["downgrade_needed"] = a.choice.rolledBackVersion;
    list.push_back(std::move(e));
  }
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json",
                         dump(json{{"serial", serial}, {"installs", list}}));
}

RequestHandler* declarations(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string serial(r.params.get("serial"));
  auto d = ctx->fleet->device(serial);
  if (!d) return FixedAnswer::error(r.writer, std::move(r.head), 404, "no device " + serial);
  const std::string base = baseUrl(r.writer->wc()->snapshot(), r.head);
  json list = json::array();
  for (const auto& a : catalog::installsFor(*d, *ctx->catalog, *ctx->fleet, ctx->clock->nowSeconds())) {
    if (!a.version) continue;
    list.push_back(catalog::packageDeclaration(a.name, catalog::manifestUrl(base, a.version->name, a.version->version),
                                               a.choice.install));
  }
  if (auto os = catalog::osTargetDeclaration(*d, ctx->fleet->rings().rings, ctx->fleet->osTargets()))
    list.push_back(std::move(*os));
  return new FixedAnswer(r.writer, std::move(r.head), 200, "application/json",
                         dump(json{{"serial", serial}, {"declarations", list}}));
}

}  // namespace

void registerFleetRoutes(RouteTable& routes, const ServerContext* ctx) {
  using config::Scope;
  routes.add("PUT", "/api/v1/devices/{serial}", withToken(ctx, Scope::Mdm, &putDevice));
  routes.add("GET", "/api/v1/devices/{serial}", withToken(ctx, Scope::Read, &getDevice));
  routes.add("DELETE", "/api/v1/devices/{serial}", withToken(ctx, Scope::Admin, &deleteDevice));
  routes.add("GET", "/api/v1/devices", withToken(ctx, Scope::Read, &listDevices));
  routes.add("POST", "/api/v1/devices:import", withToken(ctx, Scope::Mdm, &importDevices));
  routes.add("GET", "/api/v1/devices/{serial}/installs", withToken(ctx, Scope::Read, &installs));
  routes.add("GET", "/api/v1/devices/{serial}/declarations", withToken(ctx, Scope::Read, &declarations));
  routes.add("PUT", "/api/v1/packages/{name}/{version}/targeting", catalogWrite(ctx, Scope::Publish, &putTargeting));
  routes.add("GET", "/api/v1/packages/{name}/{version}/targeting", withToken(ctx, Scope::Read, &getTargeting));
  routes.add("GET", "/api/v1/packages/{name}/{version}/rollout", withToken(ctx, Scope::Read, &getRollout));
  routes.add("POST", "/api/v1/packages/{name}/{version}/rollout/{action}", catalogWrite(ctx, Scope::Admin, &rolloutAction));
  routes.add("PUT", "/api/v1/rings", catalogWrite(ctx, Scope::Admin, &putRings));
  routes.add("GET", "/api/v1/rings", withToken(ctx, Scope::Read, &getRings));
  routes.add("PUT", "/api/v1/rings/{name}", catalogWrite(ctx, Scope::Admin, &putPolicy));
  routes.add("GET", "/api/v1/rings/{name}", withToken(ctx, Scope::Read, &getPolicy));
  routes.add("DELETE", "/api/v1/rings/{name}", catalogWrite(ctx, Scope::Admin, &deletePolicy));
  routes.add("PUT", "/api/v1/pins/{name}", catalogWrite(ctx, Scope::Admin, &putPin));
  routes.add("GET", "/api/v1/pins/{name}", withToken(ctx, Scope::Read, &getPin));
  routes.add("DELETE", "/api/v1/pins/{name}", catalogWrite(ctx, Scope::Admin, &deletePin));
  registerOsTargetRoutes(routes, ctx);
}

}  // namespace orchard::server
