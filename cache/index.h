// Index: the cache's typed view of its column families in the box's one
// database (db/database.h): a record per hash in "cache", keyed by the
// hash's 16 bytes (big-endian hi then lo), valued by encodeMeta() bytes; and
// beside it, in "cache.summary", the same key valued by a summary of about
// 16 bytes (kind, generation, size, last use: what the store's compact
// index needs), which start-up reads instead of the records (issue 9: a
// million summaries are 20 MB to scan, the records 400 MB).
//
// Every record change writes its summary in the same atomic batch (the
// summary is computed from the record bytes here, so no caller can forget
// it). A store from before summaries (written by an older release) has no
// "cache.summary" family or no marker in it: buildSummaries() makes them
// from a scan of the records and then writes the marker (the first start
// after the upgrade pays one full scan). A repair drops the marker (the two
// families may not have lost the same records). A database opened by a
// caller without the summary family works without summaries (full scans).
// An older release writing to a store after it was migrated would leave
// records without summaries (invisible): downgrading needs the marker
// removed (`orchardd --repair-index` does it).
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
#include "cache/object_meta.h"
#include "common/result.h"
#include "db/database.h"

namespace orchard::cache {

// The cache family's name in the box's database, and its summaries'.
inline constexpr const char* kCacheFamily = "cache";
inline constexpr const char* kSummaryFamily = "cache.summary";

// A record's summary ("cache.summary" value). Encoded as: u8 version (1),
// u8 kind (ObjectMeta::Kind, or 0xff: the record does not decode or its key
// does not hash to its index key), u8 flags (1: block checksums), varint
// gen, varint size, varint usedAt.
struct IndexSummary {
  bool valid = false;  // false: a bad record (dropped at load)
  ObjectMeta::Kind kind = ObjectMeta::Kind::Complete;
  bool sums = false;
  uint64_t gen = 0;
  uint64_t size = 0;
  uint32_t usedAt = 0;  // unix s: max(lastAccess, responseTime), clamped
};
std::string encodeSummary(const Hash128& hash, std::string_view record);
bool decodeSummary(std::string_view bytes, IndexSummary* out);

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

  // ---- summaries ----
  // Whether every record has its summary (the family is there and marked).
  bool hasSummaries() const;
  // Writes the summary of every record (a full scan) and the marker.
  // Returns how many it wrote; Unsupported without the summary family.
  Result<uint64_t> buildSummaries();
  // Calls fn for every summary, in key order, from a consistent snapshot;
  // malformed keys go to onBadKey (delete them with delRawSummary).
  Result<void> forEachSummary(const std::function<void(const Hash128&, const IndexSummary&)>& fn,
                              const std::function<void(std::string_view)>& onBadKey = nullptr) const;
  Result<void> delRawSummary(std::string_view key);
  // Removes the marker: the next open rebuilds the summaries.
  Result<void> dropSummaryMarker();

 private:
  std::shared_ptr<db::Database> database_;
  db::Family family_;
  db::Family summaryFamily_;  // invalid: a database opened without it
};

}  // namespace orchard::cache
