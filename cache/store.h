// Store: objects as files under <dir>/objects, indexed in RocksDB.
//
// Layout under StoreOptions::dir:
//   index/                 RocksDB; column family "cache" maps Hash128 (16 bytes,
//                          big-endian hi then lo) -> encodeMeta(ObjectMeta)
//   objects/ab/cd/<hex>    one file per complete object (hex = Hash128::hex())
//   tmp/<hex>.<n>          fills in progress; removed at open()
//
// Lifecycle of an object: createTemp() -> bytes written by the caller through
// TempFile::fd -> commit() (fsync-free rename into objects/, then the index
// record, then the in-memory entry) or abandon() (unlink). Until commit() the
// object is invisible to lookup(). An object whose file is missing or whose
// size differs from its record is dropped when openObject() notices.
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
  uint64_t objects = 0;
  uint64_t bytes = 0;
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
