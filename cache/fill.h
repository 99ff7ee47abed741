// Fill: one origin response being written to disk while any number of
// readers stream it (read-while-write), fetched as one or more byte runs.
//
// Lifecycle:
//
//   Pending ──begin()──▶ Streaming ──last block written──▶ Complete
//      │  \                  │
//      │   revalidated()──▶ Revalidated   (304: the stored object is fresh again)
//      └──── fail() ─────────┴──── fail() ──▶ Failed
//
// - Pending: the origin has not answered yet; readers wait for the head.
// - Streaming: head known. The body is tracked in kBlockSize blocks; bytes
//   become readable as soon as a fetcher writes them (readable()).
// - Complete: every byte is on disk and the length matched; a shared,
//   cacheable fill has been committed to the Store *before* this state is
//   published, so a reader that misses the table finds the store.
// - Revalidated: a conditional request got 304 and the stored object was
//   refreshed; readers serve it from the store.
// - Failed: the origin broke or changed; readers end their responses without
//   a clean end of message. Blocks already durable stay
//   recorded (Partial) so that the next request resumes instead of starting
//   over, unless the object changed at the origin.
//
// Fetchers: each fetcher writes one contiguous run [start, end) in order.
// The first one starts where the first reader needs bytes (0, or the block
// of a Range far into the object). A reader that needs bytes no fetcher will
// bring soon asks need(), which starts a new fetcher at that block and
// shortens the run of the fetcher that would have reached it. When a fetcher
// reaches its end, fetcherDone() hands it the next missing run, so the rest
// of the object keeps filling behind the readers. Writes from several
// fetchers (on different loops) touch disjoint bytes; bookkeeping is under
// mu_.
//
// A shared fill lives in the FillTable under its key so that concurrent
// misses attach to it instead of fetching again; it belongs to the table,
// not to the first client (a reader leaving never stops it). A private
// fill (pass-through responses) has one reader and is cancelled by its
// writer when that reader leaves.
//
// A store that cannot be written never fails a fill: when the backing file
// cannot be created (begin()), a write into it fails (write() returns the
// error; the writer calls startRelay()), or a checkpoint cannot make its
// blocks durable (storeFailed()), the fill turns into a pass-through: the
// rest of the body reaches the readers through the relay window in memory
// and nothing is stored. Every such failure is reported to the store's
// health() (Degraded, counted, logged once per interval).
// Block checksums: a shared cacheable fill records an XXH3-64 of each block
// (ObjectMeta::sums) once the block is complete. A block may be completed by
// two fetchers (a cold range starts at the exact byte asked, mid-block), so
// the checksum is not streamed from the writes: sumBlocks() reads each newly
// completed block back from the file (the page cache, just written) at the
// next checkpoint (every 8 MiB or second, off the loops) and at complete().
// A Partial record lists only blocks with a checksum, so a resumed fill keeps
// them (adopt()).
//
// Readers follow STYLE pattern 3: look at snapshot()/readable(); if there is
// nothing new, waitIfUnchanged() either says "something changed, look again"
// or registers a one-shot wake-up posted to the reader's executor (pattern
// 2: waiters are collected under the lock and posted after it).
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
  enum class State : uint8_t { Pending, Streaming, Complete, Failed, Revalidated };
  static const char* stateName(State s);

  static constexpr uint32_t kBlockSize = 1u << 20;
  static_assert(kBlockSize == kChecksumBlockSize, "a fill's blocks are the store's checksummed blocks");
  // A reader whose offset lies this close ahead of a running fetcher waits
  // for it instead of starting another origin request.
  static constexpr uint64_t kLookahead = 4ull << 20;
  // No object longer than this is stored, whatever the caller asks (its
  // block map would be 2 MiB); callers apply storage.max_object_size first.
  static constexpr uint64_t kMaxStoredLength = 16ull << 40;

  struct Snapshot {
    State state = State::Pending;
    uint64_t version = 0;    // changes on every publish (waitIfUnchanged compares it)
    uint64_t committed = 0;  // bytes readable contiguously from offset 0
    bool hasHead = false;    // begin() ran: head() is readable
    bool cacheable = false;  // the object will be stored
    bool shareable = false;  // other clients may be given this answer, stored or not
    std::optional<uint64_t> length;  // body length, once known
    Error error{Errc::Io};   // valid when Failed
    bool purged = false;     // purge() ran: nothing will be stored
  };

  // A run for one fetcher to fetch, from `start` to wherever the fill tells
  // it to stop (write() accepting fewer bytes than offered).
  struct Fetch {
    uint32_t id = 0;
    uint64_t start = 0;
  };

  // `store` may be null for a private fill without a store (tests).
  Fill(CacheKey key, Store* store, bool shared);
  ~Fill();
  Fill(const Fill&) = delete;
  Fill& operator=(const Fill&) = delete;

  const CacheKey& key() const { return key_; }
  bool shared() const { return shared_; }

  // ---- setting up (before the fill is visible to other threads) ----
  // Resumes a partial object: its head, length and durable blocks become
  // this fill's, and the fill starts in Streaming. Fails when its file is gone.
  Result<void> adopt(const ObjectMeta& partial);
  // A revalidation fill: the stored object it may refresh (for 304).
  void setRevalidating(std::shared_ptr<const ObjectMeta> stored) { revalidating_ = std::move(stored); }
  const std::shared_ptr<const ObjectMeta>& revalidating() const { return revalidating_; }

  // ---- writer side ----
  // The first fetcher to start (the leader calls this once): from `start`.
  Fetch firstFetch(uint64_t start);
  // The origin answered with a usable head: opens the backing file and
  // publishes the head. `length` is the full body length when known (from
  // Content-Length of a 200, or the total of a 206's Content-Range). An
  // uncacheable shared fill leaves the table at once so no new reader joins.
  // When the backing file cannot be created (an unwritable or failing store)
  // the fill still begins: it relays the body from memory from the start
  // (relaying() is true, snapshot().cacheable false) and stores nothing.
  // `storeKey`: where the object is stored when it differs from the fill's
  // key (a Vary variant of the key the fill was looked up by).
  // `shareable`: whether readers other than the first may be given this
  // answer (default: `cacheable`); an answer too large to store, or one the
  // store fails to take, is still shared by the readers that joined the fill
  // before its head, instead of each fetching its own.
  Result<void> begin(ObjectMeta head, bool cacheable, std::optional<uint64_t> length,
                     std::optional<CacheKey> storeKey = std::nullopt, std::optional<bool> shareable = std::nullopt);
  // The key the object is stored under (valid once hasHead).
  const CacheKey& storeKey() const { return storeKey_ ? *storeKey_ : key_; }
  // The origin ignored a range request and sends the body from byte 0:
  // the fetcher restarts at 0 (only valid before it wrote anything).
  void restartAtZero(uint32_t id);
  // Writes body bytes at the fetcher's cursor. Returns how many were taken:
  // fewer than n when the fetcher reached the end of its run (stop it and
  // call fetcherDone()). Disk errors are returned; the writer then fails.
  Result<size_t> write(uint32_t id, const char* data, size_t n);
  // The fetcher ended its run cleanly (its range is written, or the origin's
  // body ended). Says what the writer does next: fetch another run, or
  // complete() the fill when nothing is missing. A body that ended before
  // the declared length fails the fill. With an unknown length, the first
  // fetcher's clean end fixes the length.
  struct Next {
    std::optional<Fetch> fetch;
    bool complete = false;  // call complete() (off the loop when cacheable)
  };
  Next fetcherDone(uint32_t id);
  // Commits a shared cacheable fill (fdatasync + store record: blocks, keep
  // it off the event loops) and publishes Complete.
  void complete(int64_t nowSeconds);
  // Abandons a fetcher without failing the fill (its run goes back to the pool).
  void fetcherStopped(uint32_t id);
  // The fetcher's source broke mid-run (a parent died): its run ends where
  // its last whole block ends, and the rest goes to a new fetcher (from
  // that block boundary, or the first gap), to be fetched from elsewhere
  // with If-Range; an empty Next when other fetchers cover the rest.
  // nullopt for a fill that cannot resume (relaying, uncacheable, length
  // unknown, not streaming): the caller fails it.
  std::optional<Next> fetcherCut(uint32_t id);
  // The 304 path: the store was refreshed; readers serve from it.
  void revalidated();
  void fail(Error error);
  // The origin's object changed under a partial fill: fail and drop the blocks.
  void failChanged();

  // Disk full (ENOSPC), or any failed write into the store (EIO, EROFS,
  // EACCES, EPERM...), under fetcher `id`: the fill stops writing to disk and
  // relays the rest of the body through a bounded window in memory (a
  // pass-through for its readers). Its object file and any partial record
  // are dropped at once (the space goes back), nothing is ever stored, and
  // readers that fall further behind than the window end uncleanly.
  void startRelay(uint32_t id);
  bool relaying() const;
  // A checkpoint or the commit could not make the bytes durable: the writer
  // should startRelay() before writing more (the store is failing).
  bool storeFailed() const { return storeFailed_.load(std::memory_order_acquire); }

  // Single-run convenience (private fills, tests): one fetcher from 0.
  Result<void> append(const char* data, size_t n);
  void finish(int64_t nowSeconds);

  // Writes the durable block map as a Partial record: fdatasync()s the file
  // first. Blocks; call it off the event loops. No-op unless shared,
  // cacheable and still Streaming.
  void checkpoint(int64_t nowSeconds);
  // Bytes written since the last checkpoint (writers use it to decide when).
  uint64_t uncheckpointedBytes() const { return sinceCheckpoint_.load(std::memory_order_relaxed); }

  // ---- reader side: any thread ----
  Snapshot snapshot() const;
  // The head passed to begin(). Only valid once snapshot().hasHead.
  const ObjectMeta& head() const { return head_; }
  // Read-only descriptor of the backing file (valid while the Fill lives,
  // once hasHead). Readers pread() it; never close it.
  int fd() const { return readFd_; }
  // Bytes readable now starting at `offset` (contiguous).
  uint64_t readable(uint64_t offset) const;
  // Copies up to n readable bytes at `offset` into buf (from the file, or
  // from the relay window). 0 when nothing is readable there; an error when
  // the bytes are gone (a reader left behind by the relay window, or EIO).
  Result<size_t> read(uint64_t offset, char* buf, size_t n) const;
  // The same, for a reader with a cursor (below): it moves to where this
  // read leaves the reader.
  Result<size_t> read(uint64_t offset, char* buf, size_t n, uint32_t cursor) const;

  // Reader cursors: where each reader that registered one is. In relay
  // mode the writer never overwrites bytes the slowest of them has not
  // read: write() answers Busy instead, and waitForRoom() wakes the writer
  // when a read (or a reader leaving) makes room. This is the relay's
  // backpressure: a slow client slows the origin exchange of a pass-through
  // instead of losing bytes. A reader that registers must remove its cursor
  // when it leaves the fill, or the writer of a relaying fill would wait
  // for it for good (readers that stop reading are closed by the server's
  // send timeout, which removes theirs).
  uint32_t addCursor(uint64_t at);
  void removeCursor(uint32_t cursor);
  // Removes the cursor furthest behind when there are at least two (the
  // writer gave up waiting for it); true if one was removed.
  bool dropSlowestCursor();
  // Relay mode: if fewer than `n` bytes of room are free now, registers
  // `wake` (posted once on the next read that frees room, or any change of
  // the fill) and returns true; false: try the write again now.
  bool waitForRoom(size_t n, Executor* executor, Executor::Task wake);
  // A reader needs `offset` and readable(offset) is 0: returns a run that
  // the caller must start fetching (it becomes that fetcher's writer), or
  // nullopt when a fetcher will bring the bytes soon (then wait).
  std::optional<Fetch> need(uint64_t offset);

  // If nothing changed since `seen` (its version), registers `wake` to be
  // posted to `executor` on the next change and returns true. Otherwise (or
  // in a terminal state) returns false: the caller should look again.
  bool waitIfUnchanged(const Snapshot& seen, Executor* executor, Executor::Task wake);

  // ---- purge (POST /api/v1/purge): any thread, off the hot path ----
  // The object must not be served to new requests: the fill leaves the
  // table (the next request for the key starts a fill of its own), drops
  // its partial record and object file (an unlinked file stays readable
  // through the descriptors its readers use) and never commits. Its
  // readers keep reading to the end, as from a pass-through. A commit that
  // was already under way when the purge came is removed again once it
  // lands (complete()). Idempotent.
  void purge();
  bool purged() const;
  // Bytes of the body written so far (blocks done plus the fetchers' runs,
  // counted once), for the status page's fills in flight.
  uint64_t receivedBytes() const;

  // A mirror fill: one created by the box's own capped request (the
  // X-Orchard-Internal header with `capped`, server/apple/box_fetch.h). Its
  // drivers hold its origin bytes to apple.mirror_rate and stop it, recording
  // what is durable, once its last reader left (the mirror dropped its
  // connection: paused at the end of its window). A client that is not the
  // box joining it, or asking need() for another run of it, clears the flag
  // for good: the rest comes at origin speed and the fill is the table's
  // again. Only a flag here (cache/ knows no sockets); any thread.
  void setCapped(bool on) { capped_.store(on, std::memory_order_relaxed); }
  bool capped() const { return capped_.load(std::memory_order_relaxed); }

  // Readers interested in a private fill; the writer stops when it hits 0.
  void addReader() { readers_.fetch_add(1, std::memory_order_relaxed); }
  void removeReader() { readers_.fetch_sub(1, std::memory_order_relaxed); }
  int readers() const { return readers_.load(std::memory_order_relaxed); }
  int activeFetchers() const;

 private:
  friend class FillTable;
  struct Waiter {
    Executor* executor;
    Executor::Task task;
  };
  struct Fetcher {
    uint32_t id;
    uint64_t start;
    uint64_t cursor;
    uint64_t end;  // UINT64_MAX while the length is unknown
    bool active;
  };

  // All under mu_:
  Fetcher* fetcherLocked(uint32_t id);
  bool blockDoneLocked(uint64_t b) const { return b < done_.size() && done_[b]; }
  uint64_t blockCountLocked() const;
  void sizeBlocksLocked();
  void markBlocksLocked(const Fetcher& f, uint64_t from, uint64_t to);
  uint64_t runEndLocked(uint64_t start, uint32_t except) const;  // where a run from start must stop
  std::optional<uint64_t> firstGapLocked(uint64_t from) const;   // first block-aligned byte missing and unclaimed
  bool allDoneLocked() const;
  uint64_t readableLocked(uint64_t offset) const;
  Fetch addFetcherLocked(uint64_t start);
  std::vector<Waiter> bumpLocked();  // version++; takes the waiters (and the room waiter)
  uint64_t relayRoomLocked() const;  // free bytes of the relay window for the slowest cursor
  std::vector<Waiter> roomFreedLocked() const;  // the room waiter, when its room is there now
  // Switches to relay mode with `f` as the only writer, from its cursor on.
  void enterRelayLocked(Fetcher& f);
  // Reports a failed write into this fill's backing file to the store's health.
  void reportWriteFailure(const Error& e);

  void post(std::vector<Waiter> wake);
  void failInternal(Error error, bool dropBlocks);
  void leaveTable();
  ObjectMeta partialMetaLocked(int64_t now) const;
  // Checksums every block that is done and has none yet (preads readFd_).
  // Blocks; off the loops. Returns false when a read failed.
  bool sumBlocks();

  const CacheKey key_;
  Store* const store_;
  const bool shared_;
  std::atomic<FillTable*> table_{nullptr};  // set while registered in a table
  bool storeKeyNoted_ = false;  // the table counts storeKey_ as busy (guarded by its storeKeysMu_)
  std::shared_ptr<const ObjectMeta> revalidating_;

  // Written before the head is published, read-only after.
  ObjectMeta head_;
  std::optional<CacheKey> storeKey_;
  TempFile temp_;        // private fills
  ObjectFile object_;    // shared cacheable fills: the in-place object file
  int writeFd_ = -1;
  int readFd_ = -1;

  mutable std::mutex mu_;  // guards everything below and waiters_
  State state_ = State::Pending;
  uint64_t version_ = 0;
  bool hasHead_ = false;
  bool cacheable_ = false;
  bool shareable_ = false;
  std::optional<uint64_t> length_;
  Error error_{Errc::Io};
  std::vector<bool> done_;          // durable-on-page-cache blocks (length known)
  std::vector<uint64_t> sums_;      // XXH3-64 of block b, valid when summed_[b]
  std::vector<bool> summed_;        // sums_[b] computed (implies done_[b])
  std::vector<Fetcher> fetchers_;
  uint32_t nextFetcherId_ = 0;
  std::vector<Waiter> waiters_;
  bool committing_ = false;
  bool recorded_ = false;  // a Partial record names object_.gen: keep the file for a resume
  bool dropped_ = false;   // the blocks were dropped (object changed): never record them
  bool purged_ = false;    // purge(): never stored, out of the table

  // Relay mode (disk full or failing): bytes [relayStart_, relayEnd_) live
  // in relay_, a ring of relayCap_ bytes indexed by offset % relayCap_: at
  // most kRelayBytes, and no more than the rest of the body when its length
  // is known (a small object relayed costs its size, not 16 MiB). Allocated
  // uninitialised, so untouched pages of a big window cost nothing. Under mu_.
  static constexpr uint64_t kRelayBytes = 16ull << 20;
  bool relayMode_ = false;
  uint32_t relayFetcher_ = 0;
  uint64_t relayStart_ = 0;
  uint64_t relayEnd_ = 0;
  uint64_t relayCap_ = 0;
  std::unique_ptr<char[]> relay_;
  // Reader cursors (id, offset) and the writer waiting for room. Under mu_;
  // mutable because reads (const) move cursors.
  mutable std::vector<std::pair<uint32_t, uint64_t>> cursors_;
  uint32_t nextCursor_ = 0;
  mutable std::optional<Waiter> roomWaiter_;
  size_t roomWanted_ = 0;
  std::atomic<bool> storeFailed_{false};  // see storeFailed()

  std::mutex checkpointMu_;  // one checkpoint at a time
  std::mutex sumMu_;         // one sumBlocks() at a time (checkpoint and complete may overlap)
  std::atomic<uint64_t> sinceCheckpoint_{0};
  std::atomic<int> readers_{0};
  std::atomic<bool> capped_{false};  // see setCapped()
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
  // the table) between the caller's lookup and this call is not fetched
  // again. A created fill resumes the key's partial record when there is one.
  // `revalidate`: the caller found this stored object stale; a created fill
  // is a revalidation of it (and the store re-check is skipped).
  // `capped`: a created fill is a mirror fill (Fill::setCapped), set before
  // any other caller can join it.
  Acquired acquire(const CacheKey& key, std::shared_ptr<const ObjectMeta> revalidate = nullptr, bool capped = false);

  size_t inFlight() const;
  // A fill for this hash is in flight, or a fill in flight writes its
  // object under this hash (a variant, whose fill is keyed by the URI's
  // primary key): the evictor leaves it alone.
  bool busy(const Hash128& h) const;
  // Every fill in flight (for checkpoints at shutdown).
  std::vector<std::shared_ptr<Fill>> all() const;
  // Purges (Fill::purge()) every fill in flight whose key text `match`
  // accepts; returns how many. `match` runs under a shard lock: it must
  // only look at the text. The purges run after the locks are released.
  size_t purgeWhere(const std::function<bool(std::string_view)>& match);

  // A fill in flight as the status page shows it.
  struct Progress {
    std::string key;                 // the key text (the URL the fill fetches)
    uint64_t received = 0;           // Fill::receivedBytes()
    std::optional<uint64_t> length;  // the body length, once known
    int readers = 0;                 // clients reading it now
  };
  // At most `max` fills in flight, largest first (length, or bytes received
  // while the length is unknown). Shard locks are held only to copy the
  // table's pointers; each fill's own lock briefly for its numbers.
  std::vector<Progress> progress(size_t max) const;

 private:
  friend class Fill;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<Hash128, std::shared_ptr<Fill>, Hash128Hasher> fills;
  };
  static constexpr size_t kShards = 16;
  Shard& shardFor(const Hash128& h) { return shards_[h.lo % kShards]; }
  const Shard& shardFor(const Hash128& h) const { return shards_[h.lo % kShards]; }
  void remove(Fill* fill);
  void noteStoreKey(Fill* fill);  // begin(): the fill writes under storeKey(), not key()

  Store* const store_;
  Shard shards_[kShards];
  mutable std::mutex storeKeysMu_;
  std::unordered_map<Hash128, int, Hash128Hasher> storeKeys_;  // store hash -> fills writing it
};

}  // namespace orchard::cache
