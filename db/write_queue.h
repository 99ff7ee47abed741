// WriteQueue: one thread that applies Batches to a Database in the order
// they were posted, so that a caller that must not block on disk (an event
// loop thread) can hand its write off and go on.
//
// Ordering: batches are applied one at a time, first posted first; a caller
// that posts under its own per-key lock therefore gets its key's writes in
// the order of its in-memory changes. write() posts and waits, so it is
// ordered with the posts before it.
// Lifecycle: the destructor applies everything already posted, then joins
// the thread; posting during or after destruction is a programming error.
// `done` callbacks run on the writer thread with no queue lock held; they
// must not post to the same queue and wait (write()) from inside.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "common/result.h"
#include "db/database.h"

namespace orchard::db {

class WriteQueue {
 public:
  using Done = std::function<void(const Result<void>&)>;

  explicit WriteQueue(Database& database);
  ~WriteQueue();
  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;

  // Queues the batch; never blocks on disk (one short lock). `done`, if
  // given, is called with the write's result on the writer thread.
  void post(Batch&& batch, Done done = nullptr);
  // Queues the batch and waits for its result (and for every batch posted
  // before it). Not from the writer thread.
  Result<void> write(Batch&& batch);
  // Waits until every batch posted before the call is applied.
  void flush();
  // Batches applied since construction (for tests).
  uint64_t applied() const;

 private:
  struct Item {
    Batch batch;
    Done done;
  };
  void run();

  Database& database_;
  mutable std::mutex mu_;
  std::condition_variable cv_;      // the writer waits for items or stop_
  std::condition_variable idleCv_;  // flush() waits for applied_ to reach its ticket
  std::deque<Item> items_;          // guarded by mu_
  uint64_t posted_ = 0;             // guarded by mu_
  uint64_t applied_ = 0;            // guarded by mu_
  bool stop_ = false;               // guarded by mu_
  std::thread thread_;
};

}  // namespace orchard::db
