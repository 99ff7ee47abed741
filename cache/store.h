// Store: objects as files under <dir>/objects, indexed in RocksDB. This is
// the contract; Store::open() gives the file store (cache/file_store.h),
// makeMemoryStore() one without durability (cache/memory_store.h), and
// tests/unit/cache/store_conformance_test.cc holds both to it.
//
// Layout under StoreOptions::dir:
//   index/                       the box's database (db/database.h); its column
//                                family "cache" maps Hash128 (16 bytes, big-endian
//                                hi then lo) -> encodeMeta(ObjectMeta), and
//                                "cache.summary" the same keys -> a summary read
//                                at start-up (cache/index.h); other concerns'
//                                families (catalog.*) live beside them
//   objects/ab/<hex>.<gen>       one file per object (hex = Hash128::hex()); a
//                                refetch writes a new generation, so a reader of
//                                the old one never sees its bytes change
//   tmp/<hex>.<n>                private (never stored) bodies; emptied at open()
//   lock                         flock held by the one daemon using this dir
//                                (cache/dir_lock.h; taken by the server before open())
//
// Lifecycle of a shared object:
//   createObject() -> bytes written in place (any order, in blocks) ->
//   recordPartial() from time to time (blocks known durable: resumable after
//   a crash) -> commitObject() (record becomes Complete: visible to lookup())
//   or dropObject(). A partial object is never visible to lookup().
// An object whose file is missing or whose size differs from its record is
// dropped when openObject() notices.
//
// Background thread (one per store, started by open(), stopped and joined by
// the destructor):
//   1. Reconciliation, once after open() (which does not wait for it):
//      walks objects/ab/ with readdir only (names are <hex>.<gen>: no
//      stat, no read), unlinks files that no Complete or Partial record names
//      (and files with malformed names), then drops the records whose file
//      the walk did not see. Files and records of generations made after the
//      walk started are never touched. reconciled() turns true at the end.
//   2. Eviction, when cacheLimit > 0: usage (bytes of complete objects +
//      durable bytes of partial ones) is kept between the watermarks below by
//      the S3-FIFO policy (cache/evictor.h). It runs when a commit or record
//      pushes usage over kHighWatermarkPercent, on requestEviction(), and
//      every second; it evicts until usage is under kLowWatermarkPercent. An
//      object with a reader pin (openForRead()) or for which the busy check
//      says a fill is in flight is never evicted. lookup() never waits for it.
//   3. Scrub, every scrubIntervalMs when it is > 0 (the first one an interval
//      after open()): re-verifies every block of every complete object that
//      has checksums, at most scrubBytesPerSecond (sleeping between blocks,
//      evicting in between), and drops the objects that fail.
//
// Block verification: a complete object with checksums (ObjectMeta::sums)
// carries a VerifiedBlocks in its published entry. ensureVerified() is the
// hit path's check before it sends bytes: one atomic load once every block
// of the generation passed, otherwise it preads and hashes the blocks the
// range covers that have not passed yet. A block that does not match its
// checksum drops the object (record, memory entry, file) and counts it in
// StoreStats::corruptObjects; the caller treats the object as a miss.
// Objects from records without checksums (before the upgrade) are served
// unverified.
//
// Durability (the contract every caller may rely on): the in-memory state
// is the truth of the running process, and every mutating call has changed
// it when it returns. The records go to the index (RocksDB, the "cache"
// family of the box's database, db/database.h) through one writer thread,
// in the order the calls made them per key, so no call waits for RocksDB
// while holding a lock that a hit or a loop thread takes:
//   - commitObject() and recordPartial() wait for their record (they run on
//     worker threads, off the loops) and return its failure: a committed
//     object whose record failed is dropped again; a partial stays in
//     memory and the fill drops it. A record they returned ok() for is in
//     RocksDB's WAL.
//   - refresh(), putStub(), remove(), dropObject() and the drops of a bad
//     object found by a hit (openObject(), ensureVerified()) do not wait:
//     the server calls them on its event loops. Their record write fails
//     only into health() (counted, logged); the memory change stays.
//   - the destructor applies every queued record before it returns.
// WAL writes are not fsynced: a crash of the process keeps every record
// written, and loses the few still queued (milliseconds' worth: a refresh
// is redone by the next revalidation, a lost stub by the next fill, a lost
// remove lets the removed object come back after the restart, a lost drop
// of a bad object is caught again by its size or checksum). A power cut
// may also lose the last WAL writes; objects are re-fetched.
//
// Thread safety: every method may be called from any thread. lookup() of
// the file store keeps a compact entry per object in memory and reads the
// full record of an object it has not served lately from RocksDB (a point
// read, microseconds from its block cache; cache/file_store.h, "Memory"):
// it never writes to RocksDB.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cache/key.h"
#include "cache/object_meta.h"
#include "cache/store_health.h"
#include "common/result.h"

namespace orchard::db {
class Database;
}

namespace orchard::cache {

struct StoreOptions {
  std::string dir;            // created if missing
  uint64_t cacheLimit = 0;    // bytes; 0 = unlimited (no eviction)
  int64_t scrubIntervalMs = 0;  // background re-verification of every object; 0 = never
  uint64_t scrubBytesPerSecond = 64ull << 20;  // the scrub's read rate cap; 0 = uncapped (tests)
};

// Eviction starts when usage exceeds this share of cacheLimit: the 5 % of
// headroom absorbs the fills that land between two evictor passes (1 s).
inline constexpr unsigned kHighWatermarkPercent = 95;
// and stops once usage is below this one: evicting 5 % at a time keeps the
// evictor from waking for every new object.
inline constexpr unsigned kLowWatermarkPercent = 90;

// A private (never stored) body's file, from createTemp(). Owns its fd:
// closes it in the destructor; abandon() (or the next open()) unlinks it.
class TempFile {
 public:
  TempFile() = default;
  TempFile(int fd, std::string path, Hash128 hash) : fd_(fd), path_(std::move(path)), hash_(hash) {}
  TempFile(TempFile&& o) noexcept;
  TempFile& operator=(TempFile&& o) noexcept;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  const Hash128& hash() const { return hash_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  std::string path_;
  Hash128 hash_;
};

struct StoreStats {
  uint64_t objects = 0;       // complete objects
  uint64_t bytes = 0;         // bytes of complete objects
  uint64_t partials = 0;      // partial (resumable) objects
  uint64_t partialBytes = 0;  // bytes of their durable blocks
  uint64_t evictions = 0;     // objects (complete or partial) evicted since open()
  uint64_t evictedBytes = 0;  // their bytes (as counted in bytes/partialBytes)
  uint64_t corruptObjects = 0;  // objects dropped because a block failed its checksum (hit or scrub)
  uint64_t scrubPasses = 0;     // scrub passes finished since open()
};

// A stored object opened for reading. While `pin` (or a copy) lives, the
// evictor leaves the object alone; drop the pin when the response is done.
// The caller closes fd.
struct OpenObject {
  int fd = -1;
  std::shared_ptr<void> pin;
};

// An in-place object file for a shared fill.
struct ObjectFile {
  int fd = -1;       // O_RDWR; owned by the caller
  uint64_t gen = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Opens (creating if needed) the store at options.dir, removes leftover
  // temp files and loads the index into memory. The index is the "cache"
  // family of `database` (the box's one database, shared with other
  // concerns, kept alive by the store while it lives); without one, open()
  // opens it itself with openStoreDatabase(options.dir). A failure at start
  // is also logged at error level naming the path (a directory it cannot
  // make, an index it cannot open, with the ways to recover).
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options,
                                             std::shared_ptr<db::Database> database = nullptr);

  // The complete object stored under this key, or nullptr. Compares the full
  // key text. No disk access.
  virtual std::shared_ptr<const ObjectMeta> lookup(const CacheKey& key) const = 0;

  // Opens a stored object's file read-only and checks its size against
  // meta.size. On a missing file or a size mismatch the entry is removed
  // (index and memory) and NotFound/Corrupt is returned. Caller closes the fd.
  virtual Result<int> openObject(const CacheKey& key, const ObjectMeta& meta) = 0;
  // openObject() plus a pin: the object is not evicted while the returned
  // pin lives (it can still be replaced or removed explicitly; the open fd
  // keeps the bytes it had).
  virtual Result<OpenObject> openForRead(const CacheKey& key, const ObjectMeta& meta) = 0;
  // Checks the blocks of [offset, offset + length) of a complete object
  // against its checksums before they are sent: `meta` is the entry from
  // lookup(), `fd` its open file. Cheap when every block of the generation
  // has passed already (one atomic load); otherwise preads and hashes the
  // blocks not verified yet (blocks: call it where the hit path preads).
  // Corrupt: a block failed, the object is dropped (refetch it); another
  // error: the read failed (the object stays). Any thread.
  Result<void> ensureVerified(const CacheKey& key, const ObjectMeta& meta, int fd, uint64_t offset, uint64_t length) {
    if (!meta.verified || meta.verified->allVerified()) return ok();
    return verifyBlocks(key, meta, fd, offset, length);
  }
  // The slow half of ensureVerified().
  virtual Result<void> verifyBlocks(const CacheKey& key, const ObjectMeta& meta, int fd, uint64_t offset,
                                    uint64_t length) = 0;
  // One scrub pass now, on the calling thread (the background thread runs
  // them every scrubIntervalMs): returns how many corrupt objects it dropped.
  virtual uint64_t scrubNow() = 0;
  // Records a hit for the eviction policy. Cheap: a shared lock for a map
  // look-up and one relaxed atomic store; no RocksDB write.
  virtual void touch(const CacheKey& key) = 0;

  // ---- in-place objects (shared fills) ----
  // The partial record for this key, or nullptr. No disk access.
  virtual std::shared_ptr<const ObjectMeta> lookupPartial(const CacheKey& key) const = 0;
  // A new, empty object file generation for this key.
  virtual Result<ObjectFile> createObject(const CacheKey& key) = 0;
  // Opens the file of a partial record read-write to resume it. If the file
  // is gone the record is dropped and NotFound returned.
  virtual Result<int> reopenPartial(const CacheKey& key, const ObjectMeta& meta) = 0;
  // Records (or updates) a partial object: meta.kind must be Partial and
  // meta.gen name a file made by createObject(). The caller made the blocks
  // it lists durable first.
  virtual Result<void> recordPartial(const CacheKey& key, ObjectMeta meta) = 0;
  // Makes object file meta.gen the complete object for the key: checks the
  // file's size against meta.size (Corrupt if it differs; the file stays,
  // the caller's to drop), writes the Complete record (replacing any
  // partial or older record) and unlinks an older generation's file.
  // Invalid if meta.gen names no file made for this key. The caller made
  // the bytes durable first; meta.sums (with meta.blockSize) are its block
  // checksums, or empty (served unverified).
  virtual Result<void> commitObject(const CacheKey& key, ObjectMeta meta) = 0;
  // Removes object file `gen` and the key's partial record if it names it.
  virtual void dropObject(const CacheKey& key, uint64_t gen) = 0;
  // Stores a Vary stub (meta.kind == VaryStub, no file) under the key.
  virtual Result<void> putStub(const CacheKey& key, ObjectMeta meta) = 0;
  // Replaces the headers and times of a complete object after a 304
  // (same file, same size). NotFound if the object changed meanwhile.
  virtual Result<void> refresh(const CacheKey& key, const ObjectMeta& updated) = 0;

  // ---- private bodies ----
  // A new temp file for a body that will not be stored (O_RDWR|O_CLOEXEC);
  // its path may be empty (a store without a directory). Fills unlink it at
  // once and keep the fd.
  virtual Result<TempFile> createTemp(const CacheKey& key) = 0;

  // Unlinks a temp file that will not be committed.
  virtual void abandon(TempFile&& file) = 0;

  // Removes an object (file, index record, memory entry). NotFound if absent.
  virtual Result<void> remove(const CacheKey& key) = 0;

  virtual StoreStats stats() const = 0;

  // The key texts of every complete object, Vary stub and partial record
  // whose text `match` accepts (purge by host, purge all). The file store
  // scans its index in RocksDB from a consistent snapshot: it blocks for as
  // long as a scan of the records takes, so call it off the event loops
  // (the worker pool). A key removed meanwhile may still be listed (its
  // remove() then answers NotFound); a Vary stub written in the last
  // milliseconds (its record not yet applied) may be missing.
  virtual Result<std::vector<std::string>> keysWhere(const std::function<bool(std::string_view)>& match) const = 0;

  // ---- eviction and reconciliation ----
  // `busy(hash)` says whether a fill is in flight for that hash: such objects
  // (complete or partial) are never evicted. Called from the store's
  // background thread with no store lock held; it must be thread-safe and
  // must not call back into the store's mutating methods. Set it before
  // traffic. setBusyCheck(nullptr) is a barrier: once it returns, the old
  // check is never called again, so call it before destroying what the
  // check uses (the FillTable) if that dies before the store.
  virtual void setBusyCheck(std::function<bool(const Hash128&)> busy) = 0;
  // `unlinked(hash, gen, size)` is told of every complete object file the
  // store removed (eviction, remove(), an older generation replaced), so
  // that whoever caches descriptors closes theirs and the disk space is
  // freed at once. Called from the thread that removed it, possibly under a
  // key lock: it must only hand the news on (never call into the store).
  // setUnlinkListener(nullptr) is a barrier like setBusyCheck(nullptr).
  using UnlinkListener = std::function<void(const Hash128&, uint64_t gen, uint64_t size)>;
  virtual void setUnlinkListener(UnlinkListener unlinked) = 0;
  // A write failed with ENOSPC: wakes the evictor to free at least
  // bytesNeeded more than it would to reach the low watermark. Never blocks.
  virtual void requestEviction(uint64_t bytesNeeded) = 0;
  // True once the start-up reconciliation of files and records has finished.
  virtual bool reconciled() const = 0;
  // storage.cache_limit while running (SIGHUP): later commits and evictor
  // passes use the new limit; a lower one wakes the evictor. A store opened
  // without a limit (0) never evicts, whatever is set here. Any thread.
  virtual void setCacheLimit(uint64_t bytes) = 0;
  virtual uint64_t cacheLimit() const = 0;

  // ---- health ----
  // Whether store writes are failing (see store_health.h). The store reports
  // its own failed writes here; a fill reports failed writes into the file
  // the store gave it, naming it with objectFilePath().
  StoreHealth& health() { return health_; }
  const StoreHealth& health() const { return health_; }
  // The path of object file `gen` of this hash (for messages).
  virtual std::string objectFilePath(const Hash128& hash, uint64_t gen) const = 0;

 private:
  StoreHealth health_;
};

// Opens the box's database at <storageDir>/index with the cache family
// (creating storageDir if needed), logging at error level how to recover if
// it cannot. The server opens it once and passes it to Store::open() and
// the other concerns that keep their records in it.
// extraFamilies: the other concerns' families (the catalog's), created when missing.
Result<std::shared_ptr<db::Database>> openStoreDatabase(const std::string& storageDir,
                                                       const std::vector<std::string>& extraFamilies = {});

// `orchardd --repair-index`: runs the index repair (see repairIndex() in
// cache/index.h) on <storageDir>/index. The store must not be open.
Result<void> repairStoreIndex(const std::string& storageDir);

}  // namespace orchard::cache
