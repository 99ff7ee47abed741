// Server: owns the store, the fill table and one Worker per core, each with
// its own SO_REUSEPORT listeners, connections, fills and upstream pool.
//
// Lifecycle: start() -> (serving) -> drain(timeout) -> stop(). start()
// returns once every listener accepts; stop() closes every handle, joins
// the loops and closes the store.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "cache/fill.h"
#include "cache/store.h"
#include "config/config.h"
#include "server/context.h"

namespace orchard::server {

class Server {
 public:
  explicit Server(config::Config config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  Result<void> start();
  // Stops accepting, lets in-flight responses finish for up to timeoutMs.
  void drain(int64_t timeoutMs);
  void stop();

  // Port actually bound by listener i (for tests that listen on port 0).
  uint16_t boundPort(size_t i = 0) const { return i < ports_.size() ? ports_[i] : 0; }
  ServerContext& context() { return ctx_; }
  int64_t openConnections() const;

 private:
  struct WorkerSlot;
  Result<void> openListeners(WorkerSlot& slot);

  ServerContext ctx_;
  std::unique_ptr<cache::Store> store_;
  std::unique_ptr<cache::FillTable> fills_;
  std::vector<std::unique_ptr<WorkerSlot>> workers_;
  std::vector<uint16_t> ports_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace orchard::server
