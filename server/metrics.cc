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
    for (size_t r = 0; r < kResults; ++r)
      for (size_t f = 0; f < kForms; ++f) t.responses[r][f] += c->responses[r][f].load(std::memory_order_relaxed);
    for (size_t k = 0; k < kOriginErrorKinds; ++k)
      t.origin_errors_by_kind[k] += c->origin_errors_by_kind[k].load(std::memory_order_relaxed);
    for (size_t r = 0; r < kResults; ++r) t.ttfb[r].add(c->ttfb[r]);
    t.duration.add(c->duration);
  }
  return t;
}

const char* resultLabel(RequestResult r) noexcept {
  switch (r) {
#define ORCHARD_RESULT_LABEL(e, label) \
  case RequestResult::e:               \
    return label;
    ORCHARD_RESULTS(ORCHARD_RESULT_LABEL)
#undef ORCHARD_RESULT_LABEL
  }
  return "?";
}

const char* formLabel(RequestForm f) noexcept {
  switch (f) {
#define ORCHARD_FORM_LABEL(e, label) \
  case RequestForm::e:               \
    return label;
    ORCHARD_FORMS(ORCHARD_FORM_LABEL)
#undef ORCHARD_FORM_LABEL
  }
  return "?";
}

const char* originErrorLabel(OriginErrorKind k) noexcept {
  switch (k) {
#define ORCHARD_OE_LABEL(e, label) \
  case OriginErrorKind::e:         \
    return label;
    ORCHARD_ORIGIN_ERRORS(ORCHARD_OE_LABEL)
#undef ORCHARD_OE_LABEL
  }
  return "?";
}

}  // namespace orchard::server
