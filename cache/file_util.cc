// file_util: POSIX helpers for the store (errno translation, mkdir -p,
// emptying a directory, checksumming a file range). Blocking calls: run off
// the event loops (checksumRange() also runs on a hit's first send, like the
// hit path's own pread).
#include "cache/file_util.h"

#include "cache/object_meta.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack: no allocation per checksum
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace orchard::cache {

Error errnoError(int err, const char* context) noexcept {
  Errc code = Errc::Io;
  switch (err) {
    case ENOENT: code = Errc::NotFound; break;
    case ENOSPC:
    case EDQUOT: code = Errc::NoSpace; break;
    case EEXIST: code = Errc::Exists; break;
    default: break;
  }
  return Error{code, err, context};
}

Result<void> makeDirs(const std::string& path, std::string* failedPath) {
  if (path.empty()) return Error{Errc::Invalid, 0, "mkdir: empty path"};
  std::string partial;
  partial.reserve(path.size());
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    partial.assign(path, 0, slash);
    pos = slash + 1;
    if (partial.empty() || partial.back() == '/') continue;  // leading or doubled '/'
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      int err = errno;
      if (failedPath) *failedPath = partial;
      return errnoError(err, "mkdir");
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (failedPath) *failedPath = path;
    return errnoError(err, "mkdir: stat");
  }
  if (!S_ISDIR(st.st_mode)) {
    if (failedPath) *failedPath = path;
    return Error{Errc::Exists, ENOTDIR, "mkdir: not a directory"};
  }
  return ok();
}

namespace {

constexpr size_t kPage = 4096;

// Which pages of [at, at + n) are in the page cache now (one byte per page
// from `at` rounded down to a page), through mincore() on a mapping that is
// never touched. False if it cannot tell (the caller then treats every page
// as cold). RWF_NOWAIT cannot answer this: a NOWAIT read of an uncached
// range starts the disk read itself and, on a fast disk, returns the bytes,
// so "readable without blocking" is not "was cached".
bool residentPages(int fd, off_t at, size_t n, unsigned char* out) {
  const off_t base = at - at % static_cast<off_t>(kPage);
  const size_t span = static_cast<size_t>(at - base) + n;
  void* m = ::mmap(nullptr, span, PROT_READ, MAP_SHARED, fd, base);
  if (m == MAP_FAILED) return false;
  const bool ok = ::mincore(m, span, out) == 0;
  ::munmap(m, span);
  return ok;
}

// Drops from the page cache the pages of [at, at + n) that `resident`
// (from residentPages()) shows were not cached before they were read.
void dropColdPages(int fd, off_t at, size_t n, const unsigned char* resident) {
  const off_t base = at - at % static_cast<off_t>(kPage);
  const size_t pages = (static_cast<size_t>(at - base) + n + kPage - 1) / kPage;
  size_t i = 0;
  while (i < pages) {
    if (resident != nullptr && (resident[i] & 1)) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < pages && (resident == nullptr || !(resident[j] & 1))) ++j;
    (void)::posix_fadvise(fd, base + static_cast<off_t>(i * kPage), static_cast<off_t>((j - i) * kPage),
                          POSIX_FADV_DONTNEED);
    i = j;
  }
}

}  // namespace

Result<uint64_t> checksumRange(int fd, uint64_t offset, uint64_t length, bool spareCache) {
  constexpr size_t kChunk = 256 << 10;
  thread_local std::unique_ptr<char[]> buf(new char[kChunk]);
  // One byte per page of a chunk, plus one for a chunk that starts mid-page.
  thread_local std::unique_ptr<unsigned char[]> resident(new unsigned char[kChunk / kPage + 1]);
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  uint64_t done = 0;
  // No readahead on this descriptor: pages it brought in ahead of the
  // chunk being read would be "cached" when that chunk's turn came.
  if (spareCache) (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
  while (done < length) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, length - done));
    const off_t at = static_cast<off_t>(offset + done);
    // The scrub: pages cached before the read were someone's and stay;
    // pages the read brought in are dropped again after hashing.
    const bool known = spareCache && residentPages(fd, at, want, resident.get());
    ssize_t n = ::pread(fd, buf.get(), want, at);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError(errno, "checksum: read");
    }
    if (n == 0) return Error{Errc::Corrupt, 0, "checksum: file shorter than its record"};
    XXH3_64bits_update(&state, buf.get(), static_cast<size_t>(n));
    if (spareCache) dropColdPages(fd, at, static_cast<size_t>(n), known ? resident.get() : nullptr);
    done += static_cast<uint64_t>(n);
  }
  return static_cast<uint64_t>(XXH3_64bits_digest(&state));
}

namespace {

// Empties the directory open as `dirFd` (consumed). Counts removed entries.
Result<void> clearAt(int dirFd, uint64_t* removed) {
  DIR* d = ::fdopendir(dirFd);
  if (d == nullptr) {
    int err = errno;
    ::close(dirFd);
    return errnoError(err, "clear dir: fdopendir");
  }
  Result<void> result;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    if (::unlinkat(dirFd, e->d_name, 0) == 0) {
      ++*removed;
      continue;
    }
    if (errno == ENOENT) continue;
    if (errno != EISDIR && errno != EPERM) {
      result = errnoError(errno, "clear dir: unlink");
      continue;
    }
    int sub = ::openat(dirFd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (sub < 0) {
      result = errnoError(errno, "clear dir: open subdir");
      continue;
    }
    Result<void> r = clearAt(sub, removed);
    if (!r) result = r;
    if (::unlinkat(dirFd, e->d_name, AT_REMOVEDIR) == 0) {
      ++*removed;
    } else if (errno != ENOENT) {
      result = errnoError(errno, "clear dir: rmdir");
    }
  }
  ::closedir(d);  // also closes dirFd
  return result;
}

}  // namespace

Result<uint64_t> clearDir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errnoError(errno, "clear dir: open");
  uint64_t removed = 0;
  Result<void> r = clearAt(fd, &removed);
  if (!r) return r.error();
  return removed;
}

void prepareMarks(ObjectMeta* m) {
  m->verified.reset();
  if (m->kind != ObjectMeta::Kind::Complete) return;
  if (m->sums.empty() || m->blockSize == 0 || m->sums.size() != m->blockCount()) {
    m->sums.clear();
    return;
  }
  m->verified = std::make_shared<VerifiedBlocks>(m->sums.size());
}

Result<void> checkBlocks(const ObjectMeta& meta, int fd, uint64_t offset, uint64_t length, uint64_t* badBlock) {
  const std::shared_ptr<VerifiedBlocks>& marks = meta.verified;
  if (!marks || meta.blockSize == 0 || meta.sums.size() != marks->blocks()) return ok();  // nothing to check against
  if (length == 0 || offset >= meta.size) return ok();
  const uint64_t bs = meta.blockSize;
  const uint64_t last = (std::min(meta.size, offset + length) - 1) / bs;
  for (uint64_t b = offset / bs; b <= last; ++b) {
    if (marks->test(b)) continue;
    const uint64_t off = b * bs;
    Result<uint64_t> sum = checksumRange(fd, off, std::min(bs, meta.size - off));
    if (!sum && sum.error().code != Errc::Corrupt) return sum.error();
    if (!sum || *sum != meta.sums[b]) {
      *badBlock = b;
      return Error{Errc::Corrupt, 0, "verify: block checksum mismatch"};
    }
    marks->mark(b);
  }
  return ok();
}

}  // namespace orchard::cache
