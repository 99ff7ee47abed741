// Database: the box's one RocksDB database, and the only code that includes
// RocksDB headers (tests/layout_check.sh enforces it). Every concern keeps
// its records in a named column family of it: "cache" (the cache index,
// cache/index.h) now, "catalog.*" families later. One Batch may span
// families, so a change that touches two concerns is one atomic write.
//
// Lifecycle: open() once per process with the families the caller needs;
// families already in the database are opened too (RocksDB refuses an open
// that leaves one out), missing ones are created. The destructor flushes
// every family's memtable into a table file and closes the database: a
// repair (repair()) salvages table files, not the log records of families
// other than "default".
//
// Writes use the WAL without fsync (sync=false): a crash of the process
// loses nothing, a power cut may lose the last writes; each concern says
// what that costs it. Thread safety: every method may be called from any
// thread (RocksDB is internally synchronised). Every call may block on
// disk: keep them off the event loops (db/write_queue.h hands writes to a
// thread of their own). Every rocksdb::Status becomes an orchard::Error in
// one place (database.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace orchard::db {

struct Options {
  uint64_t blockCacheBytes = 32ull << 20;   // one LRU block cache shared by every family
  uint64_t writeBufferBytes = 16ull << 20;  // per family memtable
  int backgroundJobs = 2;                   // flushes + compactions (2-core boxes)
};

// A column family of an open Database: a small handle, valid while the
// Database lives. Compare with ==; the default-constructed one is invalid.
struct Family {
  uint32_t id = UINT32_MAX;
  bool valid() const { return id != UINT32_MAX; }
  bool operator==(const Family&) const = default;
};

// Changes applied atomically by Database::write(), in the order added; may
// span families. Holds copies of the keys and values.
class Batch {
 public:
  void put(Family family, std::string_view key, std::string_view value);
  void del(Family family, std::string_view key);
  size_t count() const { return ops_.size(); }
  bool empty() const { return ops_.empty(); }

  struct Op {
    Family family;
    bool del;
    std::string key;
    std::string value;
  };
  // The changes in order (the catalog's change feed copies the replicated
  // ones into its entry of the same batch).
  const std::vector<Op>& ops() const { return ops_; }

 private:
  friend class Database;
  std::vector<Op> ops_;
};

class Database {
 public:
  ~Database();  // flushes and closes
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Opens or creates the database at `path` (its parent must exist) with at
  // least the named families (created if missing). Corrupt, Io, ... from
  // RocksDB; Invalid for an empty or duplicate family name or "default".
  static Result<std::unique_ptr<Database>> open(const std::string& path, const std::vector<std::string>& families,
                                                const Options& options = {});

  const std::string& path() const { return path_; }
  // The handle of an open family; invalid if the database has none of that name.
  Family family(std::string_view name) const;
  // Every family open, "default" first.
  std::vector<std::string> familyNames() const;

  Result<void> put(Family family, std::string_view key, std::string_view value);
  Result<void> del(Family family, std::string_view key);
  // Deletes every key k of the family with from <= k < to (one range
  // tombstone: cheap however many keys it covers). Nothing when from >= to.
  Result<void> deleteRange(Family family, std::string_view from, std::string_view to);
  // The value under key, or nullopt.
  Result<std::optional<std::string>> get(Family family, std::string_view key) const;
  // durable: the write is fsynced to the WAL before this returns (a
  // publish acknowledged to a client must survive a power cut); otherwise
  // the default above (survives a process crash).
  Result<void> write(Batch&& batch, bool durable = false);
  // RocksDB's estimate of the keys in the family (0 if unknown): for sizing.
  uint64_t estimatedKeys(Family family) const;
  // Calls fn for every record of the family, in key order, from a
  // consistent snapshot (writes made meanwhile are not seen). Does not fill
  // the block cache: a full scan would evict useful blocks.
  Result<void> forEach(Family family, const std::function<void(std::string_view key, std::string_view value)>& fn) const;
  // Calls fn for records with key >= from, in key order, until fn returns
  // false (paging). Uses the block cache like point reads.
  Result<void> scanFrom(Family family, std::string_view from,
                        const std::function<bool(std::string_view key, std::string_view value)>& fn) const;
  // The greatest key of the family, or nullopt when it is empty.
  Result<std::optional<std::string>> lastKey(Family family) const;

 private:
  struct Impl;
  Database(std::string path, std::unique_ptr<Impl> impl);
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

// Repairs the database at `path` (a damaged CURRENT, MANIFEST or table
// file) with at least these families: first points CURRENT at the newest
// MANIFEST if the database then opens (nothing lost), else runs RocksDB's
// repair, which salvages what it can read and rewrites the metadata. The
// database must not be open. NotFound if there is no database there.
Result<void> repair(const std::string& path, const std::vector<std::string>& families);

}  // namespace orchard::db
