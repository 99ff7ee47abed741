// FillTable: the lock-striped map of fills in flight (one per key), where a
// miss creates the fill or joins it, and the busy check the evictor asks.
// The hard part is identity: a fill is found by hash and confirmed by full
// key text, and a fill that failed or finished has left the table, so the
// next request starts a new one instead of joining a dead fill.
#include "cache/fill.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "cache/file_util.h"
#include "common/clock.h"
#include "common/log.h"

namespace orchard::cache {

// ---- FillTable ----

FillTable::~FillTable() {
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    for (auto& [h, f] : s.fills) f->table_ = nullptr;
    s.fills.clear();
  }
}

FillTable::Acquired FillTable::acquire(const CacheKey& key, std::shared_ptr<const ObjectMeta> revalidate) {
  Shard& s = shardFor(key.hash);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.fills.find(key.hash);
  if (it != s.fills.end() && it->second->key().text == key.text) return {it->second, false};
  if (store_ && !revalidate) {
    if (auto m = store_->lookup(key); m && m->kind == ObjectMeta::Kind::Complete) return {nullptr, false};
  }
  if (it != s.fills.end()) {
    // Hash collision with a different key in flight: this one is filled privately.
    return {std::make_shared<Fill>(key, store_, false), true};
  }
  auto fill = std::make_shared<Fill>(key, store_, true);
  if (revalidate) {
    fill->setRevalidating(std::move(revalidate));
  } else if (store_) {
    if (auto partial = store_->lookupPartial(key)) {
      auto r = fill->adopt(*partial);
      if (!r) {
        OLOG_RATE(log::Level::Info, "cannot resume %s: %s", key.text.c_str(), r.error().message().c_str());
        fill = std::make_shared<Fill>(key, store_, true);
      }
    }
  }
  fill->table_ = this;
  s.fills.emplace(key.hash, fill);
  return {fill, true};
}

void FillTable::remove(Fill* fill) {
  Shard& s = shardFor(fill->key().hash);
  std::shared_ptr<Fill> keep;  // destroyed after the lock is released
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.fills.find(fill->key().hash);
  if (it != s.fills.end() && it->second.get() == fill) {
    keep = std::move(it->second);
    s.fills.erase(it);
  }
  fill->table_ = nullptr;
}

size_t FillTable::inFlight() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    n += s.fills.size();
  }
  return n;
}

bool FillTable::busy(const Hash128& h) const {
  const Shard& s = shardFor(h);
  std::lock_guard<std::mutex> lock(s.mu);
  return s.fills.count(h) > 0;
}

std::vector<std::shared_ptr<Fill>> FillTable::all() const {
  std::vector<std::shared_ptr<Fill>> out;
  for (const auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    for (const auto& [h, f] : s.fills) out.push_back(f);
  }
  return out;
}

}  // namespace orchard::cache
