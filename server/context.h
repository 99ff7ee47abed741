// ServerContext: what every transaction reads (shared, immutable after
// start except the thread-safe store and fill table), and WorkerContext:
// the per-loop state (connections, fills driven here, upstream pool,
// counters), touched only on its loop thread.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "cache/fill.h"
#include "cache/store.h"
#include "common/clock.h"
#include "config/config.h"
#include "server/loop.h"
#include "server/metrics.h"
#include "server/open_file_cache.h"
#include "server/router.h"
#include "server/upstream.h"

namespace orchard::server {

class ClientConn;
class FillDriver;

struct ServerContext {
  config::Config config;
  config::HostMatcher allow;
  RouterConfig router;
  cache::Store* store = nullptr;
  cache::FillTable* fills = nullptr;
  Clock* clock = &SystemClock::instance();
  int64_t startedAt = 0;
  std::string viaName;  // "orchard-<random>": our Via pseudonym, to spot forwarding loops
  std::vector<const Counters*> counters;  // one per worker, for /metrics
};

// Reused body buffers: a connection borrows one while it sends a body and
// returns it when done, so idle connections hold none.
class BufferPool {
 public:
  static constexpr size_t kSize = 256 * 1024;
  char* get() {
    if (free_.empty()) return new char[kSize];
    char* b = free_.back();
    free_.pop_back();
    return b;
  }
  void put(char* b) {
    if (free_.size() < 64) free_.push_back(b);
    else delete[] b;
  }
  ~BufferPool() {
    for (char* b : free_) delete[] b;
  }

 private:
  std::vector<char*> free_;
};

struct WorkerContext {
  WorkerContext(ServerContext* s, Worker* w, UpstreamOptions up) : server(s), worker(w), upstream(w, std::move(up)) {}
  ServerContext* server;
  Worker* worker;
  UpstreamPool upstream;
  Counters counters;
  BufferPool buffers;
  OpenFileCache files;
  std::unordered_set<ClientConn*> conns;
  std::unordered_set<FillDriver*> drivers;
  bool draining = false;
};

}  // namespace orchard::server
