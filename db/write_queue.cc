// WriteQueue: see write_queue.h. The hard parts: flush() waits on a ticket
// (the count of batches posted before it), not on an empty queue, so a
// steady stream of posts cannot starve it; and the destructor drains the
// queue before it joins, so nothing posted is dropped.
#include "db/write_queue.h"

#include <future>
#include <utility>

namespace orchard::db {

WriteQueue::WriteQueue(Database& database) : database_(database), thread_([this] { run(); }) {}

WriteQueue::~WriteQueue() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void WriteQueue::post(Batch&& batch, Done done) {
  {
    std::lock_guard lock(mu_);
    items_.push_back(Item{std::move(batch), std::move(done)});
    ++posted_;
  }
  cv_.notify_one();
}

Result<void> WriteQueue::write(Batch&& batch) {
  std::promise<Result<void>> result;
  std::future<Result<void>> f = result.get_future();
  post(std::move(batch), [&result](const Result<void>& r) { result.set_value(r); });
  return f.get();
}

void WriteQueue::flush() {
  std::unique_lock lock(mu_);
  const uint64_t ticket = posted_;
  idleCv_.wait(lock, [&] { return applied_ >= ticket; });
}

uint64_t WriteQueue::applied() const {
  std::lock_guard lock(mu_);
  return applied_;
}

void WriteQueue::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !items_.empty(); });
    if (items_.empty()) return;  // stop_ and drained
    Item item = std::move(items_.front());
    items_.pop_front();
    lock.unlock();
    Result<void> r = database_.write(std::move(item.batch));
    if (item.done) item.done(r);
    lock.lock();
    ++applied_;
    idleCv_.notify_all();
  }
}

}  // namespace orchard::db
