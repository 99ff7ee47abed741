// CompactIndex: the file store's in-memory index, one small IndexEntry per
// hash that has a complete object, a Vary stub or a partial record. The
// full record (headers, key text, checksums) stays in RocksDB and is read
// on a hit (cache/record_cache.h keeps the recently hit ones): this table
// holds only what lookup, eviction, reconciliation and the stats need, so a
// million objects cost about 60 bytes each here instead of a decoded
// ObjectMeta (~1.2 KiB).
//
// Layout: one open-addressing table of IndexEntry values (48 bytes, no
// pointers, no per-entry allocation), linear probing from
// fastrange(hash.hi), deletion by backward shift (no tombstones). The home
// comes from hash.hi because RocksDB returns the records in hash.hi order
// (big-endian keys): the start-up inserts then walk the table front to
// back, one cache line after the other, instead of one miss each. Capacity
// is not a power of two: reserve() sizes it for a known count at load
// (at most kMaxLoad full after growth, kLoadLoad after a reserve), and it
// grows by half when full.
//
// Thread safety: none of its own. The store guards it with its mu_: find()
// under a shared lock, everything else under the exclusive one. The atomic
// fields (freq, readers, flags) may be changed under the shared lock.
// Pointers from find()/upsert() are invalidated by the next upsert() or
// erase() (entries move).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cache/evictor.h"
#include "cache/key.h"

namespace orchard::cache {

struct IndexEntry {
  // What the hash has. An entry exists while it has any of them.
  enum Has : uint8_t { kComplete = 1, kStub = 2, kPartial = 4 };
  // flags: kSums = the complete record carries block checksums; kVerified =
  // every block of this generation passed (kept here so that a record
  // re-read from RocksDB does not verify its blocks again).
  enum Flag : uint8_t { kSums = 1, kVerified = 2 };

  Hash128 hash;
  uint64_t gen = 0;             // complete object's file generation
  uint64_t size = 0;            // complete object's bytes
  uint32_t rev = 0;             // which published record this is (cache/record_cache.h tags)
  uint32_t usedAt = 0;          // unix s of last use at load (restart order for eviction)
  std::atomic<int32_t> readers{0};  // live openForRead() pins of generation `gen`
  uint8_t has = 0;              // Has bits; 0 = empty slot
  Frequency freq;               // hits, for the policy (one byte)
  std::atomic<uint8_t> flags{0};

  IndexEntry() = default;
  IndexEntry(const IndexEntry& o) { *this = o; }
  IndexEntry& operator=(const IndexEntry& o) {
    hash = o.hash;
    gen = o.gen;
    size = o.size;
    rev = o.rev;
    usedAt = o.usedAt;
    readers.store(o.readers.load(std::memory_order_relaxed), std::memory_order_relaxed);
    has = o.has;
    freq.set(o.freq.get());
    flags.store(o.flags.load(std::memory_order_relaxed), std::memory_order_relaxed);
    return *this;
  }
  bool complete() const { return has & kComplete; }
  bool stub() const { return has & kStub; }
  bool partial() const { return has & kPartial; }
};
static_assert(sizeof(IndexEntry) <= 48, "the compact entry is the per-object memory budget");

class CompactIndex {
 public:
  static constexpr double kMaxLoad = 0.85;   // grow when fuller than this
  static constexpr double kLoadLoad = 0.75;  // reserve() aims at this

  IndexEntry* find(const Hash128& h) {
    if (size_ == 0) return nullptr;
    for (size_t i = home(h);; i = next(i)) {
      IndexEntry& e = slots_[i];
      if (e.has == 0) return nullptr;
      if (e.hash == h) return &e;
    }
  }
  const IndexEntry* find(const Hash128& h) const { return const_cast<CompactIndex*>(this)->find(h); }
  // The entry of h, inserted empty (has == 0 until the caller sets it) if
  // absent. The caller must give it a `has` bit before the next call.
  IndexEntry& upsert(const Hash128& h);
  // Removes h's entry; false if there was none.
  bool erase(const Hash128& h);
  // Makes room for n entries without growing.
  void reserve(size_t n);
  size_t size() const { return size_; }
  size_t capacity() const { return slots_.size(); }
  size_t memoryBytes() const { return slots_.capacity() * sizeof(IndexEntry); }

  // Every entry reachable from its home slot (for tests).
  bool consistent() const {
    for (const IndexEntry& e : slots_)
      if (e.has && find(e.hash) != &e) return false;
    return true;
  }
  template <typename F>
  void forEach(F&& f) const {
    for (const IndexEntry& e : slots_)
      if (e.has) f(e);
  }

 private:
  size_t home(const Hash128& h) const {
    return static_cast<size_t>((static_cast<unsigned __int128>(h.hi) * slots_.size()) >> 64);
  }
  size_t next(size_t i) const { return i + 1 == slots_.size() ? 0 : i + 1; }
  void rehash(size_t capacity);

  std::vector<IndexEntry> slots_;
  size_t size_ = 0;
};

}  // namespace orchard::cache
