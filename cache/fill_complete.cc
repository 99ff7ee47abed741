// How a fill ends and what it makes durable: complete() (every block
// written and summed, length checked, fdatasync, then the Complete record on
// the thread pool, never on a loop), revalidated(), fail() (a changed
// object drops its blocks), append() for private bodies, and checkpoints
// (the durable blocks recorded as a Partial record, so a cut fill resumes).
// The hard part: an object is visible as complete only after its bytes are
// on disk, and a checksum is taken from the file, not from the writes (a
// block may be finished by two fetchers).
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

namespace {
constexpr uint64_t kUnknown = std::numeric_limits<uint64_t>::max();
}  // namespace

void Fill::complete(int64_t nowSeconds) {
  ObjectMeta meta;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (committing_ || state_ != State::Streaming || (!allDoneLocked() && !relayMode_)) return;
    committing_ = true;
    meta = head_;
    meta.size = *length_;
  }
  if (cacheable_) {
    // The last blocks' checksums (the earlier ones came with checkpoints).
    if (sumBlocks()) {
      std::lock_guard<std::mutex> lock(mu_);
      if (std::all_of(summed_.begin(), summed_.end(), [](bool b) { return b; })) {
        meta.sums = sums_;
        meta.blockSize = kBlockSize;
      }
    }
    if (meta.sums.empty())
      OLOG_RATE(log::Level::Warn, "fill of %s: stored without block checksums (read-back failed)", key_.text.c_str());
    meta.gen = object_.gen;
    meta.lastAccess = nowSeconds;
    // Durable before it is recorded as complete: a power cut must never
    // leave a Complete record over bytes that were not written. A failed
    // sync or commit leaves the object unstored; the bytes are intact for
    // the readers already streaming (they read the page cache).
    bool stored = false;
    if (::fdatasync(writeFd_) != 0) {
      Error e{errno == ENOSPC || errno == EDQUOT ? Errc::NoSpace : Errc::Io, errno, "fill: sync before commit"};
      reportWriteFailure(e);
    } else if (auto r = store_->commitObject(storeKey(), std::move(meta)); !r) {
      OLOG_RATE(log::Level::Warn, "store commit failed for %s: %s", key_.text.c_str(), r.error().message().c_str());
    } else {
      stored = true;
    }
    if (!stored) {
      storeFailed_.store(true, std::memory_order_release);
      {
        std::lock_guard<std::mutex> lock(mu_);
        cacheable_ = false;
        dropped_ = true;
      }
      store_->dropObject(storeKey(), object_.gen);
    }
  }
  // Complete is published before leaving the table: a reader that found the
  // fill reads it to the end; a reader that misses the table finds the store.
  std::vector<Waiter> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_ = State::Complete;
    wake = bumpLocked();
  }
  post(std::move(wake));
  leaveTable();
}

void Fill::revalidated() {
  std::vector<Waiter> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != State::Pending) return;
    state_ = State::Revalidated;
    wake = bumpLocked();
  }
  post(std::move(wake));
  leaveTable();
}

void Fill::fail(Error error) { failInternal(error, false); }

void Fill::failChanged() { failInternal(Error{Errc::Corrupt, 0, "origin object changed during the fill"}, true); }

void Fill::failInternal(Error error, bool dropBlocks) {
  std::vector<Waiter> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (dropBlocks) dropped_ = true;
    if (state_ == State::Complete || state_ == State::Failed || state_ == State::Revalidated) return;
    state_ = State::Failed;
    error_ = error;
    for (auto& f : fetchers_) f.active = false;
    wake = bumpLocked();
  }
  post(std::move(wake));
  leaveTable();
  if (dropBlocks && object_.fd >= 0 && store_) store_->dropObject(storeKey(), object_.gen);
}

Result<void> Fill::append(const char* data, size_t n) {
  uint32_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (fetchers_.empty()) addFetcherLocked(0);
    const Fetcher& f = fetchers_.front();
    id = f.id;
    if (f.end != kUnknown && f.cursor + n > f.end) return Error{Errc::Protocol, 0, "fill: body longer than declared"};
  }
  auto r = write(id, data, n);
  if (!r) return r.error();
  if (r.value() < n) return Error{Errc::Protocol, 0, "fill: body longer than declared"};
  return ok();
}

void Fill::finish(int64_t nowSeconds) {
  uint32_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (fetchers_.empty()) addFetcherLocked(0);
    id = fetchers_.front().id;
  }
  Next n = fetcherDone(id);
  if (n.complete) complete(nowSeconds);
  else if (n.fetch) fail(Error{Errc::Protocol, 0, "fill: body shorter than declared"});
}

ObjectMeta Fill::partialMetaLocked(int64_t now) const {
  ObjectMeta m = head_;
  m.kind = ObjectMeta::Kind::Partial;
  m.gen = object_.gen;
  m.size = *length_;
  m.blockSize = kBlockSize;
  m.blocks.assign((done_.size() + 7) / 8, '\0');
  m.sums.assign(done_.size(), 0);
  m.verified.reset();
  // Only blocks with their checksum are listed: a resume keeps them, and a
  // block whose read-back failed is fetched again.
  for (uint64_t b = 0; b < done_.size(); ++b) {
    if (done_[b] && summed_[b]) {
      m.blocks[b / 8] = static_cast<char>(m.blocks[b / 8] | (1 << (b % 8)));
      m.sums[b] = sums_[b];
    }
  }
  m.lastAccess = now;
  return m;
}

bool Fill::sumBlocks() {
  std::lock_guard<std::mutex> one(sumMu_);
  std::vector<uint64_t> todo;
  uint64_t length;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!cacheable_ || !length_ || dropped_ || relayMode_) return true;
    length = *length_;
    for (uint64_t b = 0; b < done_.size(); ++b)
      if (done_[b] && !summed_[b]) todo.push_back(b);
  }
  if (todo.empty()) return true;
  std::vector<std::pair<uint64_t, uint64_t>> got;
  got.reserve(todo.size());
  bool allRead = true;
  for (uint64_t b : todo) {
    const uint64_t off = b * kBlockSize;
    auto sum = checksumRange(readFd_, off, std::min<uint64_t>(kBlockSize, length - off));
    if (!sum) {
      OLOG_RATE(log::Level::Warn, "fill of %s: reading block %llu back for its checksum: %s", key_.text.c_str(),
                static_cast<unsigned long long>(b), sum.error().message().c_str());
      allRead = false;
      break;
    }
    got.emplace_back(b, *sum);
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [b, sum] : got) {
    if (b >= sums_.size()) continue;
    sums_[b] = sum;
    summed_[b] = true;
  }
  return allRead;
}

void Fill::checkpoint(int64_t nowSeconds) {
  if (!shared_ || !store_ || object_.fd < 0) return;
  (void)sumBlocks();  // every checkpoint, also for objects that are not resumable
  std::lock_guard<std::mutex> one(checkpointMu_);
  sinceCheckpoint_.store(0, std::memory_order_relaxed);
  ObjectMeta meta;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!cacheable_ || !length_ || dropped_ || committing_ || relayMode_) return;
    // Resuming means range requests validated with If-Range: without a strong
    // ETag or a Last-Modified date a changed object could not be told apart.
    const bool strongEtag = !head_.etag.empty() && head_.etag.rfind("W/", 0) != 0;
    if (!strongEtag && head_.lastModified.empty()) return;
    if (state_ != State::Streaming && state_ != State::Failed) return;
    meta = partialMetaLocked(nowSeconds);
  }
  // The blocks named in the record must be on disk before the record is.
  if (::fdatasync(writeFd_) != 0) {
    reportWriteFailure(Error{errno == ENOSPC || errno == EDQUOT ? Errc::NoSpace : Errc::Io, errno, "fill: sync"});
    storeFailed_.store(true, std::memory_order_release);
    return;
  }
  if (store_->recordPartial(storeKey(), std::move(meta))) {  // a failure is reported by the store
    std::lock_guard<std::mutex> lock(mu_);
    recorded_ = true;
  } else {
    storeFailed_.store(true, std::memory_order_release);
  }
}

}  // namespace orchard::cache
