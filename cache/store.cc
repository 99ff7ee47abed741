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
// Order of a commit: rename into objects/ -> index record -> map entry, so a
// record never names a file that is not there yet. A remove goes the other
// way: index record -> file -> map entry.
#include "cache/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
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
  Result<TempFile> createTemp(const CacheKey& key) override;
  Result<void> commit(const CacheKey& key, TempFile&& file, ObjectMeta meta) override;
  void abandon(TempFile&& file) override;
  Result<void> remove(const CacheKey& key) override;
  StoreStats stats() const override;

 private:
  std::string objectDir(const std::string& hex) const {
    return objectsDir_ + "/" + hex.substr(0, 2) + "/" + hex.substr(2, 2);
  }
  std::string objectPath(const Hash128& h) const {
    std::string hex = h.hex();
    return objectDir(hex) + "/" + hex;
  }
  std::mutex& keyLock(const Hash128& h) { return keyLocks_[h.lo % kKeyLockCount]; }

  // Opens the object file and checks its size. Returns the fd, or the errno
  // of the failed call (-1 with *sizeMismatch set when the size differs).
  int openChecked(const Hash128& h, uint64_t size, int* err, bool* sizeMismatch) const;
  // Drops the entry for `hash` (record, file, memory). Caller holds keyLock.
  Result<void> dropLocked(const Hash128& hash);

  const StoreOptions options_;
  const std::string objectsDir_;
  const std::string tmpDir_;
  std::unique_ptr<Index> index_;

  mutable std::shared_mutex mu_;
  std::unordered_map<Hash128, std::shared_ptr<const ObjectMeta>, Hash128Hasher> map_;  // guarded by mu_
  StoreStats stats_;                                                                   // guarded by mu_

  std::array<std::mutex, kKeyLockCount> keyLocks_;
  std::atomic<uint64_t> tempCounter_{0};
};

Result<void> FileStore::load() {
  std::vector<Hash128> bad;
  std::vector<std::string> badKeys;
  std::unordered_map<Hash128, std::shared_ptr<const ObjectMeta>, Hash128Hasher> map;
  StoreStats stats;
  Result<void> r = index_->forEach(
      [&](const Hash128& hash, std::string_view bytes) {
        Result<ObjectMeta> meta = decodeMeta(bytes);
        if (!meta || !(hashKey(meta->key) == hash)) {
          bad.push_back(hash);
          return;
        }
        stats.objects += 1;
        stats.bytes += meta->size;
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

int FileStore::openChecked(const Hash128& h, uint64_t size, int* err, bool* sizeMismatch) const {
  *sizeMismatch = false;
  int fd = ::open(objectPath(h).c_str(), O_RDONLY | O_CLOEXEC);
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
  int fd = openChecked(key.hash, meta.size, &err, &mismatch);
  if (fd >= 0) return fd;
  if (!mismatch && err != ENOENT) return errnoError(err, "open object");  // EMFILE etc: the object is fine

  // The file is missing or has the wrong size. A commit may have replaced
  // it since the caller's lookup(), so decide under the key lock, against
  // the entry that is current now.
  std::lock_guard keyGuard(keyLock(key.hash));
  fd = openChecked(key.hash, meta.size, &err, &mismatch);
  if (fd >= 0) return fd;  // replaced by an object of the caller's size in between
  if (!mismatch && err != ENOENT) return errnoError(err, "open object");

  std::shared_ptr<const ObjectMeta> current;
  {
    std::shared_lock lock(mu_);
    auto it = map_.find(key.hash);
    if (it != map_.end()) current = it->second;
  }
  if (current) {
    // The caller may hold a stale entry: if the file matches the current
    // one, that entry is intact and stays.
    bool currentMismatch = false;
    int fd2 = openChecked(key.hash, current->size, &err, &currentMismatch);
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
  std::string dir = objectDir(hex);
  if (Result<void> r = makeDirs(dir); !r) return r;
  std::string finalPath = dir + "/" + hex;
  std::string record = encodeMeta(meta);
  auto published = std::make_shared<const ObjectMeta>(std::move(meta));

  std::lock_guard keyGuard(keyLock(key.hash));
  if (::rename(file.path().c_str(), finalPath.c_str()) != 0) return errnoError(errno, "commit: rename");
  if (Result<void> r = index_->put(key.hash, record); !r) {
    // The new file already replaced any older one, so the older record (if
    // any) no longer describes what is on disk: drop the key altogether.
    (void)dropLocked(key.hash);
    return r;
  }
  {
    std::unique_lock lock(mu_);
    auto [it, inserted] = map_.try_emplace(key.hash, published);
    if (inserted) {
      stats_.objects += 1;
    } else {
      stats_.bytes -= it->second->size;
      it->second = published;
    }
    stats_.bytes += published->size;
  }
  TempFile done(std::move(file));  // closes the fd; the path is now the object's
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
  if (::unlink(objectPath(hash).c_str()) != 0 && errno != ENOENT && r) r = errnoError(errno, "remove: unlink");
  std::unique_lock lock(mu_);
  auto it = map_.find(hash);
  if (it != map_.end()) {
    stats_.objects -= 1;
    stats_.bytes -= it->second->size;
    map_.erase(it);
  }
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
