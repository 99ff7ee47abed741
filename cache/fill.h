// Fill: one origin response being written to disk while any number of
// readers stream it (read-while-write).
//
// Lifecycle (one writer thread drives it, readers live on any thread):
//
//   Pending ──begin()──▶ Streaming ──finish()──▶ Complete
//      │                     │
//      └──── fail() ─────────┴──── fail() ──▶ Failed
//
// - Pending: the origin has not answered yet; readers wait for the head.
// - Streaming: head known; body bytes [0, committed) are on disk in the
//   fill's file and readable through fd().
// - Complete: every byte is on disk and the length matched; a shared,
//   cacheable fill has been committed to the Store *before* this state
//   is published, so a reader that misses the table finds the store.
// - Failed: the origin broke or the disk failed; readers must end their
//   responses without a clean end of message. Nothing is stored.
//
// A shared fill lives in the FillTable under its key so that concurrent
// misses attach to it instead of fetching again; it belongs to the table,
// not to the first client (a reader leaving never stops it). A private
// fill (pass-through responses, uncacheable answers) has exactly one reader
// and is abandoned by the writer when that reader leaves.
//
// Readers follow STYLE pattern 3: look at snapshot(); if there is nothing
// new, waitIfUnchanged() either says "something changed, look again" or
// registers a one-shot wake-up posted to the reader's executor (pattern 2:
// waiters are collected under the lock and posted after it).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "cache/key.h"
#include "cache/object_meta.h"
#include "cache/store.h"
#include "common/executor.h"
#include "common/result.h"

namespace orchard::cache {

class FillTable;

class Fill {
 public:
  enum class State : uint8_t { Pending, Streaming, Complete, Failed };
  static const char* stateName(State s);

  struct Snapshot {
    State state = State::Pending;
    uint64_t committed = 0;  // body bytes readable from fd()
    bool cacheable = false;  // set by begin(): the object will be stored
    bool hasHead = false;    // begin() ran: head() is readable
    std::optional<uint64_t> length;  // declared body length, if the origin gave one
    Error error{Errc::Io};   // valid when Failed
  };

  // `store` may be null for a private fill (then nothing is ever stored).
  Fill(CacheKey key, Store* store, bool shared);
  ~Fill();
  Fill(const Fill&) = delete;
  Fill& operator=(const Fill&) = delete;

  const CacheKey& key() const { return key_; }
  bool shared() const { return shared_; }

  // ---- writer side: one thread, in this order ----
  // The origin answered: opens the backing file and publishes the head.
  // `cacheable` says whether finish() will commit to the store; an
  // uncacheable shared fill leaves the table at once so that no new reader
  // joins it.
  Result<void> begin(ObjectMeta head, bool cacheable, std::optional<uint64_t> length);
  // Appends body bytes to the file and publishes them. Errors (ENOSPC, EIO)
  // leave the fill as it was; the writer then calls fail().
  Result<void> append(const char* data, size_t n);
  // The origin's body ended cleanly. Fails the fill instead when the byte
  // count does not match the declared length, or when the commit fails.
  void finish(int64_t nowSeconds);
  void fail(Error error);

  // ---- reader side: any thread ----
  Snapshot snapshot() const;
  // The head passed to begin(). Only valid once snapshot().state != Pending.
  const ObjectMeta& head() const { return head_; }
  // Read-only descriptor of the backing file (valid while the Fill lives,
  // once state != Pending). Readers pread() it; never close it.
  int fd() const { return readFd_; }

  // If state and committed still equal `seen`, registers `wake` to be posted
  // to `executor` once either changes, and returns true. Otherwise returns
  // false: the caller should look again. One-shot.
  bool waitIfUnchanged(const Snapshot& seen, Executor* executor, Executor::Task wake);

  // Readers interested in a private fill; the writer stops when it hits 0.
  void addReader() { readers_.fetch_add(1, std::memory_order_relaxed); }
  void removeReader() { readers_.fetch_sub(1, std::memory_order_relaxed); }
  int readers() const { return readers_.load(std::memory_order_relaxed); }

 private:
  friend class FillTable;
  struct Waiter {
    Executor* executor;
    Executor::Task task;
  };
  void publish(State state, uint64_t committed, std::optional<Error> error);  // under no lock
  void leaveTable();

  const CacheKey key_;
  Store* const store_;
  const bool shared_;
  FillTable* table_ = nullptr;  // set while registered in a table

  // Written by the writer before Streaming is published, read-only after.
  ObjectMeta head_;
  TempFile file_;
  int readFd_ = -1;
  std::optional<uint64_t> length_;
  bool cacheable_ = false;

  mutable std::mutex mu_;  // guards the fields below and waiters_
  State state_ = State::Pending;
  bool hasHead_ = false;
  uint64_t committed_ = 0;
  Error error_{Errc::Io};
  std::vector<Waiter> waiters_;

  uint64_t written_ = 0;  // writer-only cursor
  std::atomic<int> readers_{0};
};

// Fills in flight, by key. Lock-striped so loops rarely contend.
class FillTable {
 public:
  explicit FillTable(Store* store) : store_(store) {}
  ~FillTable();

  struct Acquired {
    std::shared_ptr<Fill> fill;  // null when the store already has the object
    bool created = false;        // true: caller is the leader and must drive the fill
  };
  // Joins the fill in flight for `key`, or creates one. Under the shard lock
  // it re-checks the store, so a fill that completed (committed, then left
  // the table) between the caller's lookup and this call is not fetched again.
  Acquired acquire(const CacheKey& key);

  size_t inFlight() const;

 private:
  friend class Fill;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<Hash128, std::shared_ptr<Fill>, Hash128Hasher> fills;
  };
  static constexpr size_t kShards = 16;
  Shard& shardFor(const Hash128& h) { return shards_[h.lo % kShards]; }
  void remove(Fill* fill);

  Store* const store_;
  Shard shards_[kShards];
};

}  // namespace orchard::cache
