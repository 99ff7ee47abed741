// Fill, reader side, and the FillTable (see fill.h): snapshots, reads at
// a cursor ("bytes past offset N, or register me"), the switch to relay
// mode, and the table that makes one fill per key and tells the evictor
// which hashes are busy.
//
// Hard parts: a relayed fill keeps only a window of bytes in memory, so a
// read must tell "not yet" from "gone"; and acquire() must not start a fill
// over an object that became complete meanwhile.
#include "cache/fill.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "common/clock.h"
#include "cache/file_util.h"
#include "common/log.h"

namespace orchard::cache {
namespace {
constexpr uint64_t kUnknown = std::numeric_limits<uint64_t>::max();
}

// ---- reader side ----

Fill::Snapshot Fill::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  Snapshot s;
  s.state = state_;
  s.version = version_;
  s.committed = readableLocked(0);
  s.hasHead = hasHead_;
  s.cacheable = cacheable_;
  s.shareable = shareable_;
  s.length = length_;
  s.error = error_;
  s.purged = purged_;
  return s;
}

uint64_t Fill::readable(uint64_t offset) const {
  std::lock_guard<std::mutex> lock(mu_);
  return readableLocked(offset);
}

void Fill::startRelay(uint32_t id) {
  bool drop = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (relayMode_ || state_ != State::Streaming) return;
    Fetcher* f = fetcherLocked(id);
    if (!f) return;
    drop = cacheable_;
    enterRelayLocked(*f);
  }
  leaveTable();  // nobody new joins a fill that will not be stored
  if (drop && store_) store_->dropObject(storeKey(), object_.gen);
}

void Fill::enterRelayLocked(Fetcher& f) {
  relayMode_ = true;
  relayFetcher_ = f.id;
  relayStart_ = relayEnd_ = f.cursor;
  if (length_) f.end = *length_;  // this fetcher brings everything from here on
  relayCap_ = kRelayBytes;
  if (length_ && *length_ > f.cursor) relayCap_ = std::min<uint64_t>(kRelayBytes, *length_ - f.cursor);
  relay_.reset(new char[relayCap_]);  // uninitialised on purpose: see relay_
  for (auto& o : fetchers_)
    if (o.id != f.id) o.active = false;
  cacheable_ = false;
  dropped_ = true;
}

void Fill::reportWriteFailure(const Error& e) {
  if (!store_) return;
  std::string path = object_.fd >= 0 ? store_->objectFilePath(storeKey().hash, object_.gen) : temp_.path();
  store_->health().writeFailed(e, path, SystemClock::instance().monotonicMs());
}

bool Fill::relaying() const {
  std::lock_guard<std::mutex> lock(mu_);
  return relayMode_;
}

Result<size_t> Fill::read(uint64_t offset, char* buf, size_t n) const {
  return read(offset, buf, n, UINT32_MAX);
}

Result<size_t> Fill::read(uint64_t offset, char* buf, size_t n, uint32_t cursor) const {
  std::vector<Waiter> wake;  // a writer waiting for the room this read frees; posted after the lock
  struct PostAfter {
    std::vector<Waiter>& w;
    ~PostAfter() {
      for (auto& x : w) x.executor->post(std::move(x.task));
    }
  } postAfter{wake};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto moveTo = [&](uint64_t at) {
      if (cursor == UINT32_MAX) return;
      for (auto& c : cursors_)
        if (c.first == cursor) c.second = at;
      if (relayMode_) wake = roomFreedLocked();
    };
    if (relayMode_ && offset >= relayStart_ && offset < relayEnd_) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(n, relayEnd_ - offset));
      for (size_t i = 0; i < take;) {
        uint64_t at = (offset + i) % relayCap_;
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(take - i, relayCap_ - at));
        std::memcpy(buf + i, relay_.get() + at, chunk);
        i += chunk;
      }
      moveTo(offset + take);  // copied out: the window may reuse these bytes
      return take;
    }
    moveTo(offset);
    uint64_t avail = readableLocked(offset);
    if (relayMode_ && avail == 0 && offset < relayStart_)
      return Error{Errc::Closed, 0, "fill: reader fell behind the relay window"};
    if (avail == 0) return size_t{0};
    n = static_cast<size_t>(std::min<uint64_t>(n, avail));
  }
  ssize_t r;
  do r = ::pread(readFd_, buf, n, static_cast<off_t>(offset));
  while (r < 0 && errno == EINTR);
  if (r < 0) return Error{Errc::Io, errno, "fill: read"};
  if (r == 0) return Error{Errc::Corrupt, 0, "fill: short file"};
  return static_cast<size_t>(r);
}

std::optional<Fill::Fetch> Fill::need(uint64_t offset) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!hasHead_ || !length_ || state_ != State::Streaming || offset >= *length_ || relayMode_) return std::nullopt;
  if (readableLocked(offset) > 0) return std::nullopt;
  for (const auto& f : fetchers_) {
    if (f.active && f.start <= offset && offset < f.end && offset >= f.cursor && offset - f.cursor <= kLookahead)
      return std::nullopt;  // it will be there soon
  }
  uint64_t s = offset - offset % kBlockSize;
  for (auto& f : fetchers_)
    if (f.active && f.cursor <= s && s < f.end) f.end = s;  // it stops where the new run starts
  return addFetcherLocked(s);
}

bool Fill::waitIfUnchanged(const Snapshot& seen, Executor* executor, Executor::Task wake) {
  std::lock_guard<std::mutex> lock(mu_);
  if (version_ != seen.version) return false;
  if (state_ == State::Complete || state_ == State::Failed || state_ == State::Revalidated) return false;
  waiters_.push_back(Waiter{executor, std::move(wake)});
  return true;
}

int Fill::activeFetchers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(fetchers_.begin(), fetchers_.end(), [](const Fetcher& f) { return f.active; }));
}

void Fill::leaveTable() {
  FillTable* t = table_.load();
  if (t) t->remove(this);
}

// ---- FillTable ----

FillTable::~FillTable() {
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    for (auto& [h, f] : s.fills) f->table_ = nullptr;
    s.fills.clear();
  }
  std::lock_guard<std::mutex> lock(storeKeysMu_);
  storeKeys_.clear();
}

void FillTable::noteStoreKey(Fill* fill) {
  std::lock_guard<std::mutex> lock(storeKeysMu_);
  // remove() clears table_ before it takes this lock: a fill that already
  // left is not noted, one that leaves later is un-noted there.
  if (fill->table_.load() != this || fill->storeKeyNoted_) return;
  ++storeKeys_[fill->storeKey().hash];
  fill->storeKeyNoted_ = true;
}

FillTable::Acquired FillTable::acquire(const CacheKey& key, std::shared_ptr<const ObjectMeta> revalidate,
                                       bool capped) {
  Shard& s = shardFor(key.hash);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.fills.find(key.hash);
  if (it != s.fills.end() && it->second->key().text == key.text) return {it->second, false};
  if (store_ && !revalidate) {
    if (auto m = store_->lookup(key); m && m->kind == ObjectMeta::Kind::Complete) return {nullptr, false};
  }
  if (it != s.fills.end()) {
    // Hash collision with a different key in flight: this one is filled privately.
    auto own = std::make_shared<Fill>(key, store_, false);
    own->setCapped(capped);
    return {std::move(own), true};
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
  fill->setCapped(capped);  // before another caller can join it
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
  std::lock_guard<std::mutex> keysLock(storeKeysMu_);
  if (fill->storeKeyNoted_) {
    auto k = storeKeys_.find(fill->storeKey().hash);
    if (k != storeKeys_.end() && --k->second == 0) storeKeys_.erase(k);
    fill->storeKeyNoted_ = false;
  }
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
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.fills.count(h) > 0) return true;
  }
  std::lock_guard<std::mutex> lock(storeKeysMu_);
  return storeKeys_.count(h) > 0;
}

size_t FillTable::purgeWhere(const std::function<bool(std::string_view)>& match) {
  std::vector<std::shared_ptr<Fill>> hit;
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    for (const auto& [h, f] : s.fills)
      if (match(f->key().text)) hit.push_back(f);
  }
  for (const auto& f : hit) f->purge();  // each leaves the table: its shard lock is free now
  return hit.size();
}

std::vector<FillTable::Progress> FillTable::progress(size_t max) const {
  std::vector<Progress> out;
  for (const auto& f : all()) {
    Progress p;
    p.key = f->key().text;
    p.received = f->receivedBytes();
    p.length = f->snapshot().length;
    p.readers = f->readers();
    out.push_back(std::move(p));
  }
  auto size = [](const Progress& p) { return p.length ? *p.length : p.received; };
  std::sort(out.begin(), out.end(), [&](const Progress& a, const Progress& b) {
    if (size(a) != size(b)) return size(a) > size(b);
    return a.key < b.key;  // a stable order between refreshes
  });
  if (out.size() > max) out.resize(max);
  return out;
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
