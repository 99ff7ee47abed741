// Store: objects as files, records in the Index, hits served from an
// in-memory map (see store.h for the layout and the object lifecycle).
//
// Locking:
//   mu_ (shared_mutex)   guards map_ and stats_; lookup() takes it shared,
//                        only for the map access, never across disk I/O.
//   keyLocks_[hash % N]  serialises the writers of one key (commit, remove,
//                        dropping a bad entry), so that the file rename, the
//                        index record and the map entry of a key always
//                        change in the same order. Taken before mu_.
// Order of a commit: file in place -> index record -> map entry, so a record
// never names a file that is not there yet. A remove goes the other way:
// index record -> file -> map entry.
//
// Maps: map_ holds Complete objects and Vary stubs (what lookup() serves),
// partial_ the resumable Partial records.
#include "cache/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <ctime>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "cache/file_util.h"
#include "cache/index.h"
#include "common/log.h"

namespace orchard::cache {

// ---- TempFile ----

TempFile::TempFile(TempFile&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)), hash_(o.hash_) { o.fd_ = -1; }

TempFile& TempFile::operator=(TempFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    path_ = std::move(o.path_);
    hash_ = o.hash_;
    o.fd_ = -1;
  }
  return *this;
}

TempFile::~TempFile() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

constexpr size_t kKeyLockCount = 64;

class FileStore final : public Store {
 public:
  FileStore(StoreOptions options, std::unique_ptr<Index> index)
      : options_(std::move(options)),
        objectsDir_(options_.dir + "/objects"),
        tmpDir_(options_.dir + "/tmp"),
        index_(std::move(index)) {}

  Result<void> load();

  std::shared_ptr<const ObjectMeta> lookup(const CacheKey& key) const override;
  Result<int> openObject(const CacheKey& key, const ObjectMeta& meta) override;
  std::shared_ptr<const ObjectMeta> lookupPartial(const CacheKey& key) const override;
  Result<ObjectFile> createObject(const CacheKey& key) override;
  Result<int> reopenPartial(const CacheKey& key, const ObjectMeta& meta) override;
  Result<void> recordPartial(const CacheKey& key, ObjectMeta meta) override;
  Result<void> commitObject(const CacheKey& key, ObjectMeta meta) override;
  void dropObject(const CacheKey& key, uint64_t gen) override;
  Result<void> putStub(const CacheKey& key, ObjectMeta meta) override;
  Result<void> refresh(const CacheKey& key, const ObjectMeta& updated) override;
  Result<TempFile> createTemp(const CacheKey& key) override;
  Result<void> commit(const CacheKey& key, TempFile&& file, ObjectMeta meta) override;
  void abandon(TempFile&& file) override;
  Result<void> remove(const CacheKey& key) override;
  StoreStats stats() const override;

 private:
  std::string objectDir(const std::string& hex) const {
    return objectsDir_ + "/" + hex.substr(0, 2) + "/" + hex.substr(2, 2);
  }
  std::string objectPath(const Hash128& h, uint64_t gen) const {
    std::string hex = h.hex();
    return objectDir(hex) + "/" + hex + "." + std::to_string(gen);
  }
  static uint64_t durableBytes(const ObjectMeta& m);
  // Publishes `published` as the complete entry (map + stats); unlinks the
  // file of the generation it replaces. Caller holds keyLock.
  void publishLocked(const Hash128& hash, std::shared_ptr<const ObjectMeta> published);
  void erasePartialLocked(const Hash128& hash);
  std::mutex& keyLock(const Hash128& h) { return keyLocks_[h.lo % kKeyLockCount]; }

  // Opens the object file and checks its size. Returns the fd, or the errno
  // of the failed call (-1 with *sizeMismatch set when the size differs).
  int openChecked(const Hash128& h, uint64_t gen, uint64_t size, int* err, bool* sizeMismatch) const;
  // Drops the entry for `hash` (record, file, memory). Caller holds keyLock.
  Result<void> dropLocked(const Hash128& hash);

  const StoreOptions options_;
  const std::string objectsDir_;
  const std::string tmpDir_;
  std::unique_ptr<Index> index_;

  mutable std::shared_mutex mu_;
  std::unordered_map<Hash128, std::shared_ptr<const ObjectMeta>, Hash128Hasher> map_;      // guarded by mu_
  std::unordered_map<Hash128, std::shared_ptr<const ObjectMeta>, Hash128Hasher> partial_;  // guarded by mu_
  StoreStats stats_;                                                                       // guarded by mu_

  std::array<std::mutex, kKeyLockCount> keyLocks_;
  std::atomic<uint64_t> tempCounter_{0};
  // Object file generations: start from the wall clock so that generations
  // keep growing across restarts (O_EXCL guards against any reuse).
  std::atomic<uint64_t> genCounter_{static_cast<uint64_t>(std::time(nullptr)) << 20};
};

Result<void> FileStore::load() {
  std::vector<Hash128> bad;
  std::vector<std::string> badKeys;
  std::unordered_map<Hash128, std::shared_ptr<const ObjectMeta>, Hash128Hasher> map, partial;
  StoreStats stats;
  Result<void> r = index_->forEach(
      [&](const Hash128& hash, std::string_view bytes) {
        Result<ObjectMeta> meta = decodeMeta(bytes);
        if (!meta || !(hashKey(meta->key) == hash)) {
          bad.push_back(hash);
          return;
        }
        if (meta->kind == ObjectMeta::Kind::Partial) {
          stats.partials += 1;
          stats.partialBytes += durableBytes(*meta);
          partial.emplace(hash, std::make_shared<const ObjectMeta>(std::move(meta).value()));
          return;
        }
        if (meta->kind == ObjectMeta::Kind::Complete) {
          stats.objects += 1;
          stats.bytes += meta->size;
        }
        map.emplace(hash, std::make_shared<const ObjectMeta>(std::move(meta).value()));
      },
      [&](std::string_view key) { badKeys.emplace_back(key); });
  if (!r) return r;

  if (!bad.empty() || !badKeys.empty()) {
    OLOG_WARN("store: dropping %zu undecodable or mismatched index records", bad.size() + badKeys.size());
    IndexBatch batch;
    for (const Hash128& h : bad) batch.del(h);
    if (Result<void> w = index_->write(std::move(batch)); !w) return w;
    for (const std::string& k : badKeys) {
      if (Result<void> w = index_->delRaw(k); !w) return w;
    }
  }
  std::unique_lock lock(mu_);
  map_ = std::move(map);
  partial_ = std::move(partial);
  stats_ = stats;
  return ok();
}

std::shared_ptr<const ObjectMeta> FileStore::lookup(const CacheKey& key) const {
  std::shared_ptr<const ObjectMeta> meta;
  {
    std::shared_lock lock(mu_);
    auto it = map_.find(key.hash);
    if (it == map_.end()) return nullptr;
    meta = it->second;
  }
  // The full text decides: a hash collision is a miss, never a wrong object.
  if (meta->key != key.text) return nullptr;
  return meta;
}

int FileStore::openChecked(const Hash128& h, uint64_t gen, uint64_t size, int* err, bool* sizeMismatch) const {
  *sizeMismatch = false;
  int fd = ::open(objectPath(h, gen).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    *err = errno;
    ::close(fd);
    return -1;
  }
  if (static_cast<uint64_t>(st.st_size) != size) {
    *err = 0;
    *sizeMismatch = true;
    ::close(fd);
    return -1;
  }
  return fd;
}

Result<int> FileStore::openObject(const CacheKey& key, const ObjectMeta& meta) {
  int err = 0;
  bool mismatch = false;
  if (meta.kind != ObjectMeta::Kind::Complete) return Error{Errc::Invalid, 0, "open object: not a complete object"};
  int fd = openChecked(key.hash, meta.gen, meta.size, &err, &mismatch);
  if (fd >= 0) return fd;
  if (!mismatch && err != ENOENT) return errnoError(err, "open object");  // EMFILE etc: the object is fine

  // The file is missing or has the wrong size. A commit may have replaced
  // it since the caller's lookup(), so decide under the key lock, against
  // the entry that is current now.
  std::lock_guard keyGuard(keyLock(key.hash));
  fd = openChecked(key.hash, meta.gen, meta.size, &err, &mismatch);
  if (fd >= 0) return fd;
  if (!mismatch && err != ENOENT) return errnoError(err, "open object");

  std::shared_ptr<const ObjectMeta> current;
  {
    std::shared_lock lock(mu_);
    auto it = map_.find(key.hash);
    if (it != map_.end()) current = it->second;
  }
  if (current && current->kind == ObjectMeta::Kind::Complete) {
    // The caller may hold a stale entry: if the file matches the current
    // one, that entry is intact and stays.
    bool currentMismatch = false;
    int fd2 = openChecked(key.hash, current->gen, current->size, &err, &currentMismatch);
    if (fd2 >= 0) {
      ::close(fd2);
      return Error{Errc::NotFound, 0, "open object: replaced since lookup"};
    }
    OLOG_RATE(log::Level::Warn, "store: dropping %s: object file %s", current->key.c_str(),
              currentMismatch ? "has the wrong size" : "is missing");
    (void)dropLocked(key.hash);
  }
  if (mismatch) return Error{Errc::Corrupt, 0, "open object: size mismatch"};
  return Error{Errc::NotFound, ENOENT, "open object: file missing"};
}

Result<TempFile> FileStore::createTemp(const CacheKey& key) {
  std::string prefix = tmpDir_ + "/" + key.hash.hex() + ".";
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string path = prefix + std::to_string(tempCounter_.fetch_add(1, std::memory_order_relaxed));
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return TempFile(fd, std::move(path), key.hash);
    if (errno != EEXIST) return errnoError(errno, "create temp file");
  }
  return Error{Errc::Exists, EEXIST, "create temp file"};
}

Result<void> FileStore::commit(const CacheKey& key, TempFile&& file, ObjectMeta meta) {
  if (!file.valid()) return Error{Errc::Invalid, EBADF, "commit: no temp file"};
  if (!(file.hash() == key.hash)) return Error{Errc::Invalid, 0, "commit: temp file is for another key"};
  if (!meta.key.empty() && meta.key != key.text) return Error{Errc::Invalid, 0, "commit: meta is for another key"};
  meta.key = key.text;

  struct stat st;
  if (::fstat(file.fd(), &st) != 0) return errnoError(errno, "commit: fstat");
  if (static_cast<uint64_t>(st.st_size) != meta.size) return Error{Errc::Corrupt, 0, "commit: size mismatch"};

  std::string hex = key.hash.hex();
  if (Result<void> r = makeDirs(objectDir(hex)); !r) return r;
  meta.kind = ObjectMeta::Kind::Complete;
  meta.gen = genCounter_.fetch_add(1, std::memory_order_relaxed);
  meta.blocks.clear();
  std::string finalPath = objectPath(key.hash, meta.gen);
  std::string record = encodeMeta(meta);
  auto published = std::make_shared<const ObjectMeta>(std::move(meta));

  std::lock_guard keyGuard(keyLock(key.hash));
  if (::rename(file.path().c_str(), finalPath.c_str()) != 0) return errnoError(errno, "commit: rename");
  if (Result<void> r = index_->put(key.hash, record); !r) {
    ::unlink(finalPath.c_str());
    return r;
  }
  publishLocked(key.hash, std::move(published));
  TempFile done(std::move(file));  // closes the fd; the path is now the object's
  return ok();
}

uint64_t FileStore::durableBytes(const ObjectMeta& m) {
  uint64_t n = 0;
  for (unsigned char c : m.blocks) n += static_cast<uint64_t>(__builtin_popcount(c));
  return std::min<uint64_t>(n * m.blockSize, m.size);
}

void FileStore::publishLocked(const Hash128& hash, std::shared_ptr<const ObjectMeta> published) {
  std::shared_ptr<const ObjectMeta> old;
  {
    std::unique_lock lock(mu_);
    auto [it, inserted] = map_.try_emplace(hash, published);
    if (!inserted) {
      old = it->second;
      if (old->kind == ObjectMeta::Kind::Complete) {
        stats_.objects -= 1;
        stats_.bytes -= old->size;
      }
      it->second = published;
    }
    if (published->kind == ObjectMeta::Kind::Complete) {
      stats_.objects += 1;
      stats_.bytes += published->size;
    }
  }
  if (old && old->kind == ObjectMeta::Kind::Complete && old->gen != published->gen)
    ::unlink(objectPath(hash, old->gen).c_str());  // readers holding it open keep their bytes
}

void FileStore::erasePartialLocked(const Hash128& hash) {
  std::unique_lock lock(mu_);
  auto it = partial_.find(hash);
  if (it == partial_.end()) return;
  stats_.partials -= 1;
  stats_.partialBytes -= durableBytes(*it->second);
  partial_.erase(it);
}

std::shared_ptr<const ObjectMeta> FileStore::lookupPartial(const CacheKey& key) const {
  std::shared_ptr<const ObjectMeta> meta;
  {
    std::shared_lock lock(mu_);
    auto it = partial_.find(key.hash);
    if (it == partial_.end()) return nullptr;
    meta = it->second;
  }
  if (meta->key != key.text) return nullptr;
  return meta;
}

Result<ObjectFile> FileStore::createObject(const CacheKey& key) {
  std::string hex = key.hash.hex();
  if (Result<void> r = makeDirs(objectDir(hex)); !r) return r.error();
  for (int attempt = 0; attempt < 8; ++attempt) {
    uint64_t gen = genCounter_.fetch_add(1, std::memory_order_relaxed);
    int fd = ::open(objectPath(key.hash, gen).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return ObjectFile{fd, gen};
    if (errno != EEXIST) return errnoError(errno, "create object file");
  }
  return Error{Errc::Exists, EEXIST, "create object file"};
}

Result<int> FileStore::reopenPartial(const CacheKey& key, const ObjectMeta& meta) {
  int fd = ::open(objectPath(key.hash, meta.gen).c_str(), O_RDWR | O_CLOEXEC);
  if (fd >= 0) return fd;
  int e = errno;
  if (e == ENOENT) {
    std::lock_guard keyGuard(keyLock(key.hash));
    auto current = lookupPartial(key);
    if (current && current->gen == meta.gen) {
      (void)index_->del(key.hash);
      erasePartialLocked(key.hash);
    }
    return Error{Errc::NotFound, ENOENT, "reopen partial: file missing"};
  }
  return errnoError(e, "reopen partial");
}

Result<void> FileStore::recordPartial(const CacheKey& key, ObjectMeta meta) {
  if (meta.kind != ObjectMeta::Kind::Partial || meta.blockSize == 0) return Error{Errc::Invalid, 0, "record partial: bad meta"};
  meta.key = key.text;
  std::string record = encodeMeta(meta);
  auto published = std::make_shared<const ObjectMeta>(std::move(meta));
  std::lock_guard keyGuard(keyLock(key.hash));
  {
    // A complete object of the key keeps its record: the partial is only
    // tracked in memory then (the record slot is the complete one's).
    std::shared_lock lock(mu_);
    auto it = map_.find(key.hash);
    if (it != map_.end() && it->second->kind == ObjectMeta::Kind::Complete) return ok();
  }
  if (Result<void> r = index_->put(key.hash, record); !r) return r;
  std::unique_lock lock(mu_);
  auto [it, inserted] = partial_.try_emplace(key.hash, published);
  if (inserted) {
    stats_.partials += 1;
  } else {
    stats_.partialBytes -= durableBytes(*it->second);
    it->second = published;
  }
  stats_.partialBytes += durableBytes(*published);
  return ok();
}

Result<void> FileStore::commitObject(const CacheKey& key, ObjectMeta meta) {
  meta.key = key.text;
  meta.kind = ObjectMeta::Kind::Complete;
  meta.blocks.clear();
  meta.blockSize = 0;
  struct stat st;
  if (::stat(objectPath(key.hash, meta.gen).c_str(), &st) != 0) return errnoError(errno, "commit object: stat");
  if (static_cast<uint64_t>(st.st_size) != meta.size) return Error{Errc::Corrupt, 0, "commit object: size mismatch"};
  std::string record = encodeMeta(meta);
  auto published = std::make_shared<const ObjectMeta>(std::move(meta));
  std::lock_guard keyGuard(keyLock(key.hash));
  if (Result<void> r = index_->put(key.hash, record); !r) return r;
  erasePartialLocked(key.hash);
  publishLocked(key.hash, std::move(published));
  return ok();
}

void FileStore::dropObject(const CacheKey& key, uint64_t gen) {
  std::lock_guard keyGuard(keyLock(key.hash));
  std::shared_ptr<const ObjectMeta> p;
  {
    std::shared_lock lock(mu_);
    auto it = partial_.find(key.hash);
    if (it != partial_.end()) p = it->second;
  }
  if (p && p->gen == gen) {
    bool completeExists;
    {
      std::shared_lock lock(mu_);
      completeExists = map_.count(key.hash) > 0;
    }
    if (!completeExists) (void)index_->del(key.hash);
    erasePartialLocked(key.hash);
  }
  {
    // Never unlink the file a complete record names.
    std::shared_lock lock(mu_);
    auto it = map_.find(key.hash);
    if (it != map_.end() && it->second->gen == gen && it->second->kind == ObjectMeta::Kind::Complete) return;
  }
  ::unlink(objectPath(key.hash, gen).c_str());
}

Result<void> FileStore::putStub(const CacheKey& key, ObjectMeta meta) {
  if (meta.kind != ObjectMeta::Kind::VaryStub) return Error{Errc::Invalid, 0, "put stub: not a stub"};
  meta.key = key.text;
  std::string record = encodeMeta(meta);
  auto published = std::make_shared<const ObjectMeta>(std::move(meta));
  std::lock_guard keyGuard(keyLock(key.hash));
  if (Result<void> r = index_->put(key.hash, record); !r) return r;
  publishLocked(key.hash, std::move(published));
  return ok();
}

Result<void> FileStore::refresh(const CacheKey& key, const ObjectMeta& updated) {
  std::lock_guard keyGuard(keyLock(key.hash));
  std::shared_ptr<const ObjectMeta> current;
  {
    std::shared_lock lock(mu_);
    auto it = map_.find(key.hash);
    if (it != map_.end()) current = it->second;
  }
  if (!current || current->key != key.text || current->kind != ObjectMeta::Kind::Complete ||
      current->gen != updated.gen || current->size != updated.size)
    return Error{Errc::NotFound, 0, "refresh: object changed"};
  ObjectMeta m = updated;
  m.key = key.text;
  m.kind = ObjectMeta::Kind::Complete;
  if (Result<void> r = index_->put(key.hash, encodeMeta(m)); !r) return r;
  publishLocked(key.hash, std::make_shared<const ObjectMeta>(std::move(m)));
  return ok();
}

void FileStore::abandon(TempFile&& file) {
  TempFile gone(std::move(file));
  if (!gone.path().empty() && ::unlink(gone.path().c_str()) != 0 && errno != ENOENT) {
    OLOG_RATE(log::Level::Warn, "store: cannot unlink temp file %s: %s", gone.path().c_str(),
              errnoError(errno, "abandon").message().c_str());
  }
}

Result<void> FileStore::dropLocked(const Hash128& hash) {
  Result<void> r = index_->del(hash);
  std::shared_ptr<const ObjectMeta> gone;
  {
    std::unique_lock lock(mu_);
    auto it = map_.find(hash);
    if (it != map_.end()) {
      gone = it->second;
      if (gone->kind == ObjectMeta::Kind::Complete) {
        stats_.objects -= 1;
        stats_.bytes -= gone->size;
      }
      map_.erase(it);
    }
  }
  if (gone && gone->kind == ObjectMeta::Kind::Complete &&
      ::unlink(objectPath(hash, gone->gen).c_str()) != 0 && errno != ENOENT && r)
    r = errnoError(errno, "remove: unlink");
  return r;
}

Result<void> FileStore::remove(const CacheKey& key) {
  std::lock_guard keyGuard(keyLock(key.hash));
  if (lookup(key) == nullptr) return Error{Errc::NotFound, 0, "remove"};
  return dropLocked(key.hash);
}

StoreStats FileStore::stats() const {
  std::shared_lock lock(mu_);
  return stats_;
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
  if (options.dir.empty()) return Error{Errc::Invalid, 0, "store open: empty dir"};
  for (const char* sub : {"", "/objects", "/tmp"}) {
    if (Result<void> r = makeDirs(options.dir + sub); !r) return r.error();
  }
  Result<uint64_t> cleared = clearDir(options.dir + "/tmp");
  if (!cleared) return cleared.error();
  if (*cleared > 0) OLOG_INFO("store: removed %llu leftover temp files", static_cast<unsigned long long>(*cleared));

  Result<std::unique_ptr<Index>> index = Index::open(options.dir + "/index");
  if (!index) return index.error();
  auto store = std::make_unique<FileStore>(options, std::move(index).value());
  if (Result<void> r = store->load(); !r) return r.error();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace orchard::cache
