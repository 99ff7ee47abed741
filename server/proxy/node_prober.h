// NodeProber: brings parents and peers that were marked down
// (server/proxy/cache_nodes.h) back. One per server, on the first loop: a
// timer every kTickMs asks CacheNodes for the down nodes whose retry time
// has come and sends each Apple's own probe, `GET /` with
// `Max-Forwards: 0`, through that loop's upstream pool. A 200 makes the
// node usable again; anything else (an error, another status) keeps it
// down for another upstream.parent_down_time.
//
// Lifetime (STYLE libuv rules): start() and stop() on the loop thread; the
// timer is a heap box freed by its close callback; stop() cancels and frees
// the probes in flight (an exchange cancelled makes no more callbacks).
#pragma once

#include <uv.h>

#include <unordered_set>

namespace orchard::server {

struct WorkerContext;

class NodeProber {
 public:
  static constexpr int64_t kTickMs = 500;
  // Null when the server has no parents and no peers.
  static NodeProber* start(WorkerContext* wc);
  // Cancels the probes in flight, closes the timer and frees the prober.
  void stop();

 private:
  class Probe;
  explicit NodeProber(WorkerContext* wc) : wc_(wc) {}
  void tick();

  WorkerContext* wc_;
  uv_timer_t* timer_ = nullptr;
  std::unordered_set<Probe*> probes_;  // in flight
};

}  // namespace orchard::server
