// ServerContext: what every transaction reads (shared, immutable after
// start except the thread-safe store and fill table), WorkerContext: the
// per-loop state (connections, fills driven here, upstream pool, counters),
// touched only on its loop thread, and Snapshot: the configuration a loop
// serves with.
//
// Config snapshots (SIGHUP): the Server builds one immutable Snapshot per
// good (re)load and posts it to every loop; the loop installs it on its own
// thread (WorkerContext::installSnapshot), so reading the config on a
// request is a plain pointer read: no lock, no atomic. New connections and
// requests see the snapshot current when they start; a Transaction pins the
// one it started with (SnapshotRef, a loop-local count, not an atomic) and
// finishes on it. A loop drops its hold on an old snapshot once the last
// request pinning it there has ended.
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <unordered_set>
#include <vector>

#include "cache/fill.h"
#include "cache/store.h"
#include "catalog/catalog.h"
#include "catalog/fleet_store.h"
#include "catalog/status_store.h"
#include "common/clock.h"
#include "common/rate_limiter.h"
#include "common/top_table.h"
#include "config/config.h"
#include "config/reload.h"
#include "server/admin/tokens.h"
#include "server/http/access_log.h"
#include "server/http/peer_counts.h"
#include "server/net/loop.h"
#include "server/metrics.h"
#include "server/proxy/open_file_cache.h"
#include "server/http/route_table.h"
#include "server/proxy/router.h"
#include "server/http/upstream.h"
#include "server/net/tls_context.h"

namespace orchard::catalog {
class TrustStore;
}
namespace orchard::db {
class HistoryStore;
}

namespace orchard::server {

class AppleService;
class CacheNodes;
class ClientConn;
class FillDriver;
class OsFeed;
struct WorkerContext;
class Tunnel;

// One configuration as the loops run on it: the config snapshot (the
// Config, the upstream.allow matcher, the admin token) plus what the server
// derives from it. Immutable once built; not copyable, because `router`
// points into the snapshot itself.
// The TLS side of a snapshot, built by the Server at start and at each
// reload (a renewed certificate is read again), shared by the snapshots
// that did not change it.
struct TlsState {
  tls::CtxPtr server;                          // null without tls.listen
  std::shared_ptr<tls::ClientContext> client;  // HTTPS origins
  std::string caPem;        // the box's own CA (GET /ca.pem); "" with a configured certificate
  std::string certPath;     // the leaf chain in use
  std::string fingerprint;  // the leaf's SHA-256
};

struct Snapshot : config::ConfigSnapshot {
  explicit Snapshot(config::ConfigSnapshot base)
      : config::ConfigSnapshot(std::move(base)), tokens(TokenTable::build(adminToken, namedTokens)) {}
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  // admin.token ("admin") and admin.tokens as digests, for the token check
  // (server/catalog/catalog_http.h: findToken). The generated token, when
  // no admin token is configured, is ServerContext::generatedTokens.
  TokenTable tokens;
  RouterConfig router;       // allowHost reads `allow` above, allowTunnelHost `tunnelAllow`
  // upstream.tunnel_allow; empty: CONNECT goes by upstream.allow (`allow`).
  config::HostMatcher tunnelAllow;
  UpstreamOptions upstream;  // from upstream.resolve, the timeouts and max_idle_per_origin
  // catalog.trusted_roots loaded; null when none is configured (or it could
  // not be read: logged, and signatures are then never trusted).
  std::shared_ptr<const catalog::TrustStore> trustedRoots;
  std::shared_ptr<const TlsState> tls;  // never null
  // server.access_log opened (shared with the snapshots before it while the
  // target is the same); null when the log is off.
  std::shared_ptr<AccessLogSink> accessLog;
};

// A loop's hold on one snapshot: the requests running on it there (a plain
// count: loop thread only) and whether it is still the loop's current one.
// Freed when it is neither current nor used.
struct LoopSnapshot {
  std::shared_ptr<const Snapshot> snap;
  uint32_t users = 0;
  bool current = true;
};

// A request's pin on the snapshot it started with. Loop thread only (the
// count is not atomic); movable, not copyable.
class SnapshotRef {
 public:
  SnapshotRef() = default;
  explicit SnapshotRef(LoopSnapshot* held) : held_(held) { ++held_->users; }
  SnapshotRef(SnapshotRef&& o) noexcept : held_(o.held_) { o.held_ = nullptr; }
  SnapshotRef& operator=(SnapshotRef&& o) noexcept {
    if (this != &o) {
      release();
      held_ = o.held_;
      o.held_ = nullptr;
    }
    return *this;
  }
  SnapshotRef(const SnapshotRef&) = delete;
  SnapshotRef& operator=(const SnapshotRef&) = delete;
  ~SnapshotRef() { release(); }

  const Snapshot* operator->() const { return held_->snap.get(); }
  const Snapshot& operator*() const { return *held_->snap; }
  explicit operator bool() const { return held_ != nullptr; }

 private:
  void release() {
    if (held_ && --held_->users == 0 && !held_->current) delete held_;
    held_ = nullptr;
  }
  LoopSnapshot* held_ = nullptr;
};

// A reload's outcome (SIGHUP or POST /api/v1/reload; Server::reloadFile).
struct ReloadResult {
  bool ok = false;
  uint64_t generation = 0;               // of the running snapshot afterwards
  std::vector<std::string> applied;      // reloadable keys whose new value now runs
  std::vector<std::string> needRestart;  // restart-only keys that changed and kept their value
  std::vector<std::string> problems;     // why the reload was refused (formatted, one line each)
  std::vector<config::Problem> details;  // the same problems with key and line (line 0: unknown)
};

// What the admin API asks of the Server that owns the loops (the Server
// implements it; null where there is none, e.g. unit tests): the snapshot
// last applied, from any thread, and a reload of the config file run on
// the server's control thread so that no loop waits for it.
class ServerControl {
 public:
  virtual std::shared_ptr<const Snapshot> snapshot() const = 0;
  // Reloads the config file orchardd was started with, as SIGHUP does, on
  // the control thread, after any reload queued before it; `done` is called
  // there, once, with the outcome (refused with a problem when there is no
  // config file or the server is stopping). Any thread.
  virtual void reloadAsync(std::function<void(ReloadResult)> done) = 0;

 protected:
  ~ServerControl() = default;
};

// A bound listener as the status page names it.
struct BoundListener {
  std::string host;  // as configured ("0.0.0.0", "127.0.0.1", "::")
  uint16_t port = 0; // the port bound (port 0 in the config: the one the kernel picked)
  bool tls = false;
};

struct ServerContext {
  // The config the server started on. Only its restart-only keys (listen,
  // storage.dir, workers, ...) may be read here: they never change while
  // running. Reloadable keys come from the loop's snapshot
  // (WorkerContext::config()) or from the store (cacheLimit()).
  config::Config startConfig;
  // Local routes (requests for the box itself): admin rows are added by the
  // Server; tests and later features add theirs before start().
  RouteTable routes;
  cache::Store* store = nullptr;
  cache::FillTable* fills = nullptr;
  catalog::Catalog* catalog = nullptr;  // published packages (server/catalog/)
  catalog::FleetStore* fleet = nullptr;  // devices, targeting, rings, rollout, pins
  catalog::StatusStore* status = nullptr;  // devices' delivery reports (status_routes.cc)
  // The token storage.dir/admin.token holds when the config names none
  // (written at first start); restart-only, like storage.dir.
  std::string generatedToken;
  TokenTable generatedTokens;  // generatedToken as the "admin" entry (empty when none was generated)
  // Connections open per client address, across loops
  // (server.max_connections_per_client): touched at accept and close only.
  PeerCounts peers;
  Clock* clock = &SystemClock::instance();
  int64_t startedAt = 0;
  std::string viaName;  // "orchard-<random>": our Via pseudonym, to spot forwarding loops
  std::vector<const Counters*> counters;  // one per worker, for /metrics
  ServerControl* control = nullptr;       // the Server (reload, snapshot); null without one
  std::vector<BoundListener> listeners;   // server.listen then tls.listen, set once they are bound
  std::string configPath;                 // the --config file; "" on the embedded defaults
  // True from the moment every listener accepts until drain() or stop():
  // the status page's Active.
  std::atomic<bool> serving{false};
  // The worker loops (GET /api/v1/top posts to each for its table); set at
  // start, cleared once they stopped.
  std::vector<WorkerContext*> loops;
  db::HistoryStore* history = nullptr;  // per-minute samples (server/admin/history.h); null before start
  // The box's own requests through its proxy (server/apple/box_fetch.h)
  // carry `X-Orchard-Internal: <internalSecret>` (`; capped` for mirror
  // fills); server/proxy/internal_request.h says what that grants. 32
  // lower-case hex characters from the CSPRNG, made by Server::start when
  // empty (a test may set it before: orchardd does from
  // ORCHARD_TEST_INTERNAL_SECRET, tests only); never logged, in no file.
  // Restart-only; read by any thread after start.
  std::string internalSecret;
  // The one token bucket of apple.mirror_rate, shared by every loop: the
  // origin bytes of every capped fill (cache::Fill::capped) go through it
  // (server/proxy/fill_driver.cc), at the rate of the loop's snapshot. Owned
  // by the Server; null without one (no capped fill is then held back).
  RateLimiter* mirrorThrottle = nullptr;
  AppleService* apple = nullptr;  // Apple's catalogs, mirrors, prewarm (server/apple/); null before start
  OsFeed* osFeed = nullptr;  // Apple's OS-version feed (server/apple/os_feed.h); null before start
  // Parents and peers and their health (server/proxy/cache_nodes.h), from
  // the restart-only upstream.parents / upstream.peers; null before start.
  CacheNodes* nodes = nullptr;
};

// Reused body buffers: a connection borrows one while it sends a body and
// returns it when done, so idle connections hold none. Each buffer is its
// own anonymous mapping: when a burst of slow clients goes (or is timed out
// by server.send_timeout), the buffers past the kept kKeep go back to the
// system at once instead of staying in the allocator's heap.
class BufferPool {
 public:
  // 256 KiB: 128 KiB halves the memory but doubles the system calls, and
  // measured slower in the alternating bench runs (README, Performance).
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
  WorkerContext(ServerContext* s, Worker* w, std::shared_ptr<const Snapshot> snap)
      : server(s), worker(w), upstream(w, snap->upstream, &counters), current_(new LoopSnapshot{std::move(snap)}) {}
  ~WorkerContext() {
    current_->current = false;
    if (current_->users == 0) delete current_;
  }
  WorkerContext(const WorkerContext&) = delete;
  WorkerContext& operator=(const WorkerContext&) = delete;

  // The snapshot new connections and requests on this loop start with.
  // Loop thread only.
  const Snapshot& snapshot() const { return *current_->snap; }
  const config::Config& config() const { return current_->snap->config; }
  // Pins the current snapshot for a request (see SnapshotRef).
  SnapshotRef pinSnapshot() { return SnapshotRef(current_); }
  // Makes `snap` current on this loop (its thread): new requests see it,
  // pinned older ones finish on theirs. The upstream pool takes its options
  // (for new exchanges). Defined in server.cc.
  void installSnapshot(std::shared_ptr<const Snapshot> snap);

  ServerContext* server;
  Worker* worker;
  UpstreamPool upstream;
  Counters counters;
  // The objects this loop served the most bytes of (GET /api/v1/top asks
  // the loop for a copy through its executor). Loop thread only.
  TopTable top;
  AccessLogBuffer accessLog{worker, &counters};  // this loop's access log lines, one write() per turn
  BufferPool buffers;
  OpenFileCache files;
  std::unordered_set<ClientConn*> conns;
  // CONNECT tunnels relaying bytes (detached from their ClientConn): drained
  // and stopped with the connections, counted in open_connections.
  std::unordered_set<Tunnel*> tunnels;
  std::unordered_set<FillDriver*> drivers;
  bool draining = false;

 private:
  LoopSnapshot* current_;  // never null; owned (with the pins) as described on LoopSnapshot
};

}  // namespace orchard::server
