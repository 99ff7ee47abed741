// TopTable: the objects that served the most body bytes (GET /api/v1/top),
// counted by one loop with a fixed cost per finished transaction.
//
// A bounded "space-saving" heavy-hitters table (Metwally et al.): at most
// kCapacity entries keyed by a 64-bit hash of the cache key. A key already
// in the table adds its bytes; a new key takes a free entry, or, when the
// table is full, the entry with the fewest bytes, inheriting that count as
// its `error` (the bytes it may be credited with that were not its own).
// So an object that served more than total/kCapacity bytes is always in
// the table, and `bytes - error` is exactly what was counted for it since
// it (last) entered. The key's text is copied into the entry's own fixed
// buffer (cut at kTextMax bytes) only when a key enters: after the arrays
// below are made, add() neither allocates nor copies on a repeat key.
//
// Layout: entries_ (the records), heap_ (a min-heap of entry indices by
// bytes: the one to replace is heap_[0]; a growing count sifts down, which
// for a heavy key near the leaves is a compare or two), and index_ (open
// addressing with linear probing from hash to entry, removal by backward
// shift, at most half full).
//
// Thread: one writer (the loop that owns it), no locks; readers elsewhere
// ask that loop for a copy (items()) through its executor. Two keys with
// the same 64-bit hash share an entry (the first text stays): at 256 live
// keys the chance is about 2^-48.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace orchard {

class TopTable {
 public:
  static constexpr size_t kCapacity = 256;
  static constexpr size_t kTextMax = 240;

  struct Item {
    uint64_t hash = 0;
    std::string text;  // the cache key (cut at kTextMax bytes)
    uint64_t bytes = 0;     // counted since it entered (bytes - error)
    uint64_t requests = 0;  // transactions counted since it entered
  };

  TopTable();
  // Counts one finished transaction of the key `text` (hash `hash`) that
  // sent `bytes` body bytes.
  void add(uint64_t hash, std::string_view text, uint64_t bytes) {
    // The common case inline: the key sits in its home slot (a repeat hit).
    const int16_t home = index_[hash & (kSlots - 1)];
    if (home != kEmpty && entries_[static_cast<size_t>(home)].hash == hash) {
      bump(entries_[static_cast<size_t>(home)], bytes);
      return;
    }
    addSlow(hash, text, bytes);
  }
  size_t size() const { return used_; }
  // A copy of every entry (any order).
  std::vector<Item> items() const;

  // Several tables' items (one per loop) as one list: the same hash summed,
  // sorted by bytes (then requests, then text), at most `limit`.
  static std::vector<Item> merge(const std::vector<std::vector<Item>>& tables, size_t limit);

 private:
  struct Entry {
    uint64_t hash = 0;
    uint64_t bytes = 0;  // the space-saving estimate, error included: what the heap orders by
    uint64_t error = 0;
    uint64_t requests = 0;
    uint16_t heapPos = 0;
    uint16_t len = 0;
    char text[kTextMax];
  };
  static constexpr size_t kSlots = 2 * kCapacity;  // index_: a power of two
  static constexpr int16_t kEmpty = -1;

  void addSlow(uint64_t hash, std::string_view text, uint64_t bytes);
  void bump(Entry& e, uint64_t bytes) {
    e.bytes += bytes;
    ++e.requests;
    // Still no more than its children: the heap holds (the usual case for
    // a heavy key, which sits near the leaves).
    const size_t l = 2 * size_t{e.heapPos} + 1;
    if (l >= used_ || (entries_[heap_[l]].bytes >= e.bytes && (l + 1 >= used_ || entries_[heap_[l + 1]].bytes >= e.bytes)))
      return;
    siftDown(e.heapPos);
  }
  int16_t findSlot(uint64_t hash) const;  // slot holding hash, or kEmpty
  void indexInsert(uint64_t hash, int16_t entry);
  void indexRemove(uint64_t hash);
  void siftDown(size_t pos);
  void siftUp(size_t pos);
  void swapHeap(size_t a, size_t b);

  std::array<Entry, kCapacity> entries_;
  std::array<uint16_t, kCapacity> heap_;
  std::array<int16_t, kSlots> index_;
  size_t used_ = 0;
};

}  // namespace orchard
