// Delivery reports (issue "Catalog, part 2"): the MDM forwards each
// device's status items; the box keeps them per device (StatusStore) and,
// in the same off-loop work, checks every running version of the packages
// the report names: a current ring whose failure share passes
// catalog.halt_on_failure_percent (once catalog.halt_min_reports devices
// have reported) gets a Halt event with the reason, through
// FleetStore::addEvent (which writes the audit entry).
#include "server/catalog/status_routes.h"

#include "server/admin/release_metrics.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "catalog/installs.h"
#include "catalog/status_report.h"
#include "catalog/targeting.h"
#include "catalog/fleet_store.h"
#include "catalog/status_store.h"
#include "server/catalog/catalog_http.h"
#include "server/catalog/catalog_routes.h"

namespace orchard::server {

namespace {

using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

// One auto-halt check at a time, so two reports arriving together add one
// Halt event (and one audit entry), not two.
std::mutex haltMu;

// The counts for one version: the shared device snapshot, the status
// records read in place (under the status store's lock), rules checked
// without their why-not texts.
catalog::RolloutHealth healthOf(const ServerContext* ctx, const catalog::PackageVersion& v, int64_t now,
                                int64_t staleAfterSecs, const catalog::RingPlan& plan) {
  const catalog::TargetRule rule = ctx->fleet->rule(v.name, v.version);
  const auto devices = ctx->fleet->deviceSnapshot();
  catalog::RolloutHealth h;
  ctx->status->visit([&](const std::map<std::string, catalog::DeviceStatus, std::less<>>& statuses) {
    h = catalog::rolloutHealth(
        *devices, [&](const catalog::Device& d) { return !catalog::ruleWhyNot(rule, d); }, plan.rings, v.name,
        v.version,
        [&](std::string_view serial) -> const catalog::DeviceStatus* {
          auto it = statuses.find(serial);
          return it == statuses.end() ? nullptr : &it->second;
        },
        now, staleAfterSecs);
  });
  return h;
}

// Checks the running versions a report is about: per package, the versions
// its entries name, and for an entry naming no version (counted against
// every version, health.h) the newest running one. A report can only move
// the counts of those, so no other version can newly pass the limit.
// Returns the halts added, as JSON.
json autoHalt(const ServerContext* ctx, const std::map<std::string, std::set<std::string>>& touched, int64_t now,
              const catalog::HealthLimits& limits) {
  json halted = json::array();
  std::lock_guard lock(haltMu);
  for (const auto& [name, named] : touched) {
    const catalog::RingPlan plan = ctx->fleet->planFor(name);
    const auto versions = ctx->catalog->versions(name);  // newest first
    const auto candidates = catalog::candidatesFor(catalog::Device{}, versions, *ctx->fleet, plan.release);
    bool unnamedChecked = !named.count("");
    for (size_t i = 0; i < versions.size() && i < candidates.size(); ++i) {
      const catalog::RolloutView view = catalog::viewAt(plan.rings, candidates[i].events, now, plan.promoteAfterSecs);
      if (!view.started || view.halted || view.rolledBack) continue;
      const bool newestRunning = !unnamedChecked;
      unnamedChecked = true;
      if (!named.count(versions[i]->version) && !newestRunning) continue;
      const catalog::RolloutHealth h = healthOf(ctx, *versions[i], now, limits.staleAfterSecs, plan);
      const size_t ring = plan.rings.empty() ? 0 : std::min(view.ring, plan.rings.size() - 1);
      const catalog::HealthCounts& counts = plan.rings.empty() ? h.total : h.rings[ring];
      auto reason = catalog::autoHaltReason(counts, plan.rings.empty() ? "" : plan.rings[ring].name, limits);
      if (!reason) continue;
      if (ctx->fleet->addEvent(name, versions[i]->version, catalog::RolloutEvent{now, catalog::RolloutEventKind::Halt, *reason},
                               catalog::Actor{"orchardd", "health"}))
        continue;  // not written: the next report tries again
      halted.push_back({{"name", name}, {"version", versions[i]->version}, {"reason", *reason}});
    }
  }
  return halted;
}

RequestHandler* postStatus(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string serial(r.params.get("serial"));
  const int64_t now = ctx->clock->nowSeconds();
  const catalog::HealthLimits limits = healthLimits(r.writer->wc()->snapshot().config);
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [ctx, serial, now, limits](std::string body) {
        if (!ctx->fleet->device(serial)) return errorReply(404, "no device " + serial + ": register it first");
        auto parsed = catalog::parseStatusReport(body);
        if (auto* e = std::get_if<std::string>(&parsed)) return errorReply(400, *e);
        const auto& report = std::get<catalog::StatusReport>(parsed);
        // bundle id -> package name, over every published version.
        std::map<std::string, std::string, std::less<>> byBundle;
        std::set<std::string, std::less<>> known;
        for (const std::string& n : ctx->catalog->names()) {
          known.insert(n);
          for (const auto& v : ctx->catalog->versions(n)) {
            if (!v->metadata.bundleId.empty()) byBundle.emplace(v->metadata.bundleId, n);
            if (!v->metadata.packageId.empty()) byBundle.emplace(v->metadata.packageId, n);
            for (const auto& b : v->metadata.bundles) byBundle.emplace(b.id, n);
          }
        }
        auto resolve = [&](const catalog::PackageStatus& p) {
          return catalog::resolvePackage(
              p,
              [&](std::string_view id) -> std::optional<std::string> {
                auto it = byBundle.find(id);
                return it == byBundle.end() ? std::nullopt : std::optional<std::string>(it->second);
              },
              [&](std::string_view n) { return known.count(n) > 0; });
        };
        if (auto p = ctx->status->record(serial, report, now, resolve)) return errorReply(statusFor(*p), p->detail);
        json pkgs = json::array();
        std::map<std::string, std::set<std::string>> touched;  // package -> versions named ("" for none)
        for (const auto& p : report.packages) {
          auto name = resolve(p);
          pkgs.push_back({{"name", name ? json(*name) : json()}, {"version", p.version},
                          {"state", catalog::packageStateName(p.state)}});
          if (name) touched[*name].insert(p.version);
        }
        json out{{"serial", serial}, {"at", now}, {"packages", pkgs}, {"skipped", report.skipped},
                 {"halted", autoHalt(ctx, touched, now, limits)}};
        return OffLoopAnswer::Reply{200, dump(out)};
      },
      catalog::kMaxStatusBody);
}

RequestHandler* getStatus(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string serial(r.params.get("serial"));
  return new OffLoopAnswer(r.writer, std::move(r.head), [ctx, serial](std::string) {
    auto s = ctx->status->load(serial);
    if (!s) return errorReply(500, "status read: " + s.error().message());
    if (!s.value()) return errorReply(404, "no status report from " + serial);
    json j = catalog::deviceStatusToJson(*s.value());
    j["serial"] = serial;
    return OffLoopAnswer::Reply{200, dump(j)};
  });
}

}  // namespace

catalog::HealthLimits healthLimits(const config::Config& c) {
  catalog::HealthLimits l;
  l.staleAfterSecs = c.catalogStaleAfterMs / 1000;
  l.haltPercent = c.catalogHaltOnFailurePercent;
  l.minReports = static_cast<size_t>(std::max(1, c.catalogHaltMinReports));
  return l;
}

json rolloutHealthJson(const ServerContext* ctx, const catalog::PackageVersion& v, int64_t now,
                       const catalog::HealthLimits& limits) {
  const catalog::RingPlan plan = ctx->fleet->planFor(v.name);
  const catalog::RolloutHealth h = healthOf(ctx, v, now, limits.staleAfterSecs, plan);
  json rings = json::array();
  for (size_t k = 0; k < plan.rings.size(); ++k) {
    json c = catalog::healthCountsJson(h.rings[k]);
    c["name"] = plan.rings[k].name;
    rings.push_back(std::move(c));
  }
  return json{{"total", catalog::healthCountsJson(h.total)},
              {"rings", rings},
              {"stale_after_days", static_cast<double>(limits.staleAfterSecs) / 86400.0},
              {"halt_on_failure_percent", limits.haltPercent},
              {"halt_min_reports", limits.minReports}};
}

size_t appendReleaseHealthMetrics(std::string& out, const ServerContext& ctx, int64_t now) {
  if (!ctx.catalog || !ctx.fleet || !ctx.status) return 0;
  const catalog::HealthLimits limits = healthLimits(ctx.startConfig);
  // Computed first, written as two families (each family's lines together,
  // as the exposition format wants).
  struct Row {
    std::string name, version;
    catalog::RingPlan plan;  // the package's (its release policy over the global plan)
    catalog::RolloutHealth health;
  };
  std::vector<Row> rows;
  for (const std::string& name : ctx.catalog->names()) {
    if (rows.size() == kMaxHealthPackages) break;
    auto versions = ctx.catalog->versions(name);
    if (versions.empty()) continue;
    catalog::RingPlan plan = ctx.fleet->planFor(name);
    catalog::RolloutHealth health = healthOf(&ctx, *versions.front(), now, limits.staleAfterSecs, plan);
    rows.push_back(Row{name, versions.front()->version, std::move(plan), std::move(health)});
  }
  auto series = [&](const char* metric, const Row& row, const std::string* ring, const catalog::HealthCounts& c) {
    const std::pair<const char*, size_t> states[] = {
        {"eligible", c.eligible}, {"downloading", c.downloading}, {"installed", c.installed},
        {"failed", c.failed},     {"reported", c.reported},       {"stale", c.stale}};
    for (const auto& [state, n] : states) {
      out += metric;
      out += '{';
      appendLabel(out, "package", row.name, true);
      appendLabel(out, "version", row.version, false);
      if (ring) appendLabel(out, "ring", *ring, false);
      appendLabel(out, "state", state, false);
      out += "} " + std::to_string(n) + "\n";
    }
  };
  out += "# HELP orchard_release_health devices of each package's newest version by delivery state (eligible, "
         "downloading, installed, failed, reported, stale), from the forwarded status reports; at most " +
         std::to_string(kMaxHealthPackages) + " packages, in name order\n# TYPE orchard_release_health gauge\n";
  for (const Row& row : rows) series("orchard_release_health", row, nullptr, row.health.total);
  out += "# HELP orchard_release_ring_health the same per ring (cumulative: a ring holds the devices of the rings "
         "before it); at most " +
         std::to_string(kMaxHealthPackages) + " packages and " + std::to_string(catalog::kMaxRings) +
         " rings\n# TYPE orchard_release_ring_health gauge\n";
  for (const Row& row : rows)
    for (size_t k = 0; k < row.plan.rings.size() && k < row.health.rings.size(); ++k)
      series("orchard_release_ring_health", row, &row.plan.rings[k].name, row.health.rings[k]);
  return rows.size();
}

void registerStatusRoutes(RouteTable& routes, const ServerContext* ctx) {
  routes.add("POST", "/api/v1/devices/{serial}/status", withToken(ctx, config::Scope::Mdm, &postStatus));
  routes.add("GET", "/api/v1/devices/{serial}/status", withToken(ctx, config::Scope::Read, &getStatus));
}

}  // namespace orchard::server
