// Fill and FillTable: see fill.h for the lifecycle and the fetcher model.
// The hard parts: one mutex per fill guards the block map, the fetchers'
// runs and the readers' cursors, and readers are woken on their own loops
// (waitIfUnchanged compares a version, so no wake-up is lost between a
// snapshot and a wait); a fill that cannot be stored relays through a
// bounded window whose slowest reader holds the writer back.
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
