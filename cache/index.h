// Index: the durable record of the cache, and the only code that talks to
// RocksDB (the header keeps RocksDB out of everyone else's includes).
//
// Column families:
//   "default"  unused for now (RocksDB requires it)
//   "cache"    Hash128 (16 bytes, big-endian hi then lo) -> encodeMeta() bytes
// A later "catalog" family and batched last-access updates go through
// IndexBatch, so that a multi-key change is one atomic WriteBatch.
//
// Writes use the WAL without fsync (sync=false): a crash of the process
// loses nothing, a power cut may lose the last writes, which the store
// tolerates (objects are re-fetched). Thread safety: every method may be
// called from any thread (RocksDB is internally synchronised). All calls
// block on disk: keep them off the event loops.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cache/key.h"
#include "common/result.h"

namespace orchard::cache {

struct IndexOptions {
  uint64_t blockCacheBytes = 32ull << 20;  // shared LRU block cache
  uint64_t writeBufferBytes = 16ull << 20; // per column family memtable
  int backgroundJobs = 2;                  // flushes + compactions (2-core boxes)
};

// 16-byte big-endian encoding of a hash, the "cache" family's key.
std::string encodeHashKey(const Hash128& h);
// False if `bytes` is not exactly 16 bytes.
bool decodeHashKey(std::string_view bytes, Hash128* out);

// A group of changes applied atomically by Index::write().
class IndexBatch {
 public:
  IndexBatch();
  ~IndexBatch();
  IndexBatch(IndexBatch&&) noexcept;
  IndexBatch& operator=(IndexBatch&&) noexcept;

  void put(const Hash128& hash, std::string_view bytes);
  void del(const Hash128& hash);
  size_t count() const;

 private:
  friend class Index;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs RocksDB's repair on the index at `path` (a damaged CURRENT,
// MANIFEST or table file): salvages what it can read and rewrites the
// metadata. Records it cannot salvage are lost; the store's start-up
// reconciliation then removes their object files. The store must not be
// open. NotFound if there is no index there.
Result<void> repairIndex(const std::string& path);

class Index {
 public:
  ~Index();  // closes the database
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  // Opens or creates the database at `path` (the directory's parent must exist).
  static Result<std::unique_ptr<Index>> open(const std::string& path, const IndexOptions& options = {});

  Result<void> put(const Hash128& hash, std::string_view bytes);
  Result<void> del(const Hash128& hash);
  Result<void> write(IndexBatch&& batch);

  // Calls fn for every record of the "cache" family, in key order, from a
  // consistent snapshot. Keys that are not 16 bytes are passed to onBadKey
  // (so the caller can delete them with delRaw) instead of fn.
  Result<void> forEach(const std::function<void(const Hash128&, std::string_view)>& fn,
                       const std::function<void(std::string_view)>& onBadKey = nullptr);
  // Deletes a record by its raw key (for malformed keys found by forEach).
  Result<void> delRaw(std::string_view key);

 private:
  struct Impl;
  explicit Index(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace orchard::cache
