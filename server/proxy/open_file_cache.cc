// OpenFileCache: per-loop descriptors of small stored objects (<= 256 KiB),
// so a small hit costs no open()/close(). Keyed by hash and generation: a
// refetched object is a new generation, never the old file's bytes. An
// entry in use is never closed; the least recently used idle ones go when
// the cache is full.
#include "server/proxy/open_file_cache.h"

#include <unistd.h>

namespace orchard::server {

OpenFileCache::~OpenFileCache() {
  for (auto& [h, e] : map_) ::close(e.fd);
}

int OpenFileCache::acquire(const cache::Hash128& hash, uint64_t gen) {
  auto it = map_.find(hash);
  if (it == map_.end() || it->second.gen != gen || it->second.doomed) return -1;
  Entry& e = it->second;
  lru_.splice(lru_.begin(), lru_, e.lru);
  ++e.users;
  return e.fd;
}

int OpenFileCache::insert(const cache::Hash128& hash, uint64_t gen, int fd) {
  auto it = map_.find(hash);
  if (it != map_.end()) {
    Entry& old = it->second;
    if (old.users > 0) return -1;  // an older generation is still being read: caller keeps its fd
    ::close(old.fd);
    old.gen = gen;
    old.fd = fd;
    old.users = 1;
    old.doomed = false;
    lru_.splice(lru_.begin(), lru_, old.lru);
    return fd;
  }
  // Make room: close the least recently used idle entries.
  for (auto r = lru_.end(); map_.size() >= kCapacity && r != lru_.begin();) {
    --r;
    auto victim = map_.find(*r);
    if (victim->second.users > 0) continue;
    ::close(victim->second.fd);
    map_.erase(victim);
    r = lru_.erase(r);
  }
  if (map_.size() >= kCapacity) return -1;  // every entry busy: caller keeps its fd
  lru_.push_front(hash);
  map_.emplace(hash, Entry{gen, fd, 1, lru_.begin()});
  return fd;
}

void OpenFileCache::release(const cache::Hash128& hash, uint64_t gen) {
  auto it = map_.find(hash);
  if (it == map_.end() || it->second.gen != gen || it->second.users == 0) return;
  if (--it->second.users == 0 && it->second.doomed) erase(it);
}

void OpenFileCache::drop(const cache::Hash128& hash, uint64_t gen) {
  auto it = map_.find(hash);
  if (it == map_.end() || it->second.gen != gen) return;
  if (it->second.users > 0) {
    it->second.doomed = true;
    return;
  }
  erase(it);
}

void OpenFileCache::erase(std::unordered_map<cache::Hash128, Entry, cache::Hash128Hasher>::iterator it) {
  ::close(it->second.fd);
  lru_.erase(it->second.lru);
  map_.erase(it);
}

}  // namespace orchard::server
