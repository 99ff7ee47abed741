// S3Fifo: the S3-FIFO eviction policy over byte sizes (see evictor.h for the
// algorithm, its queues and why it resists scans). Entries live in a node
// pool linked into two intrusive doubly linked FIFOs, found through an
// open-addressing index of node numbers; G is a bounded FIFO of hashes.
//
// Hard parts: the index erases by backward shift (no tombstones), and the
// hit counters may live with the caller (Options::counters), read and spent
// through it.
#include "cache/evictor.h"

#include <algorithm>
#include <cassert>

namespace orchard::cache {

S3Fifo::S3Fifo(Options options) : options_(options) {}

bool S3Fifo::inSmall(const Hash128& hash) const {
  uint32_t i = find(hash);
  return i != kNil && nodes_[i].queue == Queue::Small;
}

bool S3Fifo::inMain(const Hash128& hash) const {
  uint32_t i = find(hash);
  return i != kNil && nodes_[i].queue == Queue::Main;
}

uint32_t S3Fifo::find(const Hash128& hash) const {
  if (index_.empty()) return kNil;
  const size_t mask = index_.size() - 1;
  for (size_t s = hash.lo & mask;; s = (s + 1) & mask) {
    uint32_t i = index_[s];
    if (i == kNil || nodes_[i].hash == hash) return i;
  }
}

void S3Fifo::indexGrow(size_t slots) {
  std::vector<uint32_t> old;
  old.swap(index_);
  index_.assign(slots, kNil);
  for (uint32_t i : old)
    if (i != kNil) indexInsert(i);
}

void S3Fifo::indexInsert(uint32_t node) {
  const size_t mask = index_.size() - 1;
  size_t s = nodes_[node].hash.lo & mask;
  while (index_[s] != kNil) s = (s + 1) & mask;
  index_[s] = node;
}

void S3Fifo::indexErase(const Hash128& hash) {
  const size_t mask = index_.size() - 1;
  size_t hole = hash.lo & mask;
  while (index_[hole] != kNil && !(nodes_[index_[hole]].hash == hash)) hole = (hole + 1) & mask;
  if (index_[hole] == kNil) return;
  for (size_t j = (hole + 1) & mask; index_[j] != kNil; j = (j + 1) & mask) {
    const size_t k = nodes_[index_[j]].hash.lo & mask;
    const bool stays = hole <= j ? (k > hole && k <= j) : (k > hole || k <= j);
    if (stays) continue;
    index_[hole] = index_[j];
    hole = j;
  }
  index_[hole] = kNil;
}

void S3Fifo::reserve(size_t n) {
  nodes_.reserve(n);
  size_t slots = index_.empty() ? 16 : index_.size();
  while (slots < 2 * n) slots *= 2;
  if (slots > index_.size()) indexGrow(slots);
}

void S3Fifo::pushHead(Queue q, uint32_t i) {
  List& l = list(q);
  Node& n = nodes_[i];
  assert(n.queue == Queue::None);
  n.queue = q;
  n.prev = kNil;
  n.next = l.head;
  if (l.head != kNil) nodes_[l.head].prev = i;
  l.head = i;
  if (l.tail == kNil) l.tail = i;
  l.count += 1;
  l.bytes += n.bytes;
}

void S3Fifo::unlink(uint32_t i) {
  Node& n = nodes_[i];
  assert(n.queue != Queue::None);
  List& l = list(n.queue);
  if (n.prev != kNil) nodes_[n.prev].next = n.next; else l.head = n.next;
  if (n.next != kNil) nodes_[n.next].prev = n.prev; else l.tail = n.prev;
  l.count -= 1;
  l.bytes -= n.bytes;
  n.prev = n.next = kNil;
  n.queue = Queue::None;
}

uint32_t S3Fifo::allocate(const Hash128& hash, uint64_t bytes) {
  uint32_t i;
  if (!free_.empty()) {
    i = free_.back();
    free_.pop_back();
  } else {
    i = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();
  }
  Node& n = nodes_[i];
  n.hash = hash;
  n.bytes = bytes;
  n.freq = 0;
  return i;
}

void S3Fifo::release(uint32_t i) { free_.push_back(i); }

void S3Fifo::add(const Hash128& hash, uint64_t bytes, Queue q) {
  if (uint32_t i = find(hash); i != kNil) {
    Node& n = nodes_[i];
    List& l = list(n.queue);
    l.bytes = l.bytes - n.bytes + bytes;
    n.bytes = bytes;
    return;
  }
  // A hash that comes back while G remembers it was evicted too early.
  if (ghostTake(hash)) q = Queue::Main;
  uint32_t i = allocate(hash, bytes);
  if (2 * (count_ + 1) > index_.size()) indexGrow(index_.empty() ? 16 : 2 * index_.size());
  indexInsert(i);
  count_ += 1;
  pushHead(q, i);
}

void S3Fifo::insert(const Hash128& hash, uint64_t bytes) { add(hash, bytes, Queue::Small); }

void S3Fifo::restore(const Hash128& hash, uint64_t bytes) { add(hash, bytes, Queue::Main); }

void S3Fifo::access(const Hash128& hash) {
  uint32_t i = find(hash);
  if (i != kNil && nodes_[i].freq < Frequency::kMax) nodes_[i].freq += 1;
}

void S3Fifo::remove(const Hash128& hash) {
  uint32_t i = find(hash);
  if (i != kNil) drop(i);
}

Hash128 S3Fifo::drop(uint32_t i) {
  Hash128 h = nodes_[i].hash;
  indexErase(h);
  count_ -= 1;
  unlink(i);
  release(i);
  return h;
}

void S3Fifo::rotate(uint32_t i) {
  unlink(i);
  pushHead(Queue::Main, i);
}

std::optional<Hash128> S3Fifo::victim(const Pinned& pinned) {
  // Each entry can be looked at a bounded number of times before it becomes
  // a victim (S -> M once, then at most Frequency::kMax passes over M's
  // tail); pinned entries rotate. Past that budget everything is pinned.
  size_t budget = (count_ + 1) * (Frequency::kMax + 2);
  // Pinned entries rotated to M's head in a row: once they are all of M,
  // M has nothing to give and S is asked even under its share.
  size_t mainPinnedRun = 0;
  while (budget-- > 0) {
    const bool mainStuck = main_.count > 0 && mainPinnedRun >= main_.count;
    const bool fromSmall = small_.count > 0 && (small_.bytes >= smallTarget() || main_.count == 0 || mainStuck);
    if (fromSmall) {
      uint32_t i = small_.tail;
      Node& n = nodes_[i];
      if (pinned && pinned(n.hash)) {
        rotate(i);
        ++mainPinnedRun;
        continue;
      }
      if (freqOf(n) > 0) {
        // Requested while in S: promoted, and must earn its stay in M anew.
        setFreq(n, 0);
        rotate(i);
        continue;
      }
      Hash128 h = drop(i);
      ghostAdd(h);
      return h;
    }
    if (main_.count == 0) return std::nullopt;
    uint32_t i = main_.tail;
    Node& n = nodes_[i];
    if (pinned && pinned(n.hash)) {
      rotate(i);
      ++mainPinnedRun;
      continue;
    }
    mainPinnedRun = 0;
    if (uint8_t f = freqOf(n); f > 0) {
      setFreq(n, static_cast<uint8_t>(f - 1));
      rotate(i);
      continue;
    }
    return drop(i);
  }
  return std::nullopt;
}

void S3Fifo::ghostAdd(const Hash128& hash) {
  uint64_t seq = ++ghostSeq_;
  ghost_[hash] = seq;
  ghostFifo_.emplace_back(hash, seq);
  // G holds about as many hashes as the cache holds entries (as in the
  // paper), never fewer than minGhostEntries. The FIFO may also carry stale
  // pairs; trimming it to twice that bound keeps its memory bounded too.
  const size_t limit = std::max(options_.minGhostEntries, count_);
  while (ghost_.size() > limit || ghostFifo_.size() > 2 * limit) {
    auto [h, s] = ghostFifo_.front();
    ghostFifo_.pop_front();
    auto it = ghost_.find(h);
    if (it != ghost_.end() && it->second == s) ghost_.erase(it);
  }
}

bool S3Fifo::ghostTake(const Hash128& hash) {
  auto it = ghost_.find(hash);
  if (it == ghost_.end()) return false;
  ghost_.erase(it);  // its FIFO pair is now stale
  return true;
}

}  // namespace orchard::cache
