// The reader side of a fill: snapshots, readable bytes past a cursor,
// read() from the object file or from the relay window, need() (a fetcher
// for bytes no run will bring soon), waitIfUnchanged(), and the relay
// window itself (cursors, room, the slowest reader). The hard part is the
// window: the writer may never overwrite bytes a reader's cursor has not
// passed, and a reader left behind it gets an error, never other bytes.
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

}  // namespace orchard::cache
