// ChangeWaiter: the long polls of GET /api/v1/catalog/changes held off the
// event loops and off the thread pools. One thread keeps every waiting
// request (its `since`, its deadline and the task that answers it) and
// sleeps on a condition variable until the catalog writes a change (the
// Catalog's change hook calls wake()) or the nearest deadline passes; it
// then runs the tasks whose wait is over (a change past their `since`, or
// their time is up), each a short RocksDB page read whose answer the task
// posts back to its loop (OffLoopAnswer's Runner). No thread is held per
// waiting client; at most kMaxWaiting wait at once (past that enqueue()
// refuses and the route answers without waiting).
//
// Lifecycle: made by the Server before the loops serve, stop() before the
// catalog closes: the tasks still waiting run at once (they answer
// whatever is there) and later enqueue()s are refused.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace orchard::catalog {
class Catalog;
}

namespace orchard::server {

class ChangeWaiter {
 public:
  static constexpr size_t kMaxWaiting = 4096;
  using Clock = std::chrono::steady_clock;

  explicit ChangeWaiter(const catalog::Catalog* catalog);
  ~ChangeWaiter();
  ChangeWaiter(const ChangeWaiter&) = delete;
  ChangeWaiter& operator=(const ChangeWaiter&) = delete;

  // Runs `task` on the waiter's thread once the catalog's last change is
  // past `since` or at `deadline`. False: refused (stopping, or too many
  // waiting), the task was not taken.
  bool enqueue(uint64_t since, Clock::time_point deadline, std::function<void()> task);
  void wake();  // any thread, any lock held (only takes the waiter's own)
  void stop();
  size_t waiting() const;

 private:
  void run();
  struct Entry {
    uint64_t since;
    Clock::time_point deadline;
    std::function<void()> task;
  };
  const catalog::Catalog* catalog_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Entry> entries_;
  bool woken_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace orchard::server
