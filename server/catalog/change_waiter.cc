// ChangeWaiter (see change_waiter.h). Hard part: the tasks run outside the
// waiter's lock (a task posts to a loop and may take its time), and a
// change written between the check and the sleep is not missed: wake()
// sets a flag under the lock that the sleep's predicate reads.
#include "server/catalog/change_waiter.h"

#include <algorithm>

#include "catalog/catalog.h"

namespace orchard::server {

ChangeWaiter::ChangeWaiter(const catalog::Catalog* catalog) : catalog_(catalog) {
  thread_ = std::thread([this] { run(); });
}

ChangeWaiter::~ChangeWaiter() { stop(); }

bool ChangeWaiter::enqueue(uint64_t since, Clock::time_point deadline, std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || entries_.size() >= kMaxWaiting) return false;
    entries_.push_back(Entry{since, deadline, std::move(task)});
    woken_ = true;  // the thread looks at the new entry's deadline
  }
  cv_.notify_one();
  return true;
}

void ChangeWaiter::wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_one();
}

size_t ChangeWaiter::waiting() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void ChangeWaiter::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void ChangeWaiter::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    const uint64_t last = catalog_->lastChange();
    const auto now = Clock::now();
    std::vector<std::function<void()>> ready;
    auto due = Clock::time_point::max();
    for (size_t i = 0; i < entries_.size();) {
      Entry& e = entries_[i];
      if (stopping_ || last > e.since || e.deadline <= now) {
        ready.push_back(std::move(e.task));
        entries_[i] = std::move(entries_.back());
        entries_.pop_back();
        continue;
      }
      due = std::min(due, e.deadline);
      ++i;
    }
    if (!ready.empty()) {
      lock.unlock();
      for (auto& t : ready) t();
      lock.lock();
      continue;  // look again: changes may have come meanwhile
    }
    if (stopping_) return;
    woken_ = false;
    if (due == Clock::time_point::max()) cv_.wait(lock, [&] { return woken_ || stopping_; });
    else cv_.wait_until(lock, due, [&] { return woken_ || stopping_; });
  }
}

}  // namespace orchard::server
