// Executor: "run this on that loop". Anything that crosses threads goes
// through post(); a posted task runs later on the executor's own thread,
// never inline inside post() (so callers may hold locks or be deep in a
// callback stack when they post).
//
// The server gives each libuv loop a LoopExecutor (a queue plus uv_async_t);
// tests use ManualExecutor and run queued tasks when they choose.
#pragma once

#include <deque>
#include <functional>
#include <mutex>

namespace orchard {

class Executor {
 public:
  using Task = std::function<void()>;
  virtual ~Executor() = default;
  // Thread-safe. The task runs on the executor's thread. Tasks posted after
  // the executor stopped are dropped (destroyed without running).
  virtual void post(Task task) = 0;
};

// For tests: tasks queue up until runAll()/runOne() is called.
class ManualExecutor final : public Executor {
 public:
  void post(Task task) override {
    std::lock_guard<std::mutex> lock(mu_);
    q_.push_back(std::move(task));
  }
  // Runs tasks, including ones posted while running, until the queue is empty.
  size_t runAll() {
    size_t n = 0;
    while (runOne()) ++n;
    return n;
  }
  bool runOne() {
    Task t;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (q_.empty()) return false;
      t = std::move(q_.front());
      q_.pop_front();
    }
    t();
    return true;
  }
  size_t pending() const {
    std::lock_guard<std::mutex> lock(mu_);
    return q_.size();
  }

 private:
  mutable std::mutex mu_;
  std::deque<Task> q_;
};

}  // namespace orchard
