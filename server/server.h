// Server: owns the store, the fill table and one Worker per core, each with
// its own SO_REUSEPORT listeners, connections, fills and upstream pool.
//
// Lifecycle: start() -> (serving, reload()...) -> drain(timeout) -> stop().
// start() returns once every listener accepts; stop() closes every handle,
// joins the loops and closes the store.
//
// Reload (SIGHUP, POST /api/v1/reload): reloadFile() validates the whole file; a file with any
// problem changes nothing (logged, counted in config_reload_failures).
// Otherwise the changed reloadable keys are applied: a new Snapshot (see
// context.h) is posted to every loop, and reload() returns once each has
// installed it, so a request that starts after it returns sees the new
// config; the store takes the new storage.cache_limit and the log the new
// level. A changed restart-only key is logged "<key> changed: needs a
// restart" and keeps its running value. Counted in config_reloads.
//
// Exclusive start: start() refuses to run beside another process on the
// same storage.dir (a flock on storage.dir/lock, see cache/dir_lock.h, held
// until stop()) or on an address another process listens on. SO_REUSEPORT
// would let a second daemon of the same user bind our port and take half
// the clients, so:
//   1. each listen address is probed with a socket bound WITHOUT
//      SO_REUSEPORT, which fails while anyone listens there; it is closed
//      before the real SO_REUSEPORT sockets bind the port it got (so port 0
//      picks one port, once, for every loop);
//   2. once every real socket listens, /proc/net/tcp(6) must show no
//      listener on that address and port but ours. This closes the window
//      between the probe's close and our binds: of two daemons started at
//      the same instant that both passed step 1, the later to reach step 2
//      sees the other's sockets and refuses (both may refuse; both never
//      run). Without /proc only step 1 guards.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <string>
#include <thread>
#include <vector>

#include "cache/dir_lock.h"
#include "cache/fill.h"
#include "cache/store.h"
#include "catalog/catalog.h"
#include "config/config.h"
#include "config/reload.h"
#include "server/context.h"
#include "server/metrics.h"
#include "db/history_store.h"
#include "catalog/apple/os_feed_store.h"

namespace orchard::server {

class AppleService;
class HistorySampler;
class OsFeed;

class Server final : public ServerControl {
 public:
  explicit Server(config::Config config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  Result<void> start();

  using ReloadResult = server::ReloadResult;  // context.h
  // Loads `path` and applies it if valid (see above). Logs and counts the
  // outcome. Call from one thread at a time (the control thread below, or
  // a test's own), after start() and before drain().
  ReloadResult reloadFile(const std::string& path);
  // The same for a config already loaded (valid by construction); it can
  // still fail on an admin.token_file that cannot be read.
  ReloadResult reload(config::Config fresh, std::string_view source = "<reload>");
  // The snapshot last applied (start-up or reload). Any thread.
  std::shared_ptr<const Snapshot> snapshot() const override;

  // The control thread: reloads of the config file, from SIGHUP
  // (reloadConfigFile(), orchardd's signal thread waits for it) and from
  // POST /api/v1/reload (reloadAsync(), the handler's loop does not wait),
  // run on it one at a time, each between the hooks set here (orchardd
  // tells systemd RELOADING=1 before and READY=1 after). Started by
  // start(), joined by stop() (a reload under way finishes first).
  // The file reloads read: orchardd's --config (set before start()); empty
  // on the embedded defaults, where a reload is refused.
  void setConfigPath(std::string path) { ctx_.configPath = std::move(path); }
  void setReloadHooks(std::function<void()> before, std::function<void()> after) {
    beforeReload_ = std::move(before);
    afterReload_ = std::move(after);
  }
  ReloadResult reloadConfigFile();
  void reloadAsync(std::function<void(ReloadResult)> done) override;
  // Stops accepting, lets in-flight responses finish for up to timeoutMs.
  void drain(int64_t timeoutMs);
  void stop();
  // SIGUSR1: opens the access log file again at its path (after logrotate
  // renamed it) under the same descriptor. False (logged) when it cannot be
  // opened: the old file stays in use. Control thread.
  bool reopenLogs();

  // Port actually bound by server.listen entry i, or by tls.listen entry i
  // (for tests that listen on port 0).
  uint16_t boundPort(size_t i = 0) const { return i < ports_.size() ? ports_[i] : 0; }
  uint16_t boundTlsPort(size_t i = 0) const { return boundPort(ctx_.startConfig.listen.size() + i); }
  ServerContext& context() { return ctx_; }
  int64_t openConnections() const;
  // True when every event loop ran a posted no-op within timeoutMs (the
  // systemd watchdog's question: is the box still serving?). Control thread.
  bool loopsResponsive(int64_t timeoutMs);
  // Why start() failed, for the operator: names the setting and what was
  // wrong ("server.listen 127.0.0.1:8080: address already in use by another
  // process"). Empty after a successful start().
  const std::string& startError() const { return startError_; }

 private:
  struct WorkerSlot;
  // Binds a probe socket without SO_REUSEPORT on every listen address
  // (fails when another process holds one) and records the port to use.
  Result<void> probeListeners();
  Result<void> openListeners(WorkerSlot& slot);
  // Undoes a start() that failed after the storage lock was taken.
  void abandonStart();
  // Wraps a config snapshot with the server's derived parts.
  std::shared_ptr<const Snapshot> makeSnapshot(std::shared_ptr<config::ConfigSnapshot> base,
                                               std::shared_ptr<const TlsState> tls,
                                               std::shared_ptr<AccessLogSink> accessLog);
  // The TLS contexts for `cfg`: the listeners' (a configured certificate,
  // or the box's own CA and leaf under storage.dir/tls, made when missing)
  // and the HTTPS origins' (reused from `running` when upstream.ca_file is
  // unchanged). Null with *error naming the key when a file is unusable.
  std::shared_ptr<const TlsState> loadTls(const config::Config& cfg, const TlsState* running, std::string* error);
  // server.access_log opened: the running sink when the target is the same,
  // else a new one. *ok false with *error naming the key when the file
  // cannot be opened; null (and *ok true) when the log is off.
  std::shared_ptr<AccessLogSink> loadAccessLog(const config::Config& cfg, const Snapshot* running, bool* ok,
                                               std::string* error);
  // server.listen then tls.listen: the sockets bound, in that order.
  std::vector<config::ListenAddress> allListen() const;
  // "server.listen" or "tls.listen" for entry i of allListen().
  std::string listenKey(size_t i) const { return i < ctx_.startConfig.listen.size() ? "server.listen" : "tls.listen"; }
  ReloadResult refuse(std::vector<config::Problem> problems, std::string_view source);
  // Queues `task` for the control thread; false once it is stopping.
  bool postControl(std::function<void()> task);
  void runControl();
  void stopControl();
  // reloadFile(configPath) between the hooks; on the control thread.
  ReloadResult reloadOnControl();
  // Closes the OS-version feed, the history store, the status store, the
  // fleet store and the catalog (in that order: each later one is used by
  // the ones before) and clears their context pointers. Before the store,
  // on every way out of start() and stop().
  void closeCatalog();
  // Without a configured admin token: reads storage.dir/admin.token, or
  // writes a new random one there (mode 0600) at first start, into
  // ctx_.generatedToken, and logs where it is.
  Result<void> adminTokenAtStart(const std::string& configured);

  ServerContext ctx_;
  mutable std::mutex snapMu_;                // guards latest_ (the loops hold their own)
  std::shared_ptr<const Snapshot> latest_;
  Counters control_;                         // written by the control thread only (reloads)
  cache::DirLock dirLock_;  // held from start() until the store is closed
  std::unique_ptr<cache::Store> store_;
  std::unique_ptr<cache::FillTable> fills_;
  // apple.mirror_rate's bucket (ctx_.mirrorThrottle): made at the first
  // start, kept until the Server goes (no loop outlives it).
  std::unique_ptr<RateLimiter> mirrorThrottle_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<catalog::FleetStore> fleet_;
  std::unique_ptr<catalog::StatusStore> status_;
  std::unique_ptr<db::HistoryStore> history_;  // the per-minute history (server/admin/history.h)
  std::unique_ptr<AppleService> apple_;        // Apple's catalog, mirrors, prewarm (server/apple/)
  std::unique_ptr<HistorySampler> sampler_;    // from start() until stop(); before the loops' counters go
  std::unique_ptr<catalog::apple::OsFeedStore> osFeedStore_;  // the feed's last good copy
  std::unique_ptr<OsFeed> osFeed_;             // its thread runs from start() until stop()
  std::unique_ptr<CacheNodes> nodes_;          // parents and peers (server/proxy/cache_nodes.h)
  std::vector<std::unique_ptr<WorkerSlot>> workers_;
  std::vector<uint16_t> ports_;
  std::thread controlThread_;                 // runs runControl() while started
  std::mutex controlMu_;                       // guards controlTasks_ and controlStop_
  std::condition_variable controlCv_;
  std::deque<std::function<void()>> controlTasks_;
  bool controlStop_ = false;
  std::function<void()> beforeReload_, afterReload_;
  bool started_ = false;
  bool stopped_ = false;
  std::string startError_;
};

}  // namespace orchard::server
