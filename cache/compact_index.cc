// CompactIndex: open addressing with linear probing over IndexEntry values
// (see compact_index.h for the layout and why).
//
// Hard parts: the home slot is fastrange(hash.hi, capacity), so capacity
// need not be a power of two (a reserve() at load sizes the table for the
// records found instead of rounding up to twice that); erase() shifts the
// following run back instead of leaving tombstones, which needs the
// wrap-around test of "is this entry's home cyclically outside (hole, j]".
// Growth copies every entry under the store's exclusive lock: by half each
// time, so it is rare, and load() reserves for what it found.
#include "cache/compact_index.h"

#include <algorithm>

namespace orchard::cache {

IndexEntry& CompactIndex::upsert(const Hash128& h) {
  if (IndexEntry* e = find(h)) return *e;
  if (slots_.empty() || static_cast<double>(size_ + 1) > kMaxLoad * static_cast<double>(slots_.size()))
    rehash(std::max<size_t>(16, slots_.size() + slots_.size() / 2));
  size_t i = home(h);
  while (slots_[i].has != 0) i = next(i);
  IndexEntry& e = slots_[i];
  e = IndexEntry();
  e.hash = h;
  ++size_;
  return e;
}

bool CompactIndex::erase(const Hash128& h) {
  if (size_ == 0) return false;
  size_t hole = home(h);
  for (;; hole = next(hole)) {
    if (slots_[hole].has == 0) return false;
    if (slots_[hole].hash == h) break;
  }
  // Backward shift: move each following entry of the run into the hole
  // unless its home lies cyclically in (hole, j] (it would then be found
  // before the hole no more).
  for (size_t j = next(hole);; j = next(j)) {
    IndexEntry& e = slots_[j];
    if (e.has == 0) break;
    const size_t k = home(e.hash);
    const bool stays = hole <= j ? (k > hole && k <= j) : (k > hole || k <= j);
    if (stays) continue;
    slots_[hole] = e;
    hole = j;
  }
  slots_[hole] = IndexEntry();
  --size_;
  return true;
}

void CompactIndex::reserve(size_t n) {
  const size_t want = static_cast<size_t>(static_cast<double>(n) / kLoadLoad) + 1;
  if (want > slots_.size()) rehash(want);
}

void CompactIndex::rehash(size_t capacity) {
  std::vector<IndexEntry> old;
  old.swap(slots_);
  slots_ = std::vector<IndexEntry>(capacity);
  for (const IndexEntry& e : old) {
    if (e.has == 0) continue;
    size_t i = home(e.hash);
    while (slots_[i].has != 0) i = next(i);
    slots_[i] = e;
  }
}

}  // namespace orchard::cache
