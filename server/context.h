// ServerContext: what every transaction reads (shared, immutable after
// start except the thread-safe store and fill table), and WorkerContext:
// the per-loop state (connections, fills driven here, upstream pool,
// counters), touched only on its loop thread.
#pragma once

#include <sys/mman.h>

#include <memory>
#include <new>
#include <string>
#include <unordered_set>
#include <vector>

#include "cache/fill.h"
#include "cache/store.h"
#include "common/clock.h"
#include "config/config.h"
#include "server/net/loop.h"
#include "server/metrics.h"
#include "server/proxy/open_file_cache.h"
#include "server/http/route_table.h"
#include "server/proxy/router.h"
#include "server/http/upstream.h"

namespace orchard::server {

class ClientConn;
class FillDriver;

struct ServerContext {
  config::Config config;
  config::HostMatcher allow;
  RouterConfig router;
  // Local routes (requests for the box itself): admin rows are added by the
  // Server; tests and later features add theirs before start().
  RouteTable routes;
  cache::Store* store = nullptr;
  cache::FillTable* fills = nullptr;
  Clock* clock = &SystemClock::instance();
  int64_t startedAt = 0;
  std::string viaName;  // "orchard-<random>": our Via pseudonym, to spot forwarding loops
  std::vector<const Counters*> counters;  // one per worker, for /metrics
};

// Reused body buffers: a connection borrows one while it sends a body and
// returns it when done, so idle connections hold none. Each buffer is its
// own anonymous mapping: when a burst of slow clients goes (or is timed out
// by server.send_timeout), the buffers past the kept kKeep go back to the
// system at once instead of staying in the allocator's heap.
class BufferPool {
 public:
  static constexpr size_t kSize = 256 * 1024;
  static constexpr size_t kKeep = 16;  // free buffers kept per loop (4 MiB)
  // Above this many buffers lent out per loop, senders keep at most
  // kQueuedUnderPressure bytes queued per connection (see Transaction::pump):
  // a crowd of clients that stopped reading costs 16 KiB each, not 256.
  static constexpr size_t kPressure = 64;
  static constexpr size_t kQueuedUnderPressure = 16 * 1024;
  size_t inUse() const { return inUse_; }
  char* get() {
    ++inUse_;
    if (free_.empty()) {
      void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      return static_cast<char*>(p);
    }
    char* b = free_.back();
    free_.pop_back();
    return b;
  }
  void put(char* b) {
    --inUse_;
    if (free_.size() < kKeep) free_.push_back(b);
    else ::munmap(b, kSize);
  }
  ~BufferPool() {
    for (char* b : free_) ::munmap(b, kSize);
  }

 private:
  std::vector<char*> free_;
  size_t inUse_ = 0;
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
