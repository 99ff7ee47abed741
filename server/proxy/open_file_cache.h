// OpenFileCache: per-loop cache of open object files for small hot objects
// (the idea of nginx's open_file_cache). A hit on a cached file costs no
// open(), fstat() or close(): with the pread and the write, a small hit is
// three system calls.
//
// Entries are keyed by (hash, generation): a refetched object has a new
// generation, so a stale descriptor is never used for it. An object evicted
// or replaced meanwhile keeps its bytes for the descriptor (POSIX unlink
// semantics) until drop() closes it: the store tells every loop of each
// file it unlinks (Store::setUnlinkListener), so that the space is freed at
// once and `df` agrees with the store. Loop thread only.
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>

#include "cache/key.h"

namespace orchard::server {

class OpenFileCache {
 public:
  static constexpr size_t kCapacity = 1024;              // descriptors per loop
  static constexpr uint64_t kMaxObjectSize = 256 << 10;  // larger objects are opened per request

  OpenFileCache() = default;
  ~OpenFileCache();
  OpenFileCache(const OpenFileCache&) = delete;
  OpenFileCache& operator=(const OpenFileCache&) = delete;

  // A borrowed descriptor for (hash, gen), or -1. Pair with release().
  int acquire(const cache::Hash128& hash, uint64_t gen);
  // Hands `fd` over to the cache and borrows it back (pair with release()).
  // When the cache is full the least recently used idle entry is closed.
  int insert(const cache::Hash128& hash, uint64_t gen, int fd);
  void release(const cache::Hash128& hash, uint64_t gen);
  // The store unlinked (hash, gen): close its descriptor now, or when its
  // last user releases it.
  void drop(const cache::Hash128& hash, uint64_t gen);
  size_t size() const { return map_.size(); }

 private:
  struct Entry {
    uint64_t gen;
    int fd;
    int users;
    std::list<cache::Hash128>::iterator lru;
    bool doomed = false;  // unlinked while in use: closed at the last release()
  };
  std::unordered_map<cache::Hash128, Entry, cache::Hash128Hasher> map_;
  std::list<cache::Hash128> lru_;  // front: most recent
  void erase(std::unordered_map<cache::Hash128, Entry, cache::Hash128Hasher>::iterator it);
};

}  // namespace orchard::server
