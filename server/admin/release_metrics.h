// The release-control gauges of /metrics (issue "Catalog, part 2": per
// package version and ring, bounded cardinality). Rendered on a scrape from
// the catalog's and the fleet store's in-memory views: one copy of the
// device list, grouped by the fields a rule reads, then for each package's
// newest version checkRule once per group and one pass over the devices
// (inRing, which hashes a serial only when a partial percentage decides).
// Pure over the two stores; the time is an argument.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "catalog/catalog.h"
#include "catalog/fleet_store.h"

namespace orchard::server {

// Appends `name="value"` (after a comma unless first), the value escaped
// as Prometheus label values are (backslash, double quote, newline).
void appendLabel(std::string& out, const char* name, const std::string& value, bool first);

// Most orchard_release_devices series one scrape writes; packages past it
// (in name order) are left out, and the HELP text says so.
inline constexpr size_t kMaxReleaseSeries = 200;

// Appends orchard_fleet_devices and orchard_release_devices{package,version,ring}
// to `out` in the text exposition format; returns the number of
// orchard_release_devices series written.
size_t appendReleaseMetrics(std::string& out, const catalog::Catalog& catalog, const catalog::FleetStore& fleet,
                            int64_t now);

}  // namespace orchard::server
