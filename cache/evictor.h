// S3Fifo: the store's eviction policy (which object leaves next), kept pure:
// no files, no locks, no clock. The file store (cache/file_store_evict.cc) owns one, feeds it
// from its background thread and performs the evictions it chooses.
//
// Why S3-FIFO (Yang et al., "FIFO queues are all you need for cache
// eviction", SOSP'23), adapted to byte sizes:
//   New objects enter a small FIFO S (about 10 % of the cache's bytes). An
//   object still unrequested when it reaches the tail of S leaves at once and
//   only its hash is remembered in a ghost set G; an object that got a hit
//   while in S moves to the main FIFO M, where objects circulate while they
//   keep getting hits (each pass over the tail costs one of at most 3
//   credits). A scan, one pass over many distinct objects such as a fleet
//   pulling a catalogue of updates it will never ask for again, therefore
//   only ever churns S: its objects are one-hit wonders that leave from S's
//   tail without touching M, so the hot objects in M (the update every Mac
//   downloads) survive a scan larger than the whole cache, where LRU would
//   have flushed them. An object evicted too early gets a second chance: if
//   it comes back while its hash is still in G, it enters M directly.
//   Hits cost one relaxed atomic store on a counter (no lock, no list move,
//   no index write), which LRU cannot offer.
//
// Queues and lifecycle of an entry:
//
//   insert() ──▶ S ──tail, freq>0──▶ M head (freq = 0)
//    │           │                    │ ◀── tail, freq>0: M head, freq-1
//    │           tail, freq==0        tail, freq==0
//    │           ▼                    ▼
//    │        victim (hash → G)    victim
//    └─ hash in G ──────────────────▶ M head
//
// Entries the caller says are pinned (being read, being filled) are never
// returned: they go back to M's head with their frequency unchanged. When
// every entry of M turns out pinned, S gives up a victim even under its share.
//
// Thread safety: one thread owns an S3Fifo. The only exception is Frequency:
// the counter behind each entry may be bumped by any thread (hits), which
// is why it is an atomic shared with the caller.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "cache/key.h"

namespace orchard::cache {

// A saturating 0..kMax access counter. bump() may be called from any thread
// with no lock; a bump lost to a concurrent decrement only makes an object a
// little colder, which the policy tolerates by design.
class Frequency {
 public:
  static constexpr uint8_t kMax = 3;
  void bump() noexcept {
    // Load then store (no read-modify-write): a saturated counter, the
    // common case for hot objects, is never written, so hits on one object
    // from several loops do not bounce its cache line.
    uint8_t v = v_.load(std::memory_order_relaxed);
    if (v < kMax) v_.store(static_cast<uint8_t>(v + 1), std::memory_order_relaxed);
  }
  uint8_t get() const noexcept { return v_.load(std::memory_order_relaxed); }
  void set(uint8_t v) noexcept { v_.store(v, std::memory_order_relaxed); }

 private:
  std::atomic<uint8_t> v_{0};
};

class S3Fifo {
 public:
  struct Options {
    uint64_t capacityBytes = 0;     // the cache's size; S gets smallPercent of it
    unsigned smallPercent = 10;     // S's share of capacityBytes
    size_t minGhostEntries = 1024;  // G remembers max(this, resident entries) hashes
  };
  using Pinned = std::function<bool(const Hash128&)>;

  explicit S3Fifo(Options options);

  // Adds an entry (into S, or into M if its hash is in G), or updates the
  // size of one that is already there (position and frequency unchanged).
  // `freq` is the counter the caller's hit path bumps; null: the policy makes
  // its own (then only access() bumps it).
  void insert(const Hash128& hash, uint64_t bytes, std::shared_ptr<Frequency> freq = nullptr);
  // Adds an entry that was resident before a restart: at M's head (call in
  // order of last use, oldest first). Updates the size if already there.
  void restore(const Hash128& hash, uint64_t bytes, std::shared_ptr<Frequency> freq = nullptr);
  // A hit: bumps the entry's counter. No-op for an unknown hash.
  void access(const Hash128& hash);
  // Forgets an entry (the object was removed by other means: not a ghost).
  void remove(const Hash128& hash);

  // The next entry to evict: removed from the queues (and remembered in G
  // when it left from S). The caller evicts it, or insert()s it again when
  // it finds it cannot. Pinned entries are skipped (moved to M's head).
  // nullopt when empty or when every entry is pinned.
  std::optional<Hash128> victim(const Pinned& pinned);

  void setCapacity(uint64_t bytes) { options_.capacityBytes = bytes; }
  bool contains(const Hash128& hash) const { return index_.count(hash) > 0; }
  bool inSmall(const Hash128& hash) const;
  bool inMain(const Hash128& hash) const;
  bool inGhost(const Hash128& hash) const { return ghost_.count(hash) > 0; }
  size_t size() const { return index_.size(); }
  size_t ghostSize() const { return ghost_.size(); }
  uint64_t bytes() const { return small_.bytes + main_.bytes; }
  uint64_t smallBytes() const { return small_.bytes; }
  uint64_t mainBytes() const { return main_.bytes; }
  uint64_t smallTarget() const { return options_.capacityBytes / 100 * options_.smallPercent +
                                        options_.capacityBytes % 100 * options_.smallPercent / 100; }

 private:
  static constexpr uint32_t kNil = UINT32_MAX;
  enum class Queue : uint8_t { None, Small, Main };
  struct Node {
    Hash128 hash;
    uint64_t bytes = 0;
    std::shared_ptr<Frequency> freq;
    uint32_t prev = kNil;  // towards the head
    uint32_t next = kNil;  // towards the tail
    Queue queue = Queue::None;
  };
  struct List {
    uint32_t head = kNil;
    uint32_t tail = kNil;
    size_t count = 0;
    uint64_t bytes = 0;
  };

  List& list(Queue q) { return q == Queue::Small ? small_ : main_; }
  void pushHead(Queue q, uint32_t i);
  void unlink(uint32_t i);
  uint32_t allocate(const Hash128& hash, uint64_t bytes, std::shared_ptr<Frequency> freq);
  void release(uint32_t i);
  Hash128 drop(uint32_t i);   // out of its queue and the index, node freed
  void rotate(uint32_t i);    // to the head of M
  void add(const Hash128& hash, uint64_t bytes, std::shared_ptr<Frequency> freq, Queue q);
  void ghostAdd(const Hash128& hash);
  bool ghostTake(const Hash128& hash);

  Options options_;
  std::vector<Node> nodes_;        // node pool; indices are stable while an entry lives
  std::vector<uint32_t> free_;     // released node indices
  std::unordered_map<Hash128, uint32_t, Hash128Hasher> index_;
  List small_;
  List main_;
  // G: FIFO of evicted hashes. ghost_ maps a live ghost to its sequence
  // number; ghostFifo_ may hold stale entries (hashes that came back), which
  // are skipped when they reach the front.
  std::unordered_map<Hash128, uint64_t, Hash128Hasher> ghost_;
  std::deque<std::pair<Hash128, uint64_t>> ghostFifo_;
  uint64_t ghostSeq_ = 0;
};

}  // namespace orchard::cache
