// Store: objects as files under <dir>/objects, indexed in RocksDB.
//
// Layout under StoreOptions::dir:
//   index/                       RocksDB; column family "cache" maps Hash128 (16
//                                bytes, big-endian hi then lo) -> encodeMeta(ObjectMeta)
//   objects/ab/cd/<hex>.<gen>    one file per object (hex = Hash128::hex()); a
//                                refetch writes a new generation, so a reader of
//                                the old one never sees its bytes change
//   tmp/<hex>.<n>                private (never stored) bodies; emptied at open()
//
// Lifecycle of a shared object:
//   createObject() -> bytes written in place (any order, in blocks) ->
//   recordPartial() from time to time (blocks known durable: resumable after
//   a crash) -> commitObject() (record becomes Complete: visible to lookup())
//   or dropObject(). A partial object is never visible to lookup().
// An object whose file is missing or whose size differs from its record is
// dropped when openObject() notices.
//
// Thread safety: every method may be called from any thread. lookup() never
// touches RocksDB (an in-memory map loaded at open() serves hits).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "cache/key.h"
#include "cache/object_meta.h"
#include "common/result.h"

namespace orchard::cache {

struct StoreOptions {
  std::string dir;            // created if missing
  uint64_t cacheLimit = 0;    // bytes; 0 = unlimited (eviction comes later)
};

// A file being filled. Owns its fd: closes it in the destructor, and an
// un-committed temp file is unlinked by abandon() (or by the next open()).
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
  // temp files and loads the index into memory.
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options);

  // The complete object stored under this key, or nullptr. Compares the full
  // key text. No disk access.
  virtual std::shared_ptr<const ObjectMeta> lookup(const CacheKey& key) const = 0;

  // Opens a stored object's file read-only and checks its size against
  // meta.size. On a missing file or a size mismatch the entry is removed
  // (index and memory) and NotFound/Corrupt is returned. Caller closes the fd.
  virtual Result<int> openObject(const CacheKey& key, const ObjectMeta& meta) = 0;

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
  // file's size against meta.size, writes the Complete record (replacing any
  // partial or older record) and unlinks an older generation's file.
  virtual Result<void> commitObject(const CacheKey& key, ObjectMeta meta) = 0;
  // Removes object file `gen` and the key's partial record if it names it.
  virtual void dropObject(const CacheKey& key, uint64_t gen) = 0;
  // Stores a Vary stub (meta.kind == VaryStub, no file) under the key.
  virtual Result<void> putStub(const CacheKey& key, ObjectMeta meta) = 0;
  // Replaces the headers and times of a complete object after a 304
  // (same file, same size). NotFound if the object changed meanwhile.
  virtual Result<void> refresh(const CacheKey& key, const ObjectMeta& updated) = 0;

  // ---- private bodies ----
  // A new temp file for filling this key (O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC).
  virtual Result<TempFile> createTemp(const CacheKey& key) = 0;

  // Makes a filled temp file the stored object for `key`. meta.size must equal
  // the file's size (checked with fstat: Corrupt if not). Replaces any older
  // object for the key atomically (rename), then writes the index record,
  // then publishes the in-memory entry.
  virtual Result<void> commit(const CacheKey& key, TempFile&& file, ObjectMeta meta) = 0;

  // Unlinks a temp file that will not be committed.
  virtual void abandon(TempFile&& file) = 0;

  // Removes an object (file, index record, memory entry). NotFound if absent.
  virtual Result<void> remove(const CacheKey& key) = 0;

  virtual StoreStats stats() const = 0;
};

}  // namespace orchard::cache
