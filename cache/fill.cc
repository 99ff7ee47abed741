// Fill: see fill.h for the lifecycle and the fetcher model. This file holds
// set-up (adopting a partial record), the block and run bookkeeping, and
// the writer side (begin, write, fetcher hand-over); fill_read.cc the
// readers and the relay window, fill_complete.cc completion, failure and
// durability, fill_table.cc the table of fills in flight. The hard parts:
// one mutex per fill guards the block map, the fetchers' runs and the
// readers' cursors, and readers are woken on their own loops
// (waitIfUnchanged compares a version, so no wake-up is lost between a
// snapshot and a wait).
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

const char* Fill::stateName(State s) {
  switch (s) {
    case State::Pending: return "Pending";
    case State::Streaming: return "Streaming";
    case State::Complete: return "Complete";
    case State::Failed: return "Failed";
    case State::Revalidated: return "Revalidated";
  }
  return "?";
}

Fill::Fill(CacheKey key, Store* store, bool shared) : key_(std::move(key)), store_(store), shared_(shared) {}

Fill::~Fill() {
  if (readFd_ >= 0) ::close(readFd_);
  if (temp_.valid()) {
    if (store_) store_->abandon(std::move(temp_));
    else if (!temp_.path().empty()) ::unlink(temp_.path().c_str());
  }
  if (object_.fd >= 0) {
    ::close(object_.fd);
    bool keep;
    {
      std::lock_guard<std::mutex> lock(mu_);
      keep = state_ == State::Complete || (recorded_ && !dropped_);
    }
    if (!keep && store_) store_->dropObject(storeKey(), object_.gen);
  }
}

// ---- set-up ----

Result<void> Fill::adopt(const ObjectMeta& partial) {
  if (!store_ || !shared_) return Error{Errc::Invalid, 0, "fill: adopt needs a shared fill"};
  if (partial.size > kMaxStoredLength) return Error{Errc::Corrupt, 0, "fill: partial record larger than any object"};
  auto fd = store_->reopenPartial(key_, partial);
  if (!fd) return fd.error();
  object_ = ObjectFile{fd.value(), partial.gen};
  writeFd_ = object_.fd;
  readFd_ = ::fcntl(writeFd_, F_DUPFD_CLOEXEC, 0);
  if (readFd_ < 0) return Error{Errc::Io, errno, "fill: dup"};
  head_ = partial;
  head_.kind = ObjectMeta::Kind::Complete;
  head_.blocks.clear();
  head_.sums.clear();
  head_.verified.reset();
  std::lock_guard<std::mutex> lock(mu_);
  length_ = partial.size;
  cacheable_ = true;
  sizeBlocksLocked();
  if (partial.blockSize == kBlockSize) {
    // The record's checksums come along; blocks of a record without them
    // (written before checksums) are read back at the next checkpoint.
    const bool sums = partial.sums.size() == done_.size();
    for (uint64_t b = 0; b < done_.size(); ++b) {
      done_[b] = b / 8 < partial.blocks.size() && ((static_cast<unsigned char>(partial.blocks[b / 8]) >> (b % 8)) & 1);
      if (done_[b] && sums) {
        sums_[b] = partial.sums[b];
        summed_[b] = true;
      }
    }
  }
  hasHead_ = true;
  shareable_ = true;
  recorded_ = true;
  state_ = State::Streaming;
  return ok();
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

void Fill::post(std::vector<Waiter> wake) {
  for (auto& w : wake) w.executor->post(std::move(w.task));
}

// ---- writer side ----

Fill::Fetch Fill::firstFetch(uint64_t start) {
  std::lock_guard<std::mutex> lock(mu_);
  if (length_) {
    // Resuming: start at the first missing block at or after `start`.
    auto gap = firstGapLocked(start);
    start = gap ? *gap : 0;
  }
  // A fresh fill starts exactly where its first reader wants bytes, so that
  // they are the first the origin sends; the block it starts in is not
  // complete from this run and is fetched again, whole, behind it.
  return addFetcherLocked(start);
}

Result<void> Fill::begin(ObjectMeta head, bool cacheable, std::optional<uint64_t> length,
                         std::optional<CacheKey> storeKey, std::optional<bool> shareable) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != State::Pending) return Error{Errc::Invalid, 0, "fill: begin twice"};
  }
  if (storeKey && storeKey->text != key_.text) storeKey_ = std::move(storeKey);
  // The caller bounds what it stores (storage.max_object_size); this cap
  // only keeps the block map small whatever a caller passes.
  bool store = cacheable && shared_ && store_ != nullptr && (!length || *length <= kMaxStoredLength);
  bool noFile = false;  // the store cannot give us a file: relay from memory
  if (store) {
    auto obj = store_->createObject(this->storeKey());  // a failure is reported by the store
    if (obj) {
      object_ = obj.value();
      writeFd_ = object_.fd;
    } else {
      noFile = true;
    }
  } else if (store_) {
    auto tmp = store_->createTemp(key_);
    if (tmp) {
      temp_ = std::move(tmp.value());
      ::unlink(temp_.path().c_str());  // nothing to keep: gone with the last descriptor
      writeFd_ = temp_.fd();
    } else {
      noFile = true;
    }
  } else {
    char path[] = "/tmp/orchard-fill-XXXXXX";
    int fd = ::mkostemp(path, O_CLOEXEC);
    if (fd >= 0) {
      ::unlink(path);
      temp_ = TempFile(fd, std::string(), key_.hash);
      writeFd_ = fd;
    } else {
      noFile = true;
    }
  }
  if (!noFile) {
    readFd_ = ::fcntl(writeFd_, F_DUPFD_CLOEXEC, 0);
    if (readFd_ < 0) return Error{Errc::Io, errno, "fill: dup"};
  }
  if (noFile) store = false;
  head_ = std::move(head);
  std::vector<Waiter> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cacheable_ = store;
    shareable_ = shared_ && shareable.value_or(cacheable);
    length_ = length;
    sizeBlocksLocked();
    hasHead_ = true;
    state_ = State::Streaming;
    for (auto& f : fetchers_) f.end = runEndLocked(f.start, f.id);
    if (noFile) {
      // Before its head is known a fill has only its first fetcher.
      Fetcher* first = nullptr;
      for (auto& f : fetchers_)
        if (f.active && !first) first = &f;
      if (!first) {
        addFetcherLocked(0);
        first = &fetchers_.back();
      }
      enterRelayLocked(*first);
    }
    wake = bumpLocked();
  }
  if (shared_ && !cacheable_) leaveTable();
  post(std::move(wake));
  return ok();
}

void Fill::restartAtZero(uint32_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Fetcher* f = fetcherLocked(id);
  if (!f || f->cursor != f->start) return;
  f->start = f->cursor = 0;
  f->end = runEndLocked(0, id);
}

Result<size_t> Fill::write(uint32_t id, const char* data, size_t n) {
  uint64_t off, take;
  std::vector<Waiter> relayed;
  bool viaRelay = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::Failed) return Error{Errc::Closed, 0, "fill: failed"};
    Fetcher* f = fetcherLocked(id);
    if (!f || !f->active || state_ != State::Streaming) return size_t{0};
    if (f->end != kUnknown && f->cursor >= f->end) return size_t{0};
    off = f->cursor;
    take = f->end == kUnknown ? n : std::min<uint64_t>(n, f->end - f->cursor);
    if (relayMode_) {
      if (id != relayFetcher_) return size_t{0};
      // Never over bytes a reader with a cursor still needs: the writer
      // waits for room (waitForRoom()). Readers without one may lose the
      // oldest bytes.
      if (relayRoomLocked() < take) return Error{Errc::Busy, 0, "fill: relay window full"};
      for (uint64_t i = 0; i < take;) {
        uint64_t at = (off + i) % relayCap_;
        uint64_t chunk = std::min<uint64_t>(take - i, relayCap_ - at);
        std::memcpy(relay_.get() + at, data + i, chunk);
        i += chunk;
      }
      f->cursor = off + take;
      relayEnd_ = f->cursor;
      if (relayEnd_ - relayStart_ > relayCap_) relayStart_ = relayEnd_ - relayCap_;
      relayed = bumpLocked();
      viaRelay = true;
    }
  }
  if (viaRelay) {
    post(std::move(relayed));
    return static_cast<size_t>(take);
  }
  size_t done = 0;
  while (done < take) {
    ssize_t w = ::pwrite(writeFd_, data + done, take - done, static_cast<off_t>(off + done));
    if (w < 0) {
      if (errno == EINTR) continue;
      Error e{errno == ENOSPC || errno == EDQUOT ? Errc::NoSpace : Errc::Io, errno, "fill: write"};
      reportWriteFailure(e);
      return e;
    }
    done += static_cast<size_t>(w);
  }
  std::vector<Waiter> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Fetcher* f = fetcherLocked(id);
    if (f) {
      f->cursor = off + take;
      markBlocksLocked(*f, off, f->cursor);
    }
    wake = bumpLocked();
  }
  sinceCheckpoint_.fetch_add(take, std::memory_order_relaxed);
  post(std::move(wake));
  return static_cast<size_t>(take);
}

Fill::Next Fill::fetcherDone(uint32_t id) {
  Next next;
  bool shortBody = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Fetcher* f = fetcherLocked(id);
    if (!f || state_ != State::Streaming) return next;
    f->active = false;
    if (relayMode_) {
      if (id != relayFetcher_) return next;
      if (!length_) length_ = f->cursor;
      if (f->cursor < *length_) {
        shortBody = true;
      } else {
        next.complete = true;  // nothing is stored: Complete only ends the readers cleanly
        return next;
      }
    } else if (!length_) {
      // Unknown length (chunked or close-delimited): the body just ended.
      length_ = f->cursor;
      sizeBlocksLocked();
      markBlocksLocked(*f, f->start, f->cursor);
    } else if (f->cursor < f->end && f->end != kUnknown) {
      shortBody = true;
    }
    if (!shortBody) {
      if (allDoneLocked()) {
        next.complete = true;
      } else if (auto gap = firstGapLocked(f->end == kUnknown ? f->cursor : f->end)) {
        next.fetch = addFetcherLocked(*gap);
      }
    }
  }
  if (shortBody) fail(Error{Errc::Protocol, 0, "fill: body shorter than declared"});
  return next;
}

void Fill::fetcherStopped(uint32_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Fetcher* f = fetcherLocked(id)) f->active = false;
}


}  // namespace orchard::cache
