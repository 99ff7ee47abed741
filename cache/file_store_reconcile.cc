// FileStore start-up reconciliation (see store.h, "Background thread" 1):
// once after open(), the walk of objects/ab/ against the records loaded.
//
// Hard parts: the walk uses readdir only (the names say hash and
// generation: no stat, no read), so a million files take seconds; it judges
// only generations older than open() (newer files and records belong to
// fills running meanwhile); a file is removed as an orphan only after
// checking the records as they are now, under its key lock; and records
// whose file the walk did not see are dropped only after a complete walk (a
// directory it could not read says nothing about its files).
#include "cache/file_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "cache/file_util.h"
#include "common/log.h"

namespace orchard::cache {

namespace {

bool isLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool isHex2(const char* name) { return isLowerHex(name[0]) && isLowerHex(name[1]) && name[2] == '\0'; }

uint64_t hexValue(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 16; ++i) v = (v << 4) | static_cast<uint64_t>(p[i] <= '9' ? p[i] - '0' : p[i] - 'a' + 10);
  return v;
}

// Parses "<32 lower-case hex>.<decimal gen>" whose hex starts with `prefix`
// (the 2 hex digits of its ab directory).
bool parseObjectName(const char* name, const char* prefix, Hash128* hash, uint64_t* gen) {
  size_t len = std::strlen(name);
  if (len < 34 || len > 33 + 20 || name[32] != '.') return false;
  for (int i = 0; i < 32; ++i)
    if (!isLowerHex(name[i])) return false;
  if (std::memcmp(name, prefix, 2) != 0) return false;
  uint64_t g = 0;
  for (size_t i = 33; i < len; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    uint64_t d = static_cast<uint64_t>(name[i] - '0');
    if (g > (UINT64_MAX - d) / 10) return false;
    g = g * 10 + d;
  }
  if (len > 34 && name[33] == '0') return false;  // one spelling per generation
  *hash = Hash128{hexValue(name), hexValue(name + 16)};
  *gen = g;
  return true;
}

// A directory entry's type: d_type where the file system fills it in (ext4,
// xfs, btrfs do), fstatat() otherwise. DT_UNKNOWN if it vanished.
unsigned char entryType(int dirFd, const struct dirent* e) {
  if (e->d_type != DT_UNKNOWN) return e->d_type;
  struct stat st;
  if (::fstatat(dirFd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) return DT_UNKNOWN;
  if (S_ISDIR(st.st_mode)) return DT_DIR;
  if (S_ISREG(st.st_mode)) return DT_REG;
  return DT_LNK;  // anything else that is not a directory: treated as a file
}

bool isDotEntry(const char* n) { return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')); }

// Opens subdirectory `name` of `dirFd` for readdir(). nullptr with errno set.
DIR* openSubdir(int dirFd, const char* name) {
  int fd = ::openat(dirFd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return nullptr;
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    int e = errno;
    ::close(fd);
    errno = e;
  }
  return d;
}


}  // namespace

void FileStore::reconcile() {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t below = reconcileBelowGen_;
  struct Rec {
    Hash128 hash;
    uint64_t gen;
    bool operator<(const Rec& o) const {
      if (hash.hi != o.hash.hi) return hash.hi < o.hash.hi;
      if (hash.lo != o.hash.lo) return hash.lo < o.hash.lo;
      return gen < o.gen;
    }
  };
  // The records to check: those naming generations from before open().
  std::vector<Rec> recs;
  {
    std::shared_lock lock(mu_);
    recs.reserve(entries_.size());
    entries_.forEach([&](const IndexEntry& e) {
      if (e.complete() && e.gen < below) recs.push_back({e.hash, e.gen});
    });
    for (const auto& [h, p] : partial_)
      if (p->gen < below) recs.push_back({h, p->gen});
  }
  std::sort(recs.begin(), recs.end());
  std::vector<uint8_t> seen(recs.size(), 0);
  uint64_t files = 0, orphans = 0, malformed = 0, dropped = 0;

  // Whether file (hash, gen) of an old generation is an orphan, decided
  // against the records as they are now, under the key lock.
  auto removeIfOrphan = [&](int dirFd, const char* name, const Hash128& h, uint64_t gen) {
    std::lock_guard keyGuard(keyLock(h));
    {
      std::shared_lock lock(mu_);
      const IndexEntry* c = entries_.find(h);
      if (c && c->complete() && c->gen == gen) return;
      auto p = partial_.find(h);
      if (p != partial_.end() && p->second->gen == gen) return;
    }
    if (::unlinkat(dirFd, name, 0) == 0) ++orphans;
  };

  bool walkedAll = true;
  DIR* top = ::opendir(objectsDir_.c_str());
  if (top == nullptr) {
    OLOG_WARN("store: cannot reconcile: %s", errnoError(errno, "open objects dir").message().c_str());
    walkedAll = false;
  }
  while (top != nullptr) {
    struct dirent* e1 = ::readdir(top);
    if (e1 == nullptr) break;
    if (stopping_.load(std::memory_order_relaxed)) {
      walkedAll = false;
      break;
    }
    if (isDotEntry(e1->d_name)) continue;
    maybeEvict();
    const int fd1 = ::dirfd(top);
    unsigned char t1 = entryType(fd1, e1);
    if (t1 != DT_DIR) {
      if (t1 != DT_UNKNOWN && ::unlinkat(fd1, e1->d_name, 0) == 0) ++malformed;
      continue;
    }
    if (!isHex2(e1->d_name)) continue;  // not ours: left alone
    DIR* d2 = openSubdir(fd1, e1->d_name);
    if (d2 == nullptr) {
      if (errno != ENOENT) walkedAll = false;
      continue;
    }
    char prefix[3] = {e1->d_name[0], e1->d_name[1], 0};
    const int fd2 = ::dirfd(d2);
    while (struct dirent* e2 = ::readdir(d2)) {
      if (isDotEntry(e2->d_name)) continue;
      if (e2->d_type == DT_DIR) continue;  // not ours
      Hash128 h;
      uint64_t gen;
      if (!parseObjectName(e2->d_name, prefix, &h, &gen)) {
        if (entryType(fd2, e2) != DT_DIR && ::unlinkat(fd2, e2->d_name, 0) == 0) ++malformed;
        continue;
      }
      ++files;
      if (gen >= below) continue;  // made since open(): not ours to judge
      auto it = std::lower_bound(recs.begin(), recs.end(), Rec{h, gen});
      if (it != recs.end() && it->hash == h && it->gen == gen) {
        seen[static_cast<size_t>(it - recs.begin())] = 1;
      } else {
        removeIfOrphan(fd2, e2->d_name, h, gen);
      }
    }
    ::closedir(d2);
  }
  if (top != nullptr) ::closedir(top);

  // Records whose file the walk did not see. Only after a complete walk: a
  // directory we could not read says nothing about its files.
  if (walkedAll) {
    for (size_t i = 0; i < recs.size(); ++i) {
      if (seen[i]) continue;
      if (stopping_.load(std::memory_order_relaxed)) break;
      const Hash128& h = recs[i].hash;
      std::lock_guard keyGuard(keyLock(h));
      bool complete = false, partial = false;
      {
        std::shared_lock lock(mu_);
        const IndexEntry* c = entries_.find(h);
        complete = c && c->complete() && c->gen == recs[i].gen;
        auto p = partial_.find(h);
        partial = p != partial_.end() && p->second->gen == recs[i].gen;
      }
      if (complete) (void)dropLocked(h);
      if (partial) dropPartialLocked(h, recs[i].gen);
      if (complete || partial) {
        ++dropped;
        syncLocked(h);
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (walkedAll) {
    OLOG_INFO("store: reconciled %zu records with %llu object files in %.3f s: removed %llu orphan and %llu malformed "
              "files, dropped %llu records without a file",
              recs.size(), static_cast<unsigned long long>(files), secs, static_cast<unsigned long long>(orphans),
              static_cast<unsigned long long>(malformed), static_cast<unsigned long long>(dropped));
  } else if (!stopping_.load(std::memory_order_relaxed)) {
    OLOG_WARN("store: reconciliation incomplete (removed %llu orphan files); records kept",
              static_cast<unsigned long long>(orphans));
  }
  reconciled_.store(true, std::memory_order_release);
}


}  // namespace orchard::cache
