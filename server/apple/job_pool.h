// JobPool: a few threads of the Apple service's own for route work that
// blocks on the box's own HTTP (see OffLoopAnswer::Runner for why not the
// libuv pool). run() queues a task (false once stopping); stop() lets the
// running tasks finish, drops the queued ones and joins.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace orchard::server {

class JobPool {
 public:
  explicit JobPool(size_t threads) : count_(threads) {}
  ~JobPool() { stop(); }
  JobPool(const JobPool&) = delete;
  JobPool& operator=(const JobPool&) = delete;

  void start() {
    std::lock_guard lock(mu_);
    stopping_ = false;
    for (size_t i = 0; i < count_; ++i) threads_.emplace_back([this] { loop(); });
  }
  bool run(std::function<void()> task) {
    std::lock_guard lock(mu_);
    if (stopping_ || threads_.empty() || queue_.size() >= kMaxQueued) return false;
    queue_.push_back(std::move(task));
    cv_.notify_one();
    return true;
  }
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      queue_.clear();
    }
    cv_.notify_all();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
    threads_.clear();
  }

 private:
  static constexpr size_t kMaxQueued = 256;
  void loop() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      auto task = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }
  size_t count_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace orchard::server
