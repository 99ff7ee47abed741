#include "common/top_table.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace orchard {

TopTable::TopTable() { index_.fill(kEmpty); }

int16_t TopTable::findSlot(uint64_t hash) const {
  for (size_t s = hash & (kSlots - 1);; s = (s + 1) & (kSlots - 1)) {
    const int16_t e = index_[s];
    if (e == kEmpty) return kEmpty;
    if (entries_[static_cast<size_t>(e)].hash == hash) return static_cast<int16_t>(s);
  }
}

void TopTable::indexInsert(uint64_t hash, int16_t entry) {
  size_t s = hash & (kSlots - 1);
  while (index_[s] != kEmpty) s = (s + 1) & (kSlots - 1);
  index_[s] = entry;
}

void TopTable::indexRemove(uint64_t hash) {
  int16_t found = findSlot(hash);
  if (found == kEmpty) return;
  // Backward shift: move later members of the probe run into the hole when
  // their home slot does not lie (cyclically) between the hole and them.
  size_t hole = static_cast<size_t>(found);
  index_[hole] = kEmpty;
  for (size_t s = (hole + 1) & (kSlots - 1); index_[s] != kEmpty; s = (s + 1) & (kSlots - 1)) {
    const size_t home = entries_[static_cast<size_t>(index_[s])].hash & (kSlots - 1);
    const bool stays = hole <= s ? (home > hole && home <= s) : (home > hole || home <= s);
    if (stays) continue;
    index_[hole] = index_[s];
    index_[s] = kEmpty;
    hole = s;
  }
}

void TopTable::swapHeap(size_t a, size_t b) {
  std::swap(heap_[a], heap_[b]);
  entries_[heap_[a]].heapPos = static_cast<uint16_t>(a);
  entries_[heap_[b]].heapPos = static_cast<uint16_t>(b);
}

void TopTable::siftDown(size_t pos) {
  for (;;) {
    const size_t l = 2 * pos + 1, r = l + 1;
    size_t least = pos;
    if (l < used_ && entries_[heap_[l]].bytes < entries_[heap_[least]].bytes) least = l;
    if (r < used_ && entries_[heap_[r]].bytes < entries_[heap_[least]].bytes) least = r;
    if (least == pos) return;
    swapHeap(pos, least);
    pos = least;
  }
}

void TopTable::siftUp(size_t pos) {
  while (pos > 0) {
    const size_t parent = (pos - 1) / 2;
    if (entries_[heap_[parent]].bytes <= entries_[heap_[pos]].bytes) return;
    swapHeap(pos, parent);
    pos = parent;
  }
}

void TopTable::addSlow(uint64_t hash, std::string_view text, uint64_t bytes) {
  const int16_t slot = findSlot(hash);
  if (slot != kEmpty) {
    bump(entries_[static_cast<size_t>(index_[static_cast<size_t>(slot)])], bytes);
    return;
  }
  size_t idx;
  uint64_t inherited = 0;
  const bool fresh = used_ < kCapacity;
  if (fresh) {
    idx = used_;
    heap_[used_] = static_cast<uint16_t>(idx);
    entries_[idx].heapPos = static_cast<uint16_t>(used_);
    ++used_;
  } else {
    idx = heap_[0];
    inherited = entries_[idx].bytes;
    indexRemove(entries_[idx].hash);
  }
  Entry& e = entries_[idx];
  e.hash = hash;
  e.bytes = inherited + bytes;
  e.error = inherited;
  e.requests = 1;
  e.len = static_cast<uint16_t>(std::min(text.size(), kTextMax));
  std::memcpy(e.text, text.data(), e.len);
  indexInsert(hash, static_cast<int16_t>(idx));
  // A fresh entry sits at the end of the heap (moves up if small) or at
  // the root it replaced (its count only grew: moves down).
  if (fresh) siftUp(e.heapPos);
  else siftDown(e.heapPos);
}

std::vector<TopTable::Item> TopTable::items() const {
  std::vector<Item> out;
  out.reserve(used_);
  for (size_t i = 0; i < used_; ++i) {
    const Entry& e = entries_[i];
    out.push_back(Item{e.hash, std::string(e.text, e.len), e.bytes - e.error, e.requests});
  }
  return out;
}

std::vector<TopTable::Item> TopTable::merge(const std::vector<std::vector<Item>>& tables, size_t limit) {
  std::unordered_map<uint64_t, Item> byHash;
  for (const auto& t : tables)
    for (const Item& it : t) {
      auto [at, fresh] = byHash.try_emplace(it.hash, it);
      if (fresh) continue;
      at->second.bytes += it.bytes;
      at->second.requests += it.requests;
    }
  std::vector<Item> out;
  out.reserve(byHash.size());
  for (auto& [h, it] : byHash) out.push_back(std::move(it));
  std::sort(out.begin(), out.end(), [](const Item& a, const Item& b) {
    if (a.bytes != b.bytes) return a.bytes > b.bytes;
    if (a.requests != b.requests) return a.requests > b.requests;
    return a.text < b.text;
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

}  // namespace orchard
