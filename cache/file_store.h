// FileStore: the Store of objects as files and records in the Index, hits
// found in a compact in-memory index (see store.h for the layout, the object
// lifecycle and the durability contract). Private to cache/: the class is
// shared by the .cc files that implement its parts:
//   file_store.cc            the index core: load, publish, pins, every record change
//   file_store_lookup.cc     lookup: compact entry, record cache, RocksDB read
//   file_store_objects.cc    object files: names <hex>.<gen>, spare files, temp files
//   file_store_evict.cc      the background thread: S3-FIFO, watermarks, the busy check
//   file_store_reconcile.cc  the start-up walk of files against records
//   file_store_verify.cc     block verification on hits, and the scrub
//   file_store_keys.cc       key texts by a predicate (purge), from a scan of the index
//
// Memory (issue 9): per object only an IndexEntry (48 bytes in entries_,
// cache/compact_index.h: hash, size, generation, record rev, hit counter,
// reader pins, flags) and its S3-FIFO node; the full record is read from
// RocksDB on a hit and kept in records_ (cache/record_cache.h) while hot.
// A record published but not yet written is pinned in records_ until its
// write is applied, so a lookup never reads a RocksDB value older than the
// entry. Partial records (few: fills in flight) stay decoded in partial_.
//
// Locking:
//   mu_ (shared_mutex)   guards entries_, partial_, resumedAt_, nextRev_ and
//                        stats_; lookup() takes it shared, never across disk
//                        I/O (the RocksDB read of a record cache miss runs
//                        between two shared sections). records_ has its own
//                        shard locks, taken under mu_ (leaves).
//   keyLocks_[hash % N]  serialises the writers of one key (commit, remove,
//                        dropping a bad entry), so that the file, the queued
//                        index record and the map entry of a key always
//                        change in the same order. Taken before mu_. Never
//                        held while waiting for a RocksDB write.
//   bgMu_                guards the policy event queue and the background
//                        thread's wake-up flags; a leaf.
// Lock order: (a FillTable shard) -> keyLock -> mu_, and keyLock -> bgMu_;
// mu_ is never held while taking bgMu_. The busy check (which takes FillTable
// shard locks) is therefore only called with no store lock held.
// Order of a commit: file in place -> record queued -> map entry, so a record
// never names a file that is not there yet. A remove goes the other way:
// record queued -> file -> map entry.
//
// Records: every RocksDB write goes through writer_ (db/write_queue.h), one
// thread applying them in the order queued; they are queued under the key
// lock, so a key's records reach the database in the order of its memory
// changes. commitObject() and recordPartial() then wait for theirs with no
// lock held; the rest do not wait (store.h, "Durability").
//
// Maps: entries_ has an entry per hash with a Complete object, a Vary stub
// or a Partial record (IndexEntry::has says which); partial_ the decoded
// Partial records.
#pragma once

#include <atomic>
#include <array>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache/compact_index.h"
#include "cache/evictor.h"
#include "cache/index.h"
#include "cache/record_cache.h"
#include "cache/store.h"
#include "db/write_queue.h"

namespace orchard::cache {

inline constexpr size_t kKeyLockCount = 64;
// How often the background thread looks at usage when nothing woke it.
inline constexpr std::chrono::milliseconds kEvictInterval{1000};
// A partial reopened for a resume is not evicted for this long: it covers
// the moment between reopenPartial() and the fill appearing in the
// FillTable, where the busy check cannot see it yet.
inline constexpr int64_t kResumeGuardMs = 30'000;
// The evictor gives up a pass after this many victims in a row it could not
// evict (re-added or pinned meanwhile); the next wake-up tries again.
inline constexpr int kMaxSkipsPerPass = 64;

// Seconds << 20 plus microseconds: a restart, even within the same second,
// starts above every generation the previous run made, unless that run made
// more than about one per microsecond of its life.
inline uint64_t initialGeneration() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return (static_cast<uint64_t>(ts.tv_sec) << 20) + static_cast<uint64_t>(ts.tv_nsec / 1000);
}

inline uint64_t percentOf(uint64_t total, unsigned pct) { return total / 100 * pct + total % 100 * pct / 100; }

inline int64_t steadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Records kept decoded beyond the pinned ones (about 1 KiB each).
inline constexpr size_t kRecordCacheEntries = 4096;

// A change of one hash's evictable bytes, queued for the background thread.
struct PolicyEvent {
  Hash128 hash;
  uint64_t bytes = 0;               // complete size + partial durable bytes
  bool present = false;             // false: the hash has nothing evictable left
};

// What a pin needs to outlive the store: the index and its lock.
struct IndexCore {
  std::shared_mutex mu;
  CompactIndex entries;
};

class FileStore final : public Store {
 public:
  FileStore(StoreOptions options, std::shared_ptr<db::Database> database);
  // Stops and joins the background thread, then applies every queued record.
  ~FileStore() override;

  Result<void> load();
  // Starts the background thread (reconciliation, then eviction). Called
  // once by Store::open() after load(), before anyone else sees the store.
  void start();

  std::shared_ptr<const ObjectMeta> lookup(const CacheKey& key) const override;
  Result<int> openObject(const CacheKey& key, const ObjectMeta& meta) override;
  Result<OpenObject> openForRead(const CacheKey& key, const ObjectMeta& meta) override;
  void touch(const CacheKey& key) override;
  std::shared_ptr<const ObjectMeta> lookupPartial(const CacheKey& key) const override;
  Result<ObjectFile> createObject(const CacheKey& key) override;
  Result<int> reopenPartial(const CacheKey& key, const ObjectMeta& meta) override;
  Result<void> recordPartial(const CacheKey& key, ObjectMeta meta) override;
  Result<void> commitObject(const CacheKey& key, ObjectMeta meta) override;
  Result<void> verifyBlocks(const CacheKey& key, const ObjectMeta& meta, int fd, uint64_t offset,
                            uint64_t length) override;
  uint64_t scrubNow() override { return scrubPass(false); }
  void dropObject(const CacheKey& key, uint64_t gen) override;
  Result<void> putStub(const CacheKey& key, ObjectMeta meta) override;
  Result<void> refresh(const CacheKey& key, const ObjectMeta& updated) override;
  Result<TempFile> createTemp(const CacheKey& key) override;
  void abandon(TempFile&& file) override;
  Result<void> remove(const CacheKey& key) override;
  StoreStats stats() const override;
  Result<std::vector<std::string>> keysWhere(const std::function<bool(std::string_view)>& match) const override;
  void setBusyCheck(std::function<bool(const Hash128&)> busy) override;
  void setUnlinkListener(UnlinkListener unlinked) override;
  void requestEviction(uint64_t bytesNeeded) override;
  void setCacheLimit(uint64_t bytes) override {
    if (options_.cacheLimit == 0) return;  // opened without a limit: no policy to evict by
    cacheLimit_.store(bytes, std::memory_order_relaxed);
    requestEviction(0);  // the evictor takes the new capacity on its next pass
  }
  uint64_t cacheLimit() const override { return cacheLimit_.load(std::memory_order_relaxed); }
  bool reconciled() const override { return reconciled_.load(std::memory_order_acquire); }
  std::string objectFilePath(const Hash128& hash, uint64_t gen) const override { return objectPath(hash, gen); }

 private:
  using BusyCheck = std::function<bool(const Hash128&)>;

  std::string objectDir(const std::string& hex) const { return objectsDir_ + "/" + hex.substr(0, 2); }
  std::string objectPath(const Hash128& h, uint64_t gen) const {
    std::string hex = h.hex();
    return objectDir(hex) + "/" + hex + "." + std::to_string(gen);
  }
  static uint64_t durableBytes(const ObjectMeta& m);
  // ---- the full record of an entry (file_store_lookup.cc) ----
  // The complete object or stub of `hash` as published now (no key text
  // check), from records_ or RocksDB; nullptr if none. Any thread, no store
  // lock held (a key lock may be).
  std::shared_ptr<const ObjectMeta> currentRecord(const Hash128& hash) const;
  // Publishes `meta` in records_ as rev `rev`, pinned until its write (the
  // caller queues it with done callback unpinning). Caller holds mu_ exclusive.
  void cacheRecordLocked(const Hash128& hash, std::shared_ptr<const ObjectMeta> meta, uint32_t rev);
  // Done callback for a pinned record's write.
  void recordWritten(const Hash128& hash) { records_.unpin(hash); }
  // Block `block` of generation `gen` failed its checksum: drops the entry
  // if it still names that generation, and counts it. Returns whether it did.
  bool dropCorrupt(const Hash128& hash, uint64_t gen, const std::string& keyText, uint64_t block, const char* who);
  // Verifies every block of each complete object with checksums; drops the
  // ones that fail. Rate-limited (scrubBytesPerSecond) and evicting in
  // between when run by the background thread. Returns the objects dropped.
  uint64_t scrubPass(bool background);
  // Publishes `published` as the complete entry or stub (index, record
  // cache pinned until the record queued just before is written, stats);
  // unlinks the file of the generation it replaces. Caller holds keyLock.
  // Returns the entry's new rev.
  uint32_t publishLocked(const Hash128& hash, std::shared_ptr<const ObjectMeta> published);
  // Sets what the entry has; 0 erases it (e is invalid after). Caller holds mu_ exclusive.
  void setHasLocked(IndexEntry* e, uint8_t has);
  // How a removal counts in stats_.evictions / evictedBytes (updated in the
  // same critical section as the maps, so stats() is always consistent).
  enum class Tally : uint8_t { None, Bytes, Eviction };
  void erasePartialLocked(const Hash128& hash, Tally tally = Tally::None);
  std::mutex& keyLock(const Hash128& h) { return keyLocks_[h.lo % kKeyLockCount]; }
  // ---- records (file_store.cc) ----
  // Queues the key's record (nullptr: its deletion) without waiting; a
  // failure is reported to health(). pinned: the record is pinned in
  // records_ by the publish that follows (unpinned when written). Caller
  // holds keyLock.
  void postRecord(const Hash128& hash, const std::string* record, bool pinned = false);
  // Queues the record and returns its result to wait for once the key lock
  // is released. pinned: as postRecord(). Caller holds keyLock.
  std::future<Result<void>> submitRecord(const Hash128& hash, const std::string& record, bool pinned);
  std::string indexPath() const { return options_.dir + "/index"; }
  // Reports a failed store write to health() and returns it.
  Error writeFailed(Error e, const std::string& path) {
    health().writeFailed(e, path, steadyMs());
    return e;
  }

  // Opens the object file and checks its size. Returns the fd, or the errno
  // of the failed call (-1 with *sizeMismatch set when the size differs).
  int openChecked(const Hash128& h, uint64_t gen, uint64_t size, int* err, bool* sizeMismatch) const;
  // Drops the entry for `hash` (record, file, memory). Caller holds keyLock.
  Result<void> dropLocked(const Hash128& hash, Tally tally = Tally::None);
  // Drops the partial record of `hash` if it names `gen`, and file `gen`
  // unless a complete record names it. Caller holds keyLock.
  void dropPartialLocked(const Hash128& hash, uint64_t gen, Tally tally = Tally::None);
  // Brings state_ and the eviction policy in line with the hash's current
  // complete and partial objects. Ends every change of them. Caller holds
  // keyLock (so that one hash's events are queued in the order of its changes).
  void syncLocked(const Hash128& hash);
  uint64_t usage() const;

  // ---- background thread ----
  void run();
  void buildPolicy();
  void drainEvents();
  // One eviction pass: evicts until usage is under the low watermark (minus
  // what requestEviction() asked for), if it is over the high one or asked.
  void evictPass();
  // Evicts `hash` (chosen by the policy) unless it changed or was pinned
  // since. Returns whether it did.
  bool evictOne(const Hash128& hash);
  // Evicts the complete and partial objects of `hash` (counted in stats_);
  // false if it had neither. Caller holds keyLock.
  bool evictLocked(const Hash128& hash);
  // Readers or a recent resume hold the entry (not the busy check).
  bool pinnedNow(const Hash128& hash) const;
  // Calls the busy check (false if none) under busyMu_, so that
  // setBusyCheck(nullptr) is a barrier. Call with no store lock held.
  bool busyNow(const Hash128& hash) const;
  void tellUnlinked(const Hash128& hash, uint64_t gen, uint64_t size) const;
  mutable std::mutex unlinkMu_;  // guards unlinked_; held across its calls (the barrier)
  UnlinkListener unlinked_;
  void reconcile();
  // Runs an eviction pass if one is due (woken, or a second went by); lets
  // a long reconciliation walk keep the disk in bounds.
  void maybeEvict();

  // The policy's view of the hit counters in entries_ (background thread).
  struct Counters final : HitCounters {
    explicit Counters(IndexCore& core) : core_(core) {}
    uint8_t get(const Hash128& hash) override;
    void set(const Hash128& hash, uint8_t value) override;
    IndexCore& core_;
  };

  const StoreOptions options_;
  const std::string objectsDir_;
  const std::string tmpDir_;
  Index index_;

  // Shared with the reader pins, which may outlive the store.
  const std::shared_ptr<IndexCore> core_ = std::make_shared<IndexCore>();
  std::shared_mutex& mu_ = core_->mu;
  CompactIndex& entries_ = core_->entries;                                                 // guarded by mu_
  std::unordered_map<Hash128, std::shared_ptr<const ObjectMeta>, Hash128Hasher> partial_;  // guarded by mu_
  std::unordered_map<Hash128, int64_t, Hash128Hasher> resumedAt_;  // guarded by mu_: steadyMs() of a partial's last reopenPartial()
  uint32_t nextRev_ = 1;                                           // guarded by mu_: IndexEntry::rev of the next publish
  StoreStats stats_;                                                                       // guarded by mu_
  mutable RecordCache records_{kRecordCacheEntries};
  Counters counters_{*core_};

  std::array<std::mutex, kKeyLockCount> keyLocks_;
  std::atomic<uint64_t> tempCounter_{0};
  // Object file generations: start from the wall clock so that generations
  // keep growing across restarts (O_EXCL guards against any reuse); load()
  // also moves it past every generation the index names. Reconciliation
  // relies on it: files of generations from before open() are judged,
  // newer ones never.
  std::atomic<uint64_t> genCounter_{initialGeneration()};

  // Background thread. bgMu_ guards events_, wake_, stop_ and need_.
  std::mutex bgMu_;
  std::condition_variable bgCv_;
  std::vector<PolicyEvent> events_;
  bool wake_ = false;
  bool stop_ = false;
  uint64_t need_ = 0;                    // bytes asked for by requestEviction()
  std::atomic<bool> stopping_{false};    // stop_, readable without bgMu_ by long loops
  std::thread bg_;

  // Empty files made ahead of time in tmp/ (see refillSpares()).
  struct Spare {
    int fd = -1;
    std::string path;
  };
  static constexpr size_t kSpares = 8;
  bool takeSpare(Spare* out);
  void refillSpares();
  std::mutex spareMu_;
  std::vector<Spare> spares_;  // guarded by spareMu_
  bool spareWanted_ = false;   // guarded by bgMu_
  S3Fifo policy_;                        // background thread only
  std::atomic<uint64_t> cacheLimit_{0};  // options_.cacheLimit, then setCacheLimit()
  int64_t lastPassMs_ = 0;               // background thread only
  int64_t lastScrubMs_ = 0;              // background thread only: when the last scrub pass ended
  // Generations below this existed when the store opened: the only ones
  // reconciliation may remove (set by start(), read by the thread).
  uint64_t reconcileBelowGen_ = 0;
  std::atomic<bool> reconciled_{false};

  // The record writer. Declared after index_ and what its callbacks use, so
  // destroyed (and drained) before them.
  db::WriteQueue writer_{index_.database()};

  mutable std::mutex busyMu_;  // held while busy_ is called; order: busyMu_ -> FillTable shard -> keyLock -> mu_
  BusyCheck busy_;             // guarded by busyMu_
};

}  // namespace orchard::cache
