// FileStore core: the in-memory map and its locks (see file_store.h):
// loading the records at open, lookup, publishing a new entry, reader pins,
// and every change of a key's complete or partial record.
//
// Hard parts: a key's file, record and map entry must change in one order
// under its key lock (file -> record -> map on a commit, the reverse on a
// drop), while the RocksDB write itself is only queued under it;
// commitObject() and recordPartial() wait for theirs after releasing the
// lock and undo the memory change if it failed. Every change ends with
// syncLocked(), which feeds the eviction policy.
#include "cache/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "cache/file_util.h"
#include "common/log.h"

namespace orchard::cache {

FileStore::FileStore(StoreOptions options, std::shared_ptr<db::Database> database)
    : options_(std::move(options)),
      objectsDir_(options_.dir + "/objects"),
      tmpDir_(options_.dir + "/tmp"),
      index_(std::move(database)),
      policy_(S3Fifo::Options{options_.cacheLimit}),
      cacheLimit_(options_.cacheLimit) {}

// ---- records ----

void FileStore::postRecord(const Hash128& hash, const std::string* record) {
  db::Batch batch;
  if (record) index_.stagePut(batch, hash, *record);
  else index_.stageDel(batch, hash);
  writer_.post(std::move(batch), [this](const Result<void>& r) {
    if (!r) (void)writeFailed(r.error(), indexPath());
  });
}

std::future<Result<void>> FileStore::submitRecord(const Hash128& hash, const std::string& record) {
  db::Batch batch;
  index_.stagePut(batch, hash, record);
  auto done = std::make_shared<std::promise<Result<void>>>();
  std::future<Result<void>> result = done->get_future();
  writer_.post(std::move(batch), [done](const Result<void>& r) { done->set_value(r); });
  return result;
}

FileStore::~FileStore() {
  {
    std::lock_guard lock(bgMu_);
    stop_ = true;
  }
  stopping_.store(true, std::memory_order_relaxed);
  bgCv_.notify_all();
  if (bg_.joinable()) bg_.join();
  for (auto& sp : spares_) {
    ::close(sp.fd);
    ::unlink(sp.path.c_str());
  }
}

void FileStore::start() {
  reconcileBelowGen_ = genCounter_.load(std::memory_order_relaxed);
  lastScrubMs_ = steadyMs();
  bg_ = std::thread([this] { run(); });
}

Result<void> FileStore::load() {
  std::vector<Hash128> bad;
  std::vector<std::string> badKeys;
  std::unordered_map<Hash128, std::shared_ptr<const ObjectMeta>, Hash128Hasher> map, partial;
  std::unordered_map<Hash128, std::shared_ptr<EntryState>, Hash128Hasher> state;
  uint64_t maxGen = 0;
  StoreStats stats;
  // Decode first (sequential RocksDB scan), then build the two hash tables
  // at their final size and in parallel: with a million objects the table
  // inserts (cache misses and rehashing) cost more than the decoding.
  std::vector<std::pair<Hash128, std::shared_ptr<const ObjectMeta>>> loaded;
  Result<void> r = index_.forEach(
      [&](const Hash128& hash, std::string_view bytes) {
        Result<ObjectMeta> meta = decodeMeta(bytes);
        if (!meta || !(hashKey(meta->key) == hash)) {
          bad.push_back(hash);
          return;
        }
        if (meta->kind != ObjectMeta::Kind::VaryStub) maxGen = std::max(maxGen, meta->gen);
        if (meta->kind == ObjectMeta::Kind::Complete) prepareMarks(&meta.value());
        if (meta->kind == ObjectMeta::Kind::Partial) {
          stats.partials += 1;
          stats.partialBytes += durableBytes(*meta);
        } else if (meta->kind == ObjectMeta::Kind::Complete) {
          stats.objects += 1;
          stats.bytes += meta->size;
        }
        loaded.emplace_back(hash, std::make_shared<const ObjectMeta>(std::move(meta).value()));
      },
      [&](std::string_view key) { badKeys.emplace_back(key); });
  if (!r) return r;
  std::thread states([&] {
    state.reserve(loaded.size());
    for (const auto& [h, m] : loaded)
      if (m->kind != ObjectMeta::Kind::VaryStub) state.emplace(h, std::make_shared<EntryState>());
  });
  map.reserve(stats.objects + loaded.size() / 16);
  for (const auto& [h, m] : loaded) {  // copies: the other thread reads `loaded` too
    if (m->kind == ObjectMeta::Kind::Partial) partial.emplace(h, m);
    else map.emplace(h, m);
  }
  states.join();
  loaded.clear();
  loaded.shrink_to_fit();

  if (!bad.empty() || !badKeys.empty()) {
    OLOG_WARN("store: dropping %zu undecodable or mismatched index records", bad.size() + badKeys.size());
    IndexBatch batch;
    for (const Hash128& h : bad) batch.del(h);
    if (Result<void> w = index_.write(std::move(batch)); !w) return w;
    for (const std::string& k : badKeys) {
      if (Result<void> w = index_.delRaw(k); !w) return w;
    }
  }
  uint64_t next = genCounter_.load(std::memory_order_relaxed);
  if (maxGen >= next) genCounter_.store(maxGen + 1, std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  map_ = std::move(map);
  partial_ = std::move(partial);
  state_ = std::move(state);
  stats_ = stats;
  return ok();
}

std::shared_ptr<const ObjectMeta> FileStore::lookup(const CacheKey& key) const {
  std::shared_ptr<const ObjectMeta> meta;
  {
    std::shared_lock lock(mu_);
    auto it = map_.find(key.hash);
    if (it == map_.end()) return nullptr;
    meta = it->second;
  }
  // The full text decides: a hash collision is a miss, never a wrong object.
  if (meta->key != key.text) return nullptr;
  return meta;
}

Result<int> FileStore::openObject(const CacheKey& key, const ObjectMeta& meta) {
  int err = 0;
  bool mismatch = false;
  if (meta.kind != ObjectMeta::Kind::Complete) return Error{Errc::Invalid, 0, "open object: not a complete object"};
  int fd = openChecked(key.hash, meta.gen, meta.size, &err, &mismatch);
  if (fd >= 0) return fd;
  if (!mismatch && err != ENOENT) return errnoError(err, "open object");  // EMFILE etc: the object is fine

  // The file is missing or has the wrong size. A commit may have replaced
  // it since the caller's lookup(), so decide under the key lock, against
  // the entry that is current now.
  std::lock_guard keyGuard(keyLock(key.hash));
  fd = openChecked(key.hash, meta.gen, meta.size, &err, &mismatch);
  if (fd >= 0) return fd;
  if (!mismatch && err != ENOENT) return errnoError(err, "open object");

  std::shared_ptr<const ObjectMeta> current;
  {
    std::shared_lock lock(mu_);
    auto it = map_.find(key.hash);
    if (it != map_.end()) current = it->second;
  }
  if (current && current->kind == ObjectMeta::Kind::Complete) {
    // The caller may hold a stale entry: if the file matches the current
    // one, that entry is intact and stays.
    bool currentMismatch = false;
    int fd2 = openChecked(key.hash, current->gen, current->size, &err, &currentMismatch);
    if (fd2 >= 0) {
      ::close(fd2);
      return Error{Errc::NotFound, 0, "open object: replaced since lookup"};
    }
    OLOG_RATE(log::Level::Warn, "store: dropping %s: object file %s", current->key.c_str(),
              currentMismatch ? "has the wrong size" : "is missing");
    (void)dropLocked(key.hash);
    syncLocked(key.hash);
  }
  if (mismatch) return Error{Errc::Corrupt, 0, "open object: size mismatch"};
  return Error{Errc::NotFound, ENOENT, "open object: file missing"};
}

Result<OpenObject> FileStore::openForRead(const CacheKey& key, const ObjectMeta& meta) {
  // Pin first, then open: an evictor that checks the pin after this
  // increment leaves the object alone; one that checked before may unlink
  // the file, and then the open below fails (a miss) or got the inode first
  // (its bytes stay readable). Never a torn read.
  std::shared_ptr<EntryState> st;
  {
    std::shared_lock lock(mu_);
    auto it = state_.find(key.hash);
    if (it != state_.end()) st = it->second;
  }
  std::shared_ptr<void> pin;
  if (st) {
    st->readers.fetch_add(1, std::memory_order_acq_rel);
    EntryState* raw = st.get();
    pin = std::shared_ptr<void>(raw, [st = std::move(st)](void*) { st->readers.fetch_sub(1, std::memory_order_acq_rel); });
  }
  Result<int> fd = openObject(key, meta);
  if (!fd) return fd.error();  // the pin goes with it
  return OpenObject{*fd, std::move(pin)};
}

void FileStore::touch(const CacheKey& key) {
  std::shared_lock lock(mu_);
  auto it = state_.find(key.hash);
  if (it != state_.end()) it->second->freq.bump();
}

uint64_t FileStore::durableBytes(const ObjectMeta& m) {
  uint64_t n = 0;
  for (unsigned char c : m.blocks) n += static_cast<uint64_t>(__builtin_popcount(c));
  return std::min<uint64_t>(n * m.blockSize, m.size);
}

void FileStore::publishLocked(const Hash128& hash, std::shared_ptr<const ObjectMeta> published) {
  std::shared_ptr<const ObjectMeta> old;
  {
    std::unique_lock lock(mu_);
    auto [it, inserted] = map_.try_emplace(hash, published);
    if (!inserted) {
      old = it->second;
      if (old->kind == ObjectMeta::Kind::Complete) {
        stats_.objects -= 1;
        stats_.bytes -= old->size;
      }
      it->second = published;
    }
    if (published->kind == ObjectMeta::Kind::Complete) {
      stats_.objects += 1;
      stats_.bytes += published->size;
    }
  }
  if (old && old->kind == ObjectMeta::Kind::Complete && old->gen != published->gen) {
    ::unlink(objectPath(hash, old->gen).c_str());  // readers holding it open keep their bytes
    tellUnlinked(hash, old->gen, old->size);
  }
}

void FileStore::erasePartialLocked(const Hash128& hash, Tally tally) {
  std::unique_lock lock(mu_);
  auto it = partial_.find(hash);
  if (it == partial_.end()) return;
  stats_.partials -= 1;
  stats_.partialBytes -= durableBytes(*it->second);
  if (tally != Tally::None) stats_.evictedBytes += durableBytes(*it->second);
  if (tally == Tally::Eviction) stats_.evictions += 1;
  partial_.erase(it);
}

std::shared_ptr<const ObjectMeta> FileStore::lookupPartial(const CacheKey& key) const {
  std::shared_ptr<const ObjectMeta> meta;
  {
    std::shared_lock lock(mu_);
    auto it = partial_.find(key.hash);
    if (it == partial_.end()) return nullptr;
    meta = it->second;
  }
  if (meta->key != key.text) return nullptr;
  return meta;
}

Result<void> FileStore::recordPartial(const CacheKey& key, ObjectMeta meta) {
  if (meta.kind != ObjectMeta::Kind::Partial || meta.blockSize == 0) return Error{Errc::Invalid, 0, "record partial: bad meta"};
  meta.key = key.text;
  std::string record = encodeMeta(meta);
  auto published = std::make_shared<const ObjectMeta>(std::move(meta));
  std::unique_lock keyGuard(keyLock(key.hash));
  {
    // A complete object of the key keeps its record: the partial is only
    // tracked in memory then (the record slot is the complete one's).
    std::shared_lock lock(mu_);
    auto it = map_.find(key.hash);
    if (it != map_.end() && it->second->kind == ObjectMeta::Kind::Complete) return ok();
  }
  std::future<Result<void>> written = submitRecord(key.hash, record);
  {
    std::unique_lock lock(mu_);
    auto [it, inserted] = partial_.try_emplace(key.hash, published);
    if (inserted) {
      stats_.partials += 1;
    } else {
      stats_.partialBytes -= durableBytes(*it->second);
      it->second = published;
    }
    stats_.partialBytes += durableBytes(*published);
  }
  syncLocked(key.hash);
  keyGuard.unlock();
  // The fill that called waits for its record (a worker thread); no lock is
  // held, so a loop thread touching a key of the same stripe does not. A
  // failure leaves the entry in memory: the fill drops it (dropObject()).
  if (Result<void> r = written.get(); !r) return writeFailed(r.error(), indexPath());
  health().writeSucceeded(steadyMs());
  return ok();
}

Result<void> FileStore::commitObject(const CacheKey& key, ObjectMeta meta) {
  meta.key = key.text;
  meta.kind = ObjectMeta::Kind::Complete;
  meta.blocks.clear();
  if (meta.sums.empty()) meta.blockSize = 0;
  prepareMarks(&meta);
  struct stat st;
  if (::stat(objectPath(key.hash, meta.gen).c_str(), &st) != 0) {
    if (errno == ENOENT) return Error{Errc::Invalid, ENOENT, "commit object: no such object file for this key"};
    return writeFailed(errnoError(errno, "commit object: stat"), objectPath(key.hash, meta.gen));
  }
  if (static_cast<uint64_t>(st.st_size) != meta.size) return Error{Errc::Corrupt, 0, "commit object: size mismatch"};
  std::string record = encodeMeta(meta);
  auto published = std::make_shared<const ObjectMeta>(std::move(meta));
  const ObjectMeta* mine = published.get();
  std::future<Result<void>> written;
  {
    std::lock_guard keyGuard(keyLock(key.hash));
    written = submitRecord(key.hash, record);
    erasePartialLocked(key.hash);
    publishLocked(key.hash, std::move(published));
    syncLocked(key.hash);
  }
  // Waited for with no lock held (see recordPartial()). The object was
  // visible meanwhile, which is harmless: its bytes are complete and
  // durable. If its record could not be written it is dropped again (it
  // would not survive a restart), unless something replaced it since.
  if (Result<void> r = written.get(); !r) {
    std::lock_guard keyGuard(keyLock(key.hash));
    bool stillMine;
    {
      std::shared_lock lock(mu_);
      auto it = map_.find(key.hash);
      stillMine = it != map_.end() && it->second.get() == mine;
    }
    if (stillMine) {
      (void)dropLocked(key.hash);
      syncLocked(key.hash);
    }
    return writeFailed(r.error(), indexPath());
  }
  health().writeSucceeded(steadyMs());
  return ok();
}

void FileStore::dropObject(const CacheKey& key, uint64_t gen) {
  std::lock_guard keyGuard(keyLock(key.hash));
  dropPartialLocked(key.hash, gen);
  syncLocked(key.hash);
}

void FileStore::dropPartialLocked(const Hash128& hash, uint64_t gen, Tally tally) {
  std::shared_ptr<const ObjectMeta> p;
  {
    std::shared_lock lock(mu_);
    auto it = partial_.find(hash);
    if (it != partial_.end()) p = it->second;
  }
  if (p && p->gen == gen) {
    bool completeExists;
    {
      std::shared_lock lock(mu_);
      completeExists = map_.count(hash) > 0;
    }
    if (!completeExists) postRecord(hash, nullptr);
    erasePartialLocked(hash, tally);
  }
  {
    // Never unlink the file a complete record names.
    std::shared_lock lock(mu_);
    auto it = map_.find(hash);
    if (it != map_.end() && it->second->gen == gen && it->second->kind == ObjectMeta::Kind::Complete) return;
  }
  ::unlink(objectPath(hash, gen).c_str());
}

Result<void> FileStore::putStub(const CacheKey& key, ObjectMeta meta) {
  if (meta.kind != ObjectMeta::Kind::VaryStub) return Error{Errc::Invalid, 0, "put stub: not a stub"};
  meta.key = key.text;
  std::string record = encodeMeta(meta);
  auto published = std::make_shared<const ObjectMeta>(std::move(meta));
  std::lock_guard keyGuard(keyLock(key.hash));
  postRecord(key.hash, &record);  // not waited for: a loop thread calls this
  publishLocked(key.hash, std::move(published));
  syncLocked(key.hash);
  return ok();
}

Result<void> FileStore::refresh(const CacheKey& key, const ObjectMeta& updated) {
  std::lock_guard keyGuard(keyLock(key.hash));
  std::shared_ptr<const ObjectMeta> current;
  {
    std::shared_lock lock(mu_);
    auto it = map_.find(key.hash);
    if (it != map_.end()) current = it->second;
  }
  if (!current || current->key != key.text || current->kind != ObjectMeta::Kind::Complete ||
      current->gen != updated.gen || current->size != updated.size)
    return Error{Errc::NotFound, 0, "refresh: object changed"};
  ObjectMeta m = updated;
  m.key = key.text;
  m.kind = ObjectMeta::Kind::Complete;
  // Same generation, same bytes: its checksums and what passed them stay.
  m.blockSize = current->blockSize;
  m.sums = current->sums;
  m.verified = current->verified;
  const std::string record = encodeMeta(m);
  postRecord(key.hash, &record);  // not waited for: a loop thread calls this
  publishLocked(key.hash, std::make_shared<const ObjectMeta>(std::move(m)));
  syncLocked(key.hash);
  return ok();
}

Result<void> FileStore::dropLocked(const Hash128& hash, Tally tally) {
  postRecord(hash, nullptr);  // not waited for: hits (openObject, verification) drop on a loop thread
  Result<void> r = ok();
  std::shared_ptr<const ObjectMeta> gone;
  {
    std::unique_lock lock(mu_);
    auto it = map_.find(hash);
    if (it != map_.end()) {
      gone = it->second;
      if (gone->kind == ObjectMeta::Kind::Complete) {
        stats_.objects -= 1;
        stats_.bytes -= gone->size;
        if (tally != Tally::None) stats_.evictedBytes += gone->size;
        if (tally == Tally::Eviction) stats_.evictions += 1;
      }
      map_.erase(it);
    }
  }
  if (gone && gone->kind == ObjectMeta::Kind::Complete) {
    if (::unlink(objectPath(hash, gone->gen).c_str()) != 0 && errno != ENOENT && r) r = errnoError(errno, "remove: unlink");
    tellUnlinked(hash, gone->gen, gone->size);
  }
  return r;
}

Result<void> FileStore::remove(const CacheKey& key) {
  std::lock_guard keyGuard(keyLock(key.hash));
  if (lookup(key) == nullptr) return Error{Errc::NotFound, 0, "remove"};
  Result<void> r = dropLocked(key.hash);
  syncLocked(key.hash);
  return r;
}

StoreStats FileStore::stats() const {
  std::shared_lock lock(mu_);
  return stats_;
}

uint64_t FileStore::usage() const {
  std::shared_lock lock(mu_);
  return stats_.bytes + stats_.partialBytes;
}

void FileStore::syncLocked(const Hash128& hash) {
  PolicyEvent ev;
  ev.hash = hash;
  uint64_t used;
  {
    std::unique_lock lock(mu_);
    auto c = map_.find(hash);
    bool complete = c != map_.end() && c->second->kind == ObjectMeta::Kind::Complete;
    auto p = partial_.find(hash);
    bool partial = p != partial_.end();
    if (complete) ev.bytes += c->second->size;
    if (partial) ev.bytes += durableBytes(*p->second);
    ev.present = complete || partial;
    if (ev.present) {
      std::shared_ptr<EntryState>& st = state_[hash];
      if (!st) st = std::make_shared<EntryState>();
      ev.freq = std::shared_ptr<Frequency>(st, &st->freq);
    } else {
      state_.erase(hash);  // pins keep their own reference
    }
    used = stats_.bytes + stats_.partialBytes;
  }
  if (options_.cacheLimit == 0) return;  // no policy to feed
  const bool over = used > percentOf(cacheLimit_.load(std::memory_order_relaxed), kHighWatermarkPercent);
  {
    std::lock_guard lock(bgMu_);
    events_.push_back(std::move(ev));
    if (over) wake_ = true;
  }
  if (over) bgCv_.notify_one();
}

}  // namespace orchard::cache
