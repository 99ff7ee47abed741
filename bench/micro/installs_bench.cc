// catalog::installsFor (the answer of GET /api/v1/devices/{serial}/installs)
// over the fleet: P packages x 5 versions (tiny files), a targeting
// rule on each version, rings canary (group it) -> early (20 %) -> broad
// (100 %), and D devices imported in one batch. P = $ORCHARD_BENCH_PACKAGES
// (default 100, so 500 versions), D = $ORCHARD_BENCH_DEVICES (default
// 10 000). The target: under 1 ms p99 with those defaults.
//
// The fixture is built once per process in a temp dir through the real
// Catalog (begin/write/finish/commit) and FleetStore (putRule, putRings,
// importDevices, addEvent) paths, then removed. Versions are published at
// staggered times and some get rollout events (promote, pause, halt,
// rollback), so the answer walks every kind of version log.
//
// BM_InstallsFor times each call on its own (steady_clock) for random
// devices and reports p50/p99/max in microseconds as counters (wall time),
// and cpu_p50_us/cpu_p99_us (the thread's CPU time per call).
// BM_RolloutDevices measures what /metrics pays per scrape for the
// release-devices gauges (server/admin/release_metrics.h).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <time.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "catalog/fleet_store.h"
#include "catalog/health.h"
#include "catalog/installs.h"
#include "catalog/targeting.h"
#include "db/database.h"
#include "server/admin/release_metrics.h"

namespace {

namespace cat = orchard::catalog;

constexpr int64_t kT0 = 1700000000;
constexpr int64_t kDay = 86400;

size_t envSize(const char* name, size_t dflt) {
  const char* e = std::getenv(name);
  return e && *e ? static_cast<size_t>(std::strtoull(e, nullptr, 10)) : dflt;
}

struct FleetFixture {
  size_t packages = 100;
  size_t devices = 10000;
  static constexpr size_t kVersions = 5;
  std::string dir;
  std::shared_ptr<orchard::db::Database> db;
  std::unique_ptr<cat::Catalog> catalog;
  std::unique_ptr<cat::FleetStore> fleet;
  std::vector<cat::Device> sample;  // devices to ask for, in random order
  int64_t now = kT0 + 3 * kDay;     // day 3: the oldest versions are in early or broad
  double setupSeconds = 0;
  std::string error;

  FleetFixture() {
    packages = envSize("ORCHARD_BENCH_PACKAGES", packages);
    devices = envSize("ORCHARD_BENCH_DEVICES", devices);
    auto t0 = std::chrono::steady_clock::now();
    std::string tmpl = (std::filesystem::temp_directory_path() / "orchard-bench-fleet.XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      error = "mkdtemp failed";
      return;
    }
    dir = tmpl;
    std::vector<std::string> families = cat::families();
    for (const std::string& f : cat::fleetFamilies()) families.push_back(f);
    auto d = orchard::db::Database::open(dir + "/index", families);
    if (!d) {
      error = "Database::open: " + d.error().message();
      return;
    }
    db = std::shared_ptr<orchard::db::Database>(std::move(d).value());
    auto c = cat::Catalog::open({dir + "/packages", 1ull << 30}, db);
    if (!c) {
      error = "Catalog::open: " + c.error().message();
      return;
    }
    catalog = std::move(c).value();
    auto f = cat::FleetStore::open(db, catalog.get());
    if (!f) {
      error = "FleetStore::open: " + f.error().message();
      return;
    }
    fleet = std::move(f).value();
    if (!populate()) return;
    setupSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "fleet fixture: %zu packages x %zu versions, %zu devices, ready in %.1f s\n", packages,
                 kVersions, fleet->deviceCount(), setupSeconds);
  }
  ~FleetFixture() {
    fleet.reset();
    catalog.reset();
    db.reset();
    if (!dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  }

  bool fail(std::string what) {
    error = std::move(what);
    return false;
  }

  bool populate() {
    const cat::Actor actor{"127.0.0.1", "bench"};
    cat::RingPlan plan;
    plan.rings = {cat::Ring{"canary", {"it"}, std::nullopt, std::nullopt},
                  cat::Ring{"early", {}, 20.0, std::nullopt}, cat::Ring{"broad", {}, 100.0, std::nullopt}};
    plan.promoteAfterSecs = 2 * kDay;
    if (auto p = fleet->putRings(plan, actor, kT0)) return fail("putRings: " + p->detail);
    static const char* kGroups[] = {"it", "finance", "sales", "eng", "design", "ops"};
    for (size_t p = 0; p < packages; ++p) {
      const std::string name = "pkg" + std::to_string(p);
      for (size_t v = 0; v < kVersions; ++v) {
        const std::string version = std::to_string(v + 1) + ".0";
        const int64_t at = kT0 - static_cast<int64_t>(kVersions - v) * kDay;  // 1.0 oldest
        const std::string body = name + " " + version;
        auto b = catalog->begin(name, version, "f.dmg", body.size(), {});
        auto* begun = std::get_if<cat::Catalog::Begun>(&b);
        if (!begun || !begun->upload) return fail("begin " + name + " " + version);
        if (auto w = begun->upload->write(body.data(), body.size())) return fail("write: " + w->detail);
        if (auto w = begun->upload->finish()) return fail("finish: " + w->detail);
        auto c = catalog->commit(std::move(begun->upload), cat::PackageVersion{}, actor, at);
        if (auto* pr = std::get_if<cat::Problem>(&c)) return fail("commit: " + pr->detail);
        // A rule with every kind of restriction the issue names, varied
        // so that devices fall on both sides of each.
        cat::TargetRule rule;
        if (p % 3 == 0) rule.groups = {kGroups[p % 6], "it"};
        if (p % 4 == 1) rule.excludeGroups = {"sales"};
        if (p % 2 == 0) rule.minOs = "13.0";
        if (p % 5 == 2) rule.maxOs = "15.9";
        if (p % 3 == 1) rule.archs = {"arm64"};
        if (p % 7 == 3) rule.channels = {"stable"};
        rule.install = p % 2 ? "required" : "optional";
        if (auto e = fleet->putRule(name, version, rule, actor, at)) return fail("putRule: " + e->detail);
        // Some version logs with actions in them.
        cat::RolloutEvent ev{at + kDay / 2, cat::RolloutEventKind::Start, "bench"};
        if (v == kVersions - 1 && p % 10 == 0) ev = {at + kDay / 2, cat::RolloutEventKind::Pause, "bench"};
        if (v == kVersions - 1 && p % 10 == 1) ev = {at + kDay / 2, cat::RolloutEventKind::Halt, "bench"};
        if (v == kVersions - 1 && p % 10 == 2) ev = {at + kDay / 2, cat::RolloutEventKind::Rollback, "bench"};
        if (v == kVersions - 2 && p % 10 == 3) ev = {at + kDay / 2, cat::RolloutEventKind::Promote, "bench"};
        if (ev.kind != cat::RolloutEventKind::Start)
          if (auto e = fleet->addEvent(name, version, ev, actor)) return fail("addEvent: " + e->detail);
      }
    }
    std::mt19937_64 rng(7);
    std::vector<cat::Device> ds;
    ds.reserve(devices);
    static const char* kOs[] = {"12.7", "13.6", "14.5", "15.1", "16.0"};
    for (size_t i = 0; i < devices; ++i) {
      cat::Device d;
      char serial[16];
      std::snprintf(serial, sizeof serial, "C02B%08zu", i);
      d.serial = serial;
      d.groups = {kGroups[rng() % 6]};
      if (rng() % 4 == 0) d.groups.push_back(kGroups[rng() % 6]);
      d.osVersion = kOs[rng() % 5];
      d.arch = rng() % 3 ? "arm64" : "x86_64";
      d.model = d.arch == "arm64" ? "Mac14,2" : "MacBookPro16,1";
      d.channel = rng() % 10 ? "stable" : "beta";
      d.site = "site" + std::to_string(rng() % 8);
      ds.push_back(std::move(d));
    }
    if (auto e = fleet->importDevices(ds, actor, kT0)) return fail("importDevices: " + e->detail);
    std::shuffle(ds.begin(), ds.end(), rng);
    ds.resize(std::min<size_t>(ds.size(), 4096));
    sample = std::move(ds);
    return true;
  }
};

FleetFixture& fixture() {
  static FleetFixture f;
  return f;
}

void BM_InstallsFor(benchmark::State& state) {
  FleetFixture& f = fixture();
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  // Wall time per call, and the thread's CPU time per call: on a loaded
  // box the wall p99 is mostly the thread waiting for a core.
  std::vector<double> ns, cpuNs;
  ns.reserve(1 << 16);
  cpuNs.reserve(1 << 16);
  auto cpuNow = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
  };
  size_t i = 0, offered = 0;
  for (auto _ : state) {
    const cat::Device& d = f.sample[i++ % f.sample.size()];
    const double c0 = cpuNow();
    auto t0 = std::chrono::steady_clock::now();
    auto answer = cat::installsFor(d, *f.catalog, *f.fleet, f.now);
    auto t1 = std::chrono::steady_clock::now();
    const double c1 = cpuNow();
    benchmark::DoNotOptimize(answer.data());
    for (const auto& a : answer) offered += a.version != nullptr;
    if (ns.size() < (1u << 16)) {
      ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
      cpuNs.push_back(c1 - c0);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  std::sort(ns.begin(), ns.end());
  std::sort(cpuNs.begin(), cpuNs.end());
  auto pct = [](const std::vector<double>& v, double q) {
    return v.empty() ? 0.0 : v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))] / 1000.0;
  };
  state.counters["p50_us"] = pct(ns, 0.50);
  state.counters["p99_us"] = pct(ns, 0.99);
  state.counters["max_us"] = ns.empty() ? 0.0 : ns.back() / 1000.0;
  state.counters["cpu_p50_us"] = pct(cpuNs, 0.50);
  state.counters["cpu_p99_us"] = pct(cpuNs, 0.99);
  state.counters["offered_per_call"] =
      state.iterations() ? static_cast<double>(offered) / static_cast<double>(state.iterations()) : 0.0;
  state.counters["versions"] = static_cast<double>(f.catalog->versionCount());
  state.counters["devices"] = static_cast<double>(f.fleet->deviceCount());
  state.counters["setup_s"] = f.setupSeconds;
}
BENCHMARK(BM_InstallsFor);

// One scrape's release gauges: every package's newest version against every
// device (10 000 x 100 by default).
void BM_RolloutDevices(benchmark::State& state) {
  FleetFixture& f = fixture();
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  size_t series = 0;
  for (auto _ : state) {
    std::string out;
    series = orchard::server::appendReleaseMetrics(out, *f.catalog, *f.fleet, f.now);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["series"] = static_cast<double>(series);
  state.counters["devices"] = static_cast<double>(f.fleet->deviceCount());
}
BENCHMARK(BM_RolloutDevices)->Unit(benchmark::kMillisecond);

// What one status report pays for its auto-halt check of the version it
// names (server/catalog/status_routes.cc healthOf): the shared device
// snapshot, the rule and ring of each of 10,000 devices, and each one's
// status looked up (none here: the lookup, not the merge, is the cost).
void BM_RolloutHealth(benchmark::State& state) {
  FleetFixture& f = fixture();
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  const auto names = f.catalog->names();
  const auto versions = f.catalog->versions(names.front());
  const auto& v = *versions.front();
  const cat::TargetRule rule = f.fleet->rule(v.name, v.version);
  const cat::RingPlan plan = f.fleet->planFor(v.name);  // what GET .../rollout and the auto-halt use
  const std::map<std::string, cat::DeviceStatus, std::less<>> statuses;
  size_t eligible = 0;
  for (auto _ : state) {
    const auto devices = f.fleet->deviceSnapshot();
    auto h = cat::rolloutHealth(
        *devices, [&](const cat::Device& d) { return !cat::ruleWhyNot(rule, d); }, plan.rings, v.name, v.version,
        [&](std::string_view serial) -> const cat::DeviceStatus* {
          auto it = statuses.find(serial);
          return it == statuses.end() ? nullptr : &it->second;
        },
        f.now, 7 * kDay);
    eligible = h.total.eligible;
    benchmark::DoNotOptimize(h);
  }
  state.counters["eligible"] = static_cast<double>(eligible);
  state.counters["devices"] = static_cast<double>(f.fleet->deviceCount());
}
BENCHMARK(BM_RolloutHealth)->Unit(benchmark::kMillisecond);

}  // namespace
