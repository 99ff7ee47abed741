// Sums the per-loop counter blocks for /metrics and /api/v1/status. Each
// block is written only by its loop; readers load relaxed, so a scrape can
// be a few requests behind but never takes a lock on the hot path.
#include "server/metrics.h"

namespace orchard::server {

CounterTotals sumCounters(const std::vector<const Counters*>& blocks) {
  CounterTotals t;
  for (const Counters* c : blocks) {
#define ORCHARD_SUM(name, help) t.name += c->name.load(std::memory_order_relaxed);
    ORCHARD_COUNTERS(ORCHARD_SUM)
#undef ORCHARD_SUM
    t.open_connections += c->open_connections.load(std::memory_order_relaxed);
  }
  return t;
}

}  // namespace orchard::server
