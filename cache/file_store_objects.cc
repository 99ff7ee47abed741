// FileStore object files (see file_store.h): where an object's bytes live
// (objects/ab/<hex>.<gen>), making a new generation, reopening a partial to
// resume it, opening one read-only with its size checked, and the temp
// files of private bodies, with the pool of spare files both draw from.
//
// Hard parts: a generation is never reused (the counter starts from the
// wall clock and load() moves it past every generation on record; files
// are made with O_EXCL or RENAME_NOREPLACE); and a miss should not pay for
// creating a file: the background thread keeps kSpares empty files in
// tmp/, renamed into place by createObject() or used as they are by
// createTemp().
#include "cache/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "cache/file_util.h"
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

Result<TempFile> FileStore::createTemp(const CacheKey& key) {
  Spare spare;
  if (takeSpare(&spare)) return TempFile(spare.fd, std::move(spare.path), key.hash);
  std::string prefix = tmpDir_ + "/" + key.hash.hex() + ".";
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string path = prefix + std::to_string(tempCounter_.fetch_add(1, std::memory_order_relaxed));
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return TempFile(fd, std::move(path), key.hash);
    if (errno != EEXIST) return writeFailed(errnoError(errno, "create temp file"), path);
  }
  return Error{Errc::Exists, EEXIST, "create temp file"};
}

void FileStore::abandon(TempFile&& file) {
  TempFile gone(std::move(file));
  if (!gone.path().empty() && ::unlink(gone.path().c_str()) != 0 && errno != ENOENT) {
    OLOG_RATE(log::Level::Warn, "store: cannot unlink temp file %s: %s", gone.path().c_str(),
              errnoError(errno, "abandon").message().c_str());
  }
}

bool FileStore::takeSpare(Spare* out) {
  {
    std::lock_guard<std::mutex> lock(spareMu_);
    if (spares_.empty()) return false;
    *out = std::move(spares_.back());
    spares_.pop_back();
  }
  {
    std::lock_guard lock(bgMu_);
    spareWanted_ = true;
  }
  bgCv_.notify_one();
  return true;
}

void FileStore::refillSpares() {
  // Creating a file costs about a millisecond on some disks (inode
  // allocation, journal): done here, ahead of time, instead of on a miss.
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(spareMu_);
      if (spares_.size() >= kSpares || stopping_.load(std::memory_order_relaxed)) return;
    }
    std::string path = tmpDir_ + "/spare." + std::to_string(tempCounter_.fetch_add(1, std::memory_order_relaxed));
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return;
    std::lock_guard<std::mutex> lock(spareMu_);
    spares_.push_back(Spare{fd, std::move(path)});
  }
}

Result<ObjectFile> FileStore::createObject(const CacheKey& key) {
  std::string hex = key.hash.hex();
  Spare spare;
  while (takeSpare(&spare)) {
    uint64_t gen = genCounter_.fetch_add(1, std::memory_order_relaxed);
    std::string path = objectPath(key.hash, gen);
    // RENAME_NOREPLACE: never over another generation's file.
    if (::renameat2(AT_FDCWD, spare.path.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0)
      return ObjectFile{spare.fd, gen};
    ::close(spare.fd);
    ::unlink(spare.path.c_str());
  }
  if (Result<void> r = makeDirs(objectDir(hex)); !r) return writeFailed(r.error(), objectDir(hex));
  for (int attempt = 0; attempt < 8; ++attempt) {
    uint64_t gen = genCounter_.fetch_add(1, std::memory_order_relaxed);
    std::string path = objectPath(key.hash, gen);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return ObjectFile{fd, gen};
    if (errno != EEXIST) return writeFailed(errnoError(errno, "create object file"), path);
  }
  return Error{Errc::Exists, EEXIST, "create object file"};
}

Result<int> FileStore::reopenPartial(const CacheKey& key, const ObjectMeta& meta) {
  // Under the key lock, so that the evictor (which checks the guard under
  // it) either sees the guard and keeps the partial, or evicted it before
  // and the open below finds no file.
  std::lock_guard keyGuard(keyLock(key.hash));
  {
    // See kResumeGuardMs; a resume is also a request.
    std::unique_lock lock(mu_);
    if (IndexEntry* e = entries_.find(key.hash); e && e->partial()) {
      resumedAt_[key.hash] = steadyMs();
      e->freq.bump();
    }
  }
  int fd = ::open(objectPath(key.hash, meta.gen).c_str(), O_RDWR | O_CLOEXEC);
  if (fd >= 0) return fd;
  int e = errno;
  if (e == ENOENT) {
    auto current = lookupPartial(key);
    if (current && current->gen == meta.gen) {
      postRecord(key.hash, nullptr);
      erasePartialLocked(key.hash);
      syncLocked(key.hash);
    }
    return Error{Errc::NotFound, ENOENT, "reopen partial: file missing"};
  }
  return errnoError(e, "reopen partial");
}

}  // namespace orchard::cache
