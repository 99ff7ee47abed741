// FileStore background thread, eviction half (see file_store.h): it owns
// the S3-FIFO policy (cache/evictor.h), feeds it the events every change
// queues (syncLocked()), and keeps usage between the watermarks of store.h.
// The thread's loop (run()) also drives the start-up reconciliation, the
// spare files and the scrub, each in its own file.
//
// Hard parts: the policy picks a victim with no store lock held (the busy
// check takes FillTable locks, which come before ours), so evictOne()
// checks again under the victim's key lock that no event re-added it and
// no reader or resume pinned it meanwhile; and setBusyCheck(nullptr) must
// be a barrier for the FillTable's destruction (busyMu_).
#include "cache/file_store.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "common/log.h"

namespace orchard::cache {

void FileStore::setBusyCheck(std::function<bool(const Hash128&)> busy) {
  BusyCheck old;
  {
    std::lock_guard lock(busyMu_);  // waits for a call in progress
    old = std::exchange(busy_, std::move(busy));
  }
}

void FileStore::setUnlinkListener(UnlinkListener unlinked) {
  UnlinkListener old;
  {
    std::lock_guard lock(unlinkMu_);  // waits for a call in progress
    old = std::exchange(unlinked_, std::move(unlinked));
  }
}

void FileStore::tellUnlinked(const Hash128& hash, uint64_t gen, uint64_t size) const {
  std::lock_guard lock(unlinkMu_);
  if (unlinked_) unlinked_(hash, gen, size);
}

bool FileStore::busyNow(const Hash128& hash) const {
  std::lock_guard lock(busyMu_);
  return busy_ && busy_(hash);
}

void FileStore::requestEviction(uint64_t bytesNeeded) {
  {
    std::lock_guard lock(bgMu_);
    need_ += bytesNeeded;
    wake_ = true;
  }
  bgCv_.notify_one();
}

bool FileStore::pinnedNow(const Hash128& hash) const {
  std::shared_lock lock(mu_);
  const IndexEntry* e = entries_.find(hash);
  if (e == nullptr) return false;
  if (e->readers.load(std::memory_order_acquire) > 0) return true;
  auto r = resumedAt_.find(hash);
  return r != resumedAt_.end() && steadyMs() - r->second < kResumeGuardMs;
}

// ---- background thread ----

void FileStore::run() {
  buildPolicy();
  lastPassMs_ = steadyMs();
  evictPass();  // a lowered cacheLimit, or a store left over its limit
  reconcile();
  refillSpares();
  std::unique_lock lock(bgMu_);
  while (!stop_) {
    bgCv_.wait_for(lock, kEvictInterval, [this] { return stop_ || wake_ || spareWanted_; });
    if (stop_) break;
    const bool evict = wake_;
    wake_ = false;
    spareWanted_ = false;
    lock.unlock();
    refillSpares();
    if (evict || steadyMs() - lastPassMs_ >= static_cast<int64_t>(kEvictInterval.count())) {
      lastPassMs_ = steadyMs();
      evictPass();
    }
    if (options_.scrubIntervalMs > 0 && steadyMs() - lastScrubMs_ >= options_.scrubIntervalMs) {
      (void)scrubPass(true);
      lastScrubMs_ = steadyMs();
    }
    lock.lock();
  }
}

void FileStore::buildPolicy() {
  if (options_.cacheLimit == 0) return;
  // The objects found at open() (generations below reconcileBelowGen_)
  // enter M in order of last use, oldest at the tail: they earned their
  // place before the restart, and new objects must prove themselves in S
  // before they can push them out. Objects made since open() arrive through
  // their events, into S.
  // The hit counters stay in the index entries (Counters reads them).
  struct Resident {
    Hash128 hash;
    uint64_t bytes;
    int64_t used;
  };
  std::vector<Resident> all;
  {
    std::shared_lock lock(mu_);
    all.reserve(entries_.size());
    const uint64_t below = reconcileBelowGen_;
    entries_.forEach([&](const IndexEntry& e) {
      if (!e.complete() || e.gen >= below) return;
      uint64_t bytes = e.size;
      if (e.partial())
        if (auto p = partial_.find(e.hash); p != partial_.end()) bytes += durableBytes(*p->second);
      all.push_back({e.hash, bytes, e.usedAt});
    });
    for (const auto& [h, p] : partial_) {
      const IndexEntry* e = entries_.find(h);
      if (e && e->complete()) continue;  // counted above
      if (p->gen >= below) continue;
      all.push_back({h, durableBytes(*p), std::max(p->lastAccess, p->responseTime)});
    }
  }
  std::sort(all.begin(), all.end(), [](const Resident& a, const Resident& b) { return a.used < b.used; });
  policy_.reserve(all.size());
  for (const Resident& r : all) policy_.restore(r.hash, r.bytes);
  all.clear();
  all.shrink_to_fit();
  // Changes queued since load() are newer than the snapshot: apply them after.
  drainEvents();
}

void FileStore::drainEvents() {
  std::vector<PolicyEvent> events;
  {
    std::lock_guard lock(bgMu_);
    events.swap(events_);
  }
  for (PolicyEvent& ev : events) {
    if (ev.present) {
      policy_.insert(ev.hash, ev.bytes);
    } else {
      policy_.remove(ev.hash);
    }
  }
}

void FileStore::maybeEvict() {
  bool due;
  {
    std::lock_guard lock(bgMu_);
    due = wake_ || steadyMs() - lastPassMs_ >= kEvictInterval.count();
    wake_ = false;
  }
  if (!due) return;
  lastPassMs_ = steadyMs();
  evictPass();
}

void FileStore::evictPass() {
  uint64_t need;
  {
    std::lock_guard lock(bgMu_);
    need = need_;
    need_ = 0;
  }
  const uint64_t limit = cacheLimit_.load(std::memory_order_relaxed);
  if (limit == 0) return;
  policy_.setCapacity(limit);
  drainEvents();
  uint64_t used = usage();
  if (used <= percentOf(limit, kHighWatermarkPercent) && need == 0) return;
  // Down to the low watermark; after an ENOSPC, `need` further still (also
  // when usage is already under the watermark: the disk is fuller than the
  // limit says, e.g. shared with other data).
  const uint64_t floor = std::min(percentOf(limit, kLowWatermarkPercent), used);
  const uint64_t target = floor > need ? floor - need : 0;

  const auto pinned = [this](const Hash128& h) { return pinnedNow(h) || busyNow(h); };
  int skips = 0;
  while (used > target && !stopping_.load(std::memory_order_relaxed)) {
    drainEvents();
    std::optional<Hash128> v = policy_.victim(pinned);
    if (!v) {
      OLOG_RATE(log::Level::Warn, "store: over its limit but nothing can be evicted (all read or filled): %llu bytes",
                static_cast<unsigned long long>(used));
      break;
    }
    if (evictOne(*v)) {
      skips = 0;
    } else if (++skips > kMaxSkipsPerPass) {
      break;
    }
    used = usage();
  }
}

bool FileStore::evictOne(const Hash128& hash) {
  std::lock_guard keyGuard(keyLock(hash));
  // Every change of this hash queued its event under this lock: after the
  // drain the policy knows them all. If one re-added the hash since the
  // policy chose it (a new commit, a growing partial), it is no victim.
  drainEvents();
  if (policy_.contains(hash)) return false;
  // The busy check ran in victim(), just before, without the key lock (the
  // lock order forbids calling it under one). A fill that appeared since is
  // harmless: FillTable::acquire() does not start a fill over a complete
  // object, and a resume of a partial sets the guard pinnedNow() sees, under
  // this same key lock (reopenPartial()).
  if (pinnedNow(hash)) {  // a reader or a resume arrived since: back into the policy
    syncLocked(hash);
    return false;
  }
  bool evicted = evictLocked(hash);
  syncLocked(hash);
  return evicted;
}

bool FileStore::evictLocked(const Hash128& hash) {
  bool complete = false;
  std::shared_ptr<const ObjectMeta> partial;
  {
    std::shared_lock lock(mu_);
    const IndexEntry* e = entries_.find(hash);
    complete = e && e->complete();
    if (auto it = partial_.find(hash); it != partial_.end()) partial = it->second;
  }
  if (!complete && !partial) return false;
  if (complete) {
    if (Result<void> r = dropLocked(hash, Tally::Eviction); !r)
      OLOG_RATE(log::Level::Warn, "store: evicting %s: %s", hash.hex().c_str(), r.error().message().c_str());
  }
  if (partial) dropPartialLocked(hash, partial->gen, complete ? Tally::Bytes : Tally::Eviction);
  return true;
}

}  // namespace orchard::cache
