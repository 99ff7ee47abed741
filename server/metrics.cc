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
