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
// Hit counters: by default each entry has its own, bumped by access(). The
// file store keeps its counters in its compact index entries instead (hits
// bump them from any thread with no call into the policy): it passes a
// HitCounters, through which the policy reads and spends them.
//
// Memory: an entry is one 32-byte node in a pool plus a 4-byte slot of an
// open-addressing index (at most half full), so a million resident objects
// cost about 40 MB here; G is empty until evictions start.
//
// Thread safety: one thread owns an S3Fifo. The counters behind a
// HitCounters may be bumped by any thread (they are atomics the caller owns).
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

// The hit counters of a caller that keeps them itself (see above). Called
// on the policy's thread; get() of a hash the caller no longer has returns 0.
class HitCounters {
 public:
  virtual ~HitCounters() = default;
  virtual uint8_t get(const Hash128& hash) = 0;
  virtual void set(const Hash128& hash, uint8_t value) = 0;
};

class S3Fifo {
 public:
  struct Options {
    uint64_t capacityBytes = 0;     // the cache's size; S gets smallPercent of it
    unsigned smallPercent = 10;     // S's share of capacityBytes
    size_t minGhostEntries = 1024;  // G remembers max(this, resident entries) hashes
    HitCounters* counters = nullptr;  // null: the policy's own per-entry counters
  };
  using Pinned = std::function<bool(const Hash128&)>;

  explicit S3Fifo(Options options);

  // Adds an entry (into S, or into M if its hash is in G), or updates the
  // size of one that is already there (position and frequency unchanged).
  void insert(const Hash128& hash, uint64_t bytes);
  // Adds an entry that was resident before a restart: at M's head (call in
  // order of last use, oldest first). Updates the size if already there.
  void restore(const Hash128& hash, uint64_t bytes);
  // Room for n entries (before a restore() of n).
  void reserve(size_t n);
  // A hit: bumps the entry's own counter (with Options::counters, the
  // caller bumps its own instead). No-op for an unknown hash.
  void access(const Hash128& hash);
  // Forgets an entry (the object was removed by other means: not a ghost).
  void remove(const Hash128& hash);

  // The next entry to evict: removed from the queues (and remembered in G
  // when it left from S). The caller evicts it, or insert()s it again when
  // it finds it cannot. Pinned entries are skipped (moved to M's head).
  // nullopt when empty or when every entry is pinned.
  std::optional<Hash128> victim(const Pinned& pinned);

  void setCapacity(uint64_t bytes) { options_.capacityBytes = bytes; }
  bool contains(const Hash128& hash) const { return find(hash) != kNil; }
  bool inSmall(const Hash128& hash) const;
  bool inMain(const Hash128& hash) const;
  bool inGhost(const Hash128& hash) const { return ghost_.count(hash) > 0; }
  size_t size() const { return count_; }
  size_t ghostSize() const { return ghost_.size(); }
  uint64_t bytes() const { return small_.bytes + main_.bytes; }
  uint64_t smallBytes() const { return small_.bytes; }
  uint64_t mainBytes() const { return main_.bytes; }
  uint64_t smallTarget() const { return options_.capacityBytes / 100 * options_.smallPercent +
                                        options_.capacityBytes % 100 * options_.smallPercent / 100; }

 private:
  static constexpr uint32_t kNil = UINT32_MAX;
  enum class Queue : uint8_t { None, Small, Main };
  // 32 bytes: a million resident objects cost 32 MB of nodes.
  struct Node {
    Hash128 hash;
    uint64_t bytes : 60 = 0;      // object sizes stay far below 2^60
    uint64_t freq : 2 = 0;        // without Options::counters (0..Frequency::kMax)
    Queue queue : 2 = Queue::None;
    uint32_t prev = kNil;  // towards the head
    uint32_t next = kNil;  // towards the tail
  };
  static_assert(Frequency::kMax < 4, "Node::freq has two bits");
  static_assert(sizeof(Node) == 32, "a policy node is part of the per-object memory budget");
  struct List {
    uint32_t head = kNil;
    uint32_t tail = kNil;
    size_t count = 0;
    uint64_t bytes = 0;
  };

  List& list(Queue q) { return q == Queue::Small ? small_ : main_; }
  void pushHead(Queue q, uint32_t i);
  void unlink(uint32_t i);
  uint32_t allocate(const Hash128& hash, uint64_t bytes);
  void release(uint32_t i);
  Hash128 drop(uint32_t i);   // out of its queue and the index, node freed
  void rotate(uint32_t i);    // to the head of M
  void add(const Hash128& hash, uint64_t bytes, Queue q);
  uint8_t freqOf(const Node& n) const { return options_.counters ? options_.counters->get(n.hash) : n.freq; }
  void setFreq(Node& n, uint8_t v) {
    if (options_.counters) options_.counters->set(n.hash, v);
    else n.freq = v;
  }
  // The node index: open addressing over node numbers (kNil = empty),
  // linear probing from hash.lo, power-of-two size at most half full.
  uint32_t find(const Hash128& hash) const;
  void indexInsert(uint32_t node);
  void indexErase(const Hash128& hash);
  void indexGrow(size_t slots);
  void ghostAdd(const Hash128& hash);
  bool ghostTake(const Hash128& hash);

  Options options_;
  std::vector<Node> nodes_;        // node pool; indices are stable while an entry lives
  std::vector<uint32_t> free_;     // released node indices
  std::vector<uint32_t> index_;   // node numbers by hash (see find())
  size_t count_ = 0;              // entries in S and M
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
