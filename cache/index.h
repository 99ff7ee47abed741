// Index: the cache's typed view of its column family ("cache") in the box's
// one database (db/database.h): a record per hash, keyed by the hash's 16
// bytes (big-endian hi then lo), valued by encodeMeta() bytes. On-disk
// layout unchanged from the index's first release: <storage.dir>/index with
// family "cache" (and "default", unused).
//
// Changes to several keys go through IndexBatch (one atomic write), or are
// staged into a db::Batch that may span families (stagePut()/stageDel()).
// Thread safety: as db::Database: any thread, every call may block on disk.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/key.h"
#include "common/result.h"
#include "db/database.h"

namespace orchard::cache {

// The cache family's name in the box's database.
inline constexpr const char* kCacheFamily = "cache";

// 16-byte big-endian encoding of a hash, the "cache" family's key.
std::string encodeHashKey(const Hash128& h);
// False if `bytes` is not exactly 16 bytes.
bool decodeHashKey(std::string_view bytes, Hash128* out);

// A group of record changes applied atomically by Index::write().
class IndexBatch {
 public:
  void put(const Hash128& hash, std::string_view bytes) { ops_.push_back({false, hash, std::string(bytes)}); }
  void del(const Hash128& hash) { ops_.push_back({true, hash, {}}); }
  size_t count() const { return ops_.size(); }

 private:
  friend class Index;
  struct Op {
    bool del;
    Hash128 hash;
    std::string value;
  };
  std::vector<Op> ops_;
};

// Runs the database repair (db::repair()) on the index at `path`. Records it
// cannot salvage are lost; the store's start-up reconciliation then removes
// their object files. The store must not be open. NotFound if there is no
// index there.
Result<void> repairIndex(const std::string& path);

class Index {
 public:
  // A view of the "cache" family of `database`, which must have it.
  explicit Index(std::shared_ptr<db::Database> database);
  // Opens (or creates) a database of its own at `path` with the "cache"
  // family: for tools and tests that work on a closed store.
  static Result<std::unique_ptr<Index>> open(const std::string& path);

  db::Database& database() const { return *database_; }
  db::Family family() const { return family_; }

  Result<void> put(const Hash128& hash, std::string_view bytes);
  // The record of `hash`, or nullopt. A point read (bloom filter, then the
  // block cache or one block read): the file store's hit path on a record
  // it does not hold decoded.
  Result<std::optional<std::string>> get(const Hash128& hash) const;
  // RocksDB's estimate of the records held (for sizing tables at load).
  uint64_t estimatedCount() const;
  Result<void> del(const Hash128& hash);
  Result<void> write(IndexBatch&& batch);
  // Adds record changes to a batch that may carry other families' too.
  void stagePut(db::Batch& batch, const Hash128& hash, std::string_view bytes) const;
  void stageDel(db::Batch& batch, const Hash128& hash) const;
  void stage(db::Batch& batch, IndexBatch&& changes) const;

  // Calls fn for every record, in key order, from a consistent snapshot.
  // Keys that are not 16 bytes are passed to onBadKey (so the caller can
  // delete them with delRaw) instead of fn.
  Result<void> forEach(const std::function<void(const Hash128&, std::string_view)>& fn,
                       const std::function<void(std::string_view)>& onBadKey = nullptr) const;
  // Deletes a record by its raw key (for malformed keys found by forEach).
  Result<void> delRaw(std::string_view key);

 private:
  std::shared_ptr<db::Database> database_;
  db::Family family_;
};

}  // namespace orchard::cache
