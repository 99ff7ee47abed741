// RecordCache: the full records (decoded ObjectMeta) of recently hit or
// recently published objects, bounded, so that a hit on a hot object reads
// nothing from RocksDB. The compact index (cache/compact_index.h) says what
// exists; this says what its record is, for a few thousand of them.
//
// Each slot is tagged with the entry's `rev` (which publish made it): get()
// answers only for the rev the caller's entry has, so a slot left over from
// an older record of the hash is never served.
//
// Pinned slots: a record just published by the store has its RocksDB write
// still queued (db/write_queue.h), so RocksDB holds an older record or none
// until the writer applies it. put(pinned=true) keeps the slot until as many
// unpin()s as pinned puts: a lookup in that window is answered from here,
// never from the stale RocksDB value. fill() (after a RocksDB read) never
// replaces a pinned slot.
//
// Eviction: CLOCK per shard (a hit sets the slot's reference bit, the hand
// clears it or evicts), skipping pinned slots; a shard whose every slot is
// pinned grows past its share until they are unpinned.
//
// Thread safety: every method from any thread; one mutex per shard, a leaf
// (the store calls it with its mu_ held).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cache/key.h"
#include "cache/object_meta.h"

namespace orchard::cache {

class RecordCache {
 public:
  static constexpr size_t kShards = 16;
  // `capacity`: records kept (unpinned), spread over the shards.
  explicit RecordCache(size_t capacity);

  // The record of `hash` published as `rev`, or nullptr.
  std::shared_ptr<const ObjectMeta> get(const Hash128& hash, uint32_t rev) const;
  // Publishes `meta` as `rev` of `hash` (replacing any slot); pinned: kept
  // until the matching unpin().
  void put(const Hash128& hash, std::shared_ptr<const ObjectMeta> meta, uint32_t rev, bool pinned) {
    store(hash, std::move(meta), rev, pinned, /*keepPinned=*/false);
  }
  // A record read back from RocksDB: stored unless a pinned slot is there.
  void fill(const Hash128& hash, std::shared_ptr<const ObjectMeta> meta, uint32_t rev) {
    store(hash, std::move(meta), rev, false, /*keepPinned=*/true);
  }
  // One pinned put's write is applied.
  void unpin(const Hash128& hash);
  // Forgets the record of `hash` (a pinned slot keeps its pins, without a record).
  void erase(const Hash128& hash);

  size_t size() const;         // slots, pinned ones included
  size_t pinnedSlots() const;  // for tests
  size_t capacity() const { return perShard_ * kShards; }

 private:
  struct Slot {
    std::shared_ptr<const ObjectMeta> meta;
    uint32_t rev = 0;
    uint32_t pins = 0;
    mutable bool ref = false;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<Hash128, Slot, Hash128Hasher> slots;
    std::vector<Hash128> ring;  // CLOCK order of the slots' hashes
    size_t hand = 0;
  };
  void store(const Hash128& hash, std::shared_ptr<const ObjectMeta> meta, uint32_t rev, bool pinned, bool keepPinned);
  Shard& shard(const Hash128& h) const { return shards_[(h.hi >> 60) & (kShards - 1)]; }
  // Makes room for one more slot in `s` (lock held).
  void evictOne(Shard& s);

  const size_t perShard_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace orchard::cache
