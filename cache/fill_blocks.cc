// Fill block bookkeeping (see fill.h): which blocks the fetchers have
// written, where the next gap is, how far a reader may read, the readers'
// cursors and the relay window's room. Every function here runs under mu_
// (the *Locked ones) or takes it.
//
// Hard parts: readableLocked() must never report a byte a fetcher has not
// written (readers would send zeros), and the waiters to wake are collected
// under the lock and posted after it (STYLE.md pattern 2).
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

// ---- bookkeeping (under mu_) ----

uint64_t Fill::blockCountLocked() const {
  if (!length_) return 0;
  return (*length_ + kBlockSize - 1) / kBlockSize;
}

void Fill::sizeBlocksLocked() {
  // Only a stored object is tracked in blocks (for resume and several
  // fetchers); its length was bounded before it was stored. A pass-through
  // is one run whose readable bytes the fetchers' cursors say, so a length
  // an origin merely declares never costs memory.
  done_.assign(cacheable_ ? blockCountLocked() : 0, false);
  sums_.assign(done_.size(), 0);
  summed_.assign(done_.size(), false);
}

Fill::Fetcher* Fill::fetcherLocked(uint32_t id) {
  for (auto& f : fetchers_)
    if (f.id == id) return &f;
  return nullptr;
}

void Fill::markBlocksLocked(const Fetcher& f, uint64_t from, uint64_t to) {
  if (!length_ || to <= from) return;
  uint64_t b = std::max(from, f.start) / kBlockSize;
  for (; b < done_.size(); ++b) {
    uint64_t bs = b * kBlockSize, be = std::min(bs + kBlockSize, *length_);
    if (bs >= to) break;
    if (bs >= f.start && be <= to) done_[b] = true;
  }
}

uint64_t Fill::runEndLocked(uint64_t start, uint32_t except) const {
  if (!length_) return kUnknown;
  uint64_t end = *length_;
  for (uint64_t b = start / kBlockSize + 1; b < done_.size(); ++b) {
    if (done_[b]) {
      end = b * kBlockSize;
      break;
    }
  }
  for (const auto& f : fetchers_)
    if (f.active && f.id != except && f.start > start) end = std::min(end, f.start);
  return end;
}

std::optional<uint64_t> Fill::firstGapLocked(uint64_t from) const {
  const uint64_t n = done_.size();
  if (n == 0) return std::nullopt;
  uint64_t first = std::min<uint64_t>(from / kBlockSize, n);
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t b = (first + i) % n;
    if (done_[b]) continue;
    uint64_t bs = b * kBlockSize;
    bool claimed = false;
    for (const auto& f : fetchers_)
      if (f.active && f.cursor <= bs && bs < f.end) claimed = true;
    // A block a running fetcher has started belongs to it too.
    for (const auto& f : fetchers_)
      if (f.active && f.start <= bs + kBlockSize - 1 && bs < f.cursor) claimed = true;
    if (!claimed) return bs;
  }
  return std::nullopt;
}

bool Fill::allDoneLocked() const {
  if (!length_) return false;
  if (!cacheable_) {
    // Not tracked in blocks: done when no fetcher runs and their runs cover
    // everything from the first one's start to the end.
    std::vector<std::pair<uint64_t, uint64_t>> runs;
    for (const auto& f : fetchers_) {
      if (f.active) return false;
      runs.emplace_back(f.start, f.cursor);
    }
    std::sort(runs.begin(), runs.end());
    uint64_t reach = runs.empty() ? 0 : runs.front().first;
    for (const auto& [a, b] : runs) {
      if (a > reach) return false;
      reach = std::max(reach, b);
    }
    return reach >= *length_;
  }
  return std::all_of(done_.begin(), done_.end(), [](bool d) { return d; });
}

uint64_t Fill::receivedBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  // The union of the done blocks and the fetchers' runs [start, cursor):
  // runs overlap the blocks they completed, and a resumed fill has done
  // blocks no fetcher of this process wrote.
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (uint64_t b = 0; b < done_.size(); ++b) {
    if (!done_[b]) continue;
    const uint64_t bs = b * kBlockSize, be = std::min(bs + kBlockSize, *length_);
    if (!spans.empty() && spans.back().second == bs) spans.back().second = be;
    else spans.emplace_back(bs, be);
  }
  for (const auto& f : fetchers_)
    if (f.cursor > f.start) spans.emplace_back(f.start, f.cursor);
  std::sort(spans.begin(), spans.end());
  uint64_t total = 0, reach = 0;
  for (const auto& [a, b] : spans) {
    const uint64_t from = std::max(a, reach);
    if (b > from) total += b - from;
    reach = std::max(reach, b);
  }
  return total;
}

uint64_t Fill::readableLocked(uint64_t offset) const {
  if (!hasHead_) return 0;
  if (length_ && offset >= *length_) return 0;
  uint64_t best = 0;
  if (length_) {
    uint64_t b = offset / kBlockSize;
    if (b < done_.size() && done_[b]) {
      uint64_t e = b;
      while (e < done_.size() && done_[e]) ++e;
      best = std::min(e * kBlockSize, *length_) - offset;
    }
  }
  for (const auto& f : fetchers_) {
    if (relayMode_ && f.id == relayFetcher_) continue;  // its bytes past relayStart_ are not on disk
    if (f.start <= offset && offset < f.cursor) best = std::max(best, f.cursor - offset);
  }
  if (relayMode_ && offset >= relayStart_ && offset < relayEnd_) best = std::max(best, relayEnd_ - offset);
  if (relayMode_) {
    const Fetcher* rf = nullptr;
    for (const auto& f : fetchers_)
      if (f.id == relayFetcher_) rf = &f;
    // The relaying fetcher's bytes before the window start are on disk.
    if (rf && rf->start <= offset && offset < relayStart_) best = std::max(best, relayStart_ - offset);
  }
  return best;
}

Fill::Fetch Fill::addFetcherLocked(uint64_t start) {
  Fetcher f{nextFetcherId_++, start, start, kUnknown, true};
  f.end = runEndLocked(start, f.id);
  fetchers_.push_back(f);
  return Fetch{f.id, start};
}

std::vector<Fill::Waiter> Fill::bumpLocked() {
  ++version_;
  std::vector<Waiter> w;
  w.swap(waiters_);
  if (roomWaiter_) {
    w.push_back(std::move(*roomWaiter_));
    roomWaiter_.reset();
  }
  return w;
}

uint64_t Fill::relayRoomLocked() const {
  uint64_t slowest = relayEnd_;
  for (const auto& c : cursors_) slowest = std::min(slowest, c.second);
  slowest = std::max(slowest, relayStart_);  // behind the window: lost already, it holds nothing back
  return relayCap_ - (relayEnd_ - slowest);
}

std::vector<Fill::Waiter> Fill::roomFreedLocked() const {
  std::vector<Waiter> w;
  if (roomWaiter_ && relayRoomLocked() >= roomWanted_) {
    w.push_back(std::move(*roomWaiter_));
    roomWaiter_.reset();
  }
  return w;
}

uint32_t Fill::addCursor(uint64_t at) {
  std::lock_guard<std::mutex> lock(mu_);
  cursors_.emplace_back(nextCursor_, at);
  return nextCursor_++;
}

void Fill::removeCursor(uint32_t cursor) {
  std::vector<Waiter> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < cursors_.size(); ++i)
      if (cursors_[i].first == cursor) {
        cursors_[i] = cursors_.back();
        cursors_.pop_back();
        break;
      }
    if (relayMode_) wake = roomFreedLocked();
  }
  post(std::move(wake));
}

bool Fill::dropSlowestCursor() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cursors_.size() < 2) return false;
  size_t slowest = 0;
  for (size_t i = 1; i < cursors_.size(); ++i)
    if (cursors_[i].second < cursors_[slowest].second) slowest = i;
  cursors_[slowest] = cursors_.back();
  cursors_.pop_back();
  return true;
}

bool Fill::waitForRoom(size_t n, Executor* executor, Executor::Task wake) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!relayMode_ || state_ != State::Streaming || relayRoomLocked() >= n) return false;
  roomWaiter_ = Waiter{executor, std::move(wake)};
  roomWanted_ = n;
  return true;
}

void Fill::post(std::vector<Waiter> wake) {
  for (auto& w : wake) w.executor->post(std::move(w.task));
}

}  // namespace orchard::cache
