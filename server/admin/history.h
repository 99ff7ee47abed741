// The box's traffic over time: HistorySampler writes one record per
// wall-clock minute into the database (db/history_store.h), and two routes
// read what the box did:
//   GET /api/v1/history?from=&to=&step=  the minutes in `step` buckets
//   GET /api/v1/top?limit=N              the objects that served the most bytes
// Both take a `read` token and run on the worker pool, never on a loop.
//
// HistorySampler lifecycle: start() after the loops run (a thread of its
// own wakes every history.sample_interval), stop() before the loops'
// counters go away: it takes a last sample, so the minute of a clean stop
// is complete. Each sample adds the per-loop counters' growth since the
// previous sample (server/metrics.h sumCounters) to the record of the
// minute the box's clock reads now, and sets its cache_used from the
// store. Deltas are taken within one process lifetime: the counters start
// at zero with the process, so the first sample counts everything since the
// start; what happened between the last sample of a process that died
// (kill -9, power cut) and its end is lost, at most one interval. A restart
// within a minute adds to that minute's record (read back once when the
// sampler enters a minute), it does not replace it. A sample with no
// request and the store's size unchanged writes nothing: the history is
// sparse (an idle or stopped box has no points). Minutes older than
// history.retention are deleted at start and then hourly (a range delete).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "common/history.h"
#include "db/history_store.h"
#include "server/context.h"
#include "server/http/route_table.h"

namespace orchard::server {

// The counters a sample is made of, summed over the loops (cache_used 0).
history::Sample totalsNow(const ServerContext& ctx);

class HistorySampler {
 public:
  // `ctx` (its clock, store and counters) and `store` outlive the sampler.
  HistorySampler(const ServerContext* ctx, db::HistoryStore* store, int64_t intervalMs, int64_t retentionMs);
  ~HistorySampler();  // stop()
  HistorySampler(const HistorySampler&) = delete;
  HistorySampler& operator=(const HistorySampler&) = delete;

  void start();
  // Takes the last sample and joins the thread. Idempotent.
  void stop();
  // One sample now (the thread's work; tests call it directly).
  void sampleOnce();

 private:
  void run();
  void prune(int64_t nowSeconds);

  const ServerContext* ctx_;
  db::HistoryStore* store_;
  const int64_t intervalMs_;
  const int64_t retentionMs_;
  // Sampler thread only (and stop(), after the join):
  history::Sample last_;             // the totals at the previous sample
  int64_t minute_ = INT64_MIN;       // the minute `pending_` belongs to
  history::Sample pending_;          // that minute's record as written
  std::optional<uint64_t> lastUsed_;  // the store's bytes at the previous sample
  int64_t prunedAt_ = INT64_MIN;     // wall seconds of the last retention pass
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

// Adds GET /api/v1/history and GET /api/v1/top (scope read). `ctx`
// outlives the table; ctx->history and ctx->loops are read per request.
void registerHistoryRoutes(RouteTable& routes, const ServerContext* ctx);

}  // namespace orchard::server
