// RecordCache: bounded CLOCK cache of decoded records with pinned slots
// (see record_cache.h for why pins exist and what the rev tag guards).
//
// Hard parts: a slot's hash sits in its shard's ring exactly once while the
// slot lives (the ring is the CLOCK order; erase() removes from both), and
// the hand must skip pinned slots without spinning forever when all of
// them are pinned (then the shard grows past its share).
#include "cache/record_cache.h"

#include <algorithm>

namespace orchard::cache {

RecordCache::RecordCache(size_t capacity) : perShard_(std::max<size_t>(1, capacity / kShards)) {
  for (Shard& s : shards_) {
    s.slots.reserve(perShard_ + 1);
    s.ring.reserve(perShard_ + 1);
  }
}

std::shared_ptr<const ObjectMeta> RecordCache::get(const Hash128& hash, uint32_t rev) const {
  Shard& s = shard(hash);
  std::lock_guard lock(s.mu);
  auto it = s.slots.find(hash);
  if (it == s.slots.end() || it->second.rev != rev || !it->second.meta) return nullptr;
  it->second.ref = true;
  return it->second.meta;
}

void RecordCache::evictOne(Shard& s) {
  // Two sweeps at most: the first clears reference bits.
  for (size_t tries = 0; tries < 2 * s.ring.size(); ++tries) {
    if (s.hand >= s.ring.size()) s.hand = 0;
    auto it = s.slots.find(s.ring[s.hand]);
    Slot& slot = it->second;
    if (slot.pins > 0 || slot.ref) {
      slot.ref = false;
      ++s.hand;
      continue;
    }
    s.slots.erase(it);
    s.ring[s.hand] = s.ring.back();
    s.ring.pop_back();
    return;
  }
  // Every slot pinned: the shard grows until they are unpinned.
}

void RecordCache::store(const Hash128& hash, std::shared_ptr<const ObjectMeta> meta, uint32_t rev, bool pinned,
                        bool keepPinned) {
  Shard& s = shard(hash);
  std::shared_ptr<const ObjectMeta> old;  // released after the lock
  std::lock_guard lock(s.mu);
  auto it = s.slots.find(hash);
  if (it == s.slots.end()) {
    if (s.ring.size() >= perShard_) evictOne(s);
    it = s.slots.emplace(hash, Slot{}).first;
    s.ring.push_back(hash);
  } else if (keepPinned && it->second.pins > 0) {
    return;
  }
  Slot& slot = it->second;
  old = std::move(slot.meta);
  slot.meta = std::move(meta);
  slot.rev = rev;
  slot.ref = true;
  if (pinned) slot.pins += 1;
}

void RecordCache::unpin(const Hash128& hash) {
  Shard& s = shard(hash);
  std::lock_guard lock(s.mu);
  auto it = s.slots.find(hash);
  if (it != s.slots.end() && it->second.pins > 0) it->second.pins -= 1;
}

void RecordCache::erase(const Hash128& hash) {
  Shard& s = shard(hash);
  std::shared_ptr<const ObjectMeta> old;
  std::lock_guard lock(s.mu);
  auto it = s.slots.find(hash);
  if (it == s.slots.end()) return;
  if (it->second.pins > 0) {
    old = std::move(it->second.meta);
    return;
  }
  s.slots.erase(it);
  auto r = std::find(s.ring.begin(), s.ring.end(), hash);
  if (r != s.ring.end()) {
    *r = s.ring.back();
    s.ring.pop_back();
  }
}

size_t RecordCache::size() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.slots.size();
  }
  return n;
}

size_t RecordCache::pinnedSlots() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    for (const auto& [h, slot] : s.slots) n += slot.pins > 0;
  }
  return n;
}

}  // namespace orchard::cache
