// Fill, writer side (see fill.h for the lifecycle and the fetcher model):
// set-up (a new fill, or one adopting a partial record), the fetchers'
// writes, completion (checksums, sync, commitObject), failure, and the
// checkpoints that make a partial resumable. The block bookkeeping is in
// fill_blocks.cc, the readers and the FillTable in fill_reader.cc.
//
// Hard parts: bytes are durable before any record names them (fdatasync
// before recordPartial() and commitObject()), and a fill whose store write
// fails turns into a relay without failing its readers.
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
      keep = !purged_ && (state_ == State::Complete || (recorded_ && !dropped_));
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
  bool purged;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != State::Pending) return Error{Errc::Invalid, 0, "fill: begin twice"};
    purged = purged_;
  }
  if (storeKey && storeKey->text != key_.text) {
    storeKey_ = std::move(storeKey);
    if (FillTable* t = table_.load()) t->noteStoreKey(this);
  }
  // The caller bounds what it stores (storage.max_object_size); this cap
  // only keeps the block map small whatever a caller passes.
  bool store = cacheable && !purged && shared_ && store_ != nullptr && (!length || *length <= kMaxStoredLength);
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

std::optional<Fill::Next> Fill::fetcherCut(uint32_t id) {
  Next next;
  std::lock_guard<std::mutex> lock(mu_);
  Fetcher* f = fetcherLocked(id);
  if (!f || state_ != State::Streaming || relayMode_ || !cacheable_ || !length_) return std::nullopt;
  f->active = false;
  if (allDoneLocked()) {
    next.complete = true;
  } else if (auto gap = firstGapLocked(f->cursor / kBlockSize * kBlockSize)) {
    next.fetch = addFetcherLocked(*gap);
  }
  return next;
}

void Fill::fetcherStopped(uint32_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Fetcher* f = fetcherLocked(id)) f->active = false;
}

void Fill::complete(int64_t nowSeconds) {
  ObjectMeta meta;
  bool purged;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (committing_ || state_ != State::Streaming || (!allDoneLocked() && !relayMode_)) return;
    committing_ = true;
    meta = head_;
    meta.size = *length_;
    purged = purged_;
  }
  if (cacheable_ && !purged) {
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
    if (stored) {
      // A purge that came while the commit was under way: it did not drop
      // the file (purge() leaves a committing fill alone), so the object it
      // just made visible goes again, unless a newer generation replaced it.
      bool purgedNow;
      {
        std::lock_guard<std::mutex> lock(mu_);
        purgedNow = purged_;
      }
      if (purgedNow) {
        if (auto m = store_->lookup(storeKey()); m && m->gen == object_.gen) (void)store_->remove(storeKey());
      }
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

void Fill::purge() {
  bool drop = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (purged_) return;
    purged_ = true;
    dropped_ = true;  // no checkpoint records its blocks from now on
    // A committing fill's file is the commit's: complete() removes the
    // object once its commit lands instead.
    drop = hasHead_ && cacheable_ && !committing_ && object_.fd >= 0;
  }
  leaveTable();
  if (drop && store_) store_->dropObject(storeKey(), object_.gen);
}

bool Fill::purged() const {
  std::lock_guard<std::mutex> lock(mu_);
  return purged_;
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
