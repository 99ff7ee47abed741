// Fill and FillTable: see fill.h for the lifecycle.
#include "cache/fill.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

#include "common/log.h"

namespace orchard::cache {

const char* Fill::stateName(State s) {
  switch (s) {
    case State::Pending: return "Pending";
    case State::Streaming: return "Streaming";
    case State::Complete: return "Complete";
    case State::Failed: return "Failed";
  }
  return "?";
}

Fill::Fill(CacheKey key, Store* store, bool shared) : key_(std::move(key)), store_(store), shared_(shared) {}

Fill::~Fill() {
  if (readFd_ >= 0) ::close(readFd_);
  if (file_.valid() && store_) store_->abandon(std::move(file_));
  else if (file_.valid()) ::unlink(file_.path().c_str());
}

Result<void> Fill::begin(ObjectMeta head, bool cacheable, std::optional<uint64_t> length) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ != State::Pending) return Error{Errc::Invalid, 0, "fill: begin twice"};
  }
  if (store_) {
    auto tmp = store_->createTemp(key_);
    if (!tmp) return tmp.error();
    file_ = std::move(tmp.value());
  } else {
    // Private fill without a store: an anonymous temp file.
    char path[] = "/tmp/orchard-pass-XXXXXX";
    int fd = ::mkostemp(path, O_CLOEXEC);
    if (fd < 0) return Error{Errc::Io, errno, "fill: create temp file"};
    ::unlink(path);
    file_ = TempFile(fd, std::string(), key_.hash);
  }
  readFd_ = ::fcntl(file_.fd(), F_DUPFD_CLOEXEC, 0);
  if (readFd_ < 0) return Error{Errc::Io, errno, "fill: dup"};
  head_ = std::move(head);
  {
    std::lock_guard<std::mutex> lock(mu_);
    cacheable_ = cacheable && shared_ && store_ != nullptr;
    length_ = length;
    hasHead_ = true;
  }
  if (shared_ && !cacheable_) leaveTable();
  publish(State::Streaming, 0, std::nullopt);
  return ok();
}

Result<void> Fill::append(const char* data, size_t n) {
  if (length_ && written_ + n > *length_) return Error{Errc::Protocol, 0, "fill: body longer than declared"};
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::pwrite(file_.fd(), data + done, n - done, static_cast<off_t>(written_ + done));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Error{errno == ENOSPC ? Errc::NoSpace : Errc::Io, errno, "fill: write"};
    }
    done += static_cast<size_t>(w);
  }
  written_ += n;
  publish(State::Streaming, written_, std::nullopt);
  return ok();
}

void Fill::finish(int64_t nowSeconds) {
  if (length_ && written_ != *length_) {
    fail(Error{Errc::Protocol, 0, "fill: body shorter than declared"});
    return;
  }
  if (cacheable_) {
    ObjectMeta meta = head_;
    meta.size = written_;
    meta.lastAccess = nowSeconds;
    auto r = store_->commit(key_, std::move(file_), std::move(meta));
    if (!r) {
      OLOG_RATE(log::Level::Warn, "store commit failed for %s: %s", key_.text.c_str(), r.error().message().c_str());
      // The bytes are intact on disk for the readers already streaming;
      // the object is simply not stored.
    }
  }
  // Complete is published before leaving the table: a reader that found the
  // fill reads it to the end; a reader that misses the table finds the store.
  publish(State::Complete, written_, std::nullopt);
  leaveTable();
}

void Fill::fail(Error error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::Complete || state_ == State::Failed) return;
  }
  publish(State::Failed, written_, error);
  leaveTable();
}

void Fill::publish(State state, uint64_t committed, std::optional<Error> error) {
  std::vector<Waiter> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_ = state;
    committed_ = committed;
    if (error) error_ = *error;
    wake.swap(waiters_);
  }
  for (auto& w : wake) w.executor->post(std::move(w.task));
}

Fill::Snapshot Fill::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  Snapshot s;
  s.state = state_;
  s.committed = committed_;
  s.cacheable = cacheable_;
  s.hasHead = hasHead_;
  s.length = length_;
  s.error = error_;
  return s;
}

bool Fill::waitIfUnchanged(const Snapshot& seen, Executor* executor, Executor::Task wake) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ != seen.state || committed_ != seen.committed) return false;
  if (state_ == State::Complete || state_ == State::Failed) return false;  // terminal: nothing will change
  waiters_.push_back(Waiter{executor, std::move(wake)});
  return true;
}

void Fill::leaveTable() {
  FillTable* t = table_;
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

FillTable::Acquired FillTable::acquire(const CacheKey& key) {
  Shard& s = shardFor(key.hash);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.fills.find(key.hash);
  if (it != s.fills.end() && it->second->key().text == key.text) return {it->second, false};
  if (store_ && store_->lookup(key)) return {nullptr, false};
  if (it != s.fills.end()) {
    // Hash collision with a different key in flight: this one is filled privately.
    return {std::make_shared<Fill>(key, store_, false), true};
  }
  auto fill = std::make_shared<Fill>(key, store_, true);
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

}  // namespace orchard::cache
