// Delivery reports' routes and the rollout health the rollout answer shows
// (status_routes.cc). Thin: parsing is catalog/status_report, counting and
// the auto-halt decision catalog/health, the records the StatusStore's.
//   POST /api/v1/devices/{serial}/status   a device's status items, as the MDM forwards them
//   GET  /api/v1/devices/{serial}/status   what the box keeps of them (with the last report)
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "catalog/health.h"
#include "config/config.h"
#include "server/context.h"

namespace orchard::server {

// catalog.stale_after, halt_on_failure_percent and halt_min_reports.
catalog::HealthLimits healthLimits(const config::Config& c);

// {"total": counts, "rings": [{"name", counts...}], "stale_after_days", "halt_on_failure_percent",
//  "halt_min_reports"} for the version as of `now`. Scans the fleet: off the loops or on a read path
// that already does (rolloutJson).
nlohmann::json rolloutHealthJson(const ServerContext* ctx, const catalog::PackageVersion& v, int64_t now,
                                 const catalog::HealthLimits& limits);

// orchard_release_health{package,version,state} for the newest version of
// at most kMaxHealthPackages packages (6 series each), appended to a
// /metrics scrape; returns the packages written. Health limits from the
// start-up config (catalog.stale_after is read at start for metrics).
inline constexpr size_t kMaxHealthPackages = 50;
size_t appendReleaseHealthMetrics(std::string& out, const ServerContext& ctx, int64_t now);

}  // namespace orchard::server
