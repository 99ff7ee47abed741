// FileStore core: the compact in-memory index and its locks (see
// file_store.h): publishing a new entry, reader pins, and every change of a
// key's complete or partial record. load() is in file_store_load.cc,
// lookup() and the record reads in file_store_lookup.cc.
//
// Hard parts: a key's file, record and index entry must change in one order
// under its key lock (file -> record -> entry on a commit, the reverse on a
// drop), while the RocksDB write itself is only queued under it;
// commitObject() and recordPartial() wait for theirs after releasing the
// lock and undo the memory change if it failed. A publish pins its record
// in the record cache until the writer applied it (RocksDB lags the index
// until then). Every change ends with syncLocked(), which feeds the
// eviction policy.
#include "cache/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <utility>

#include "cache/file_util.h"
#include "common/log.h"

namespace orchard::cache {

namespace {

// The same clamp as the summaries' (encodeSummary()).
uint32_t usedAtOf(int64_t lastAccess, int64_t responseTime) {
  return static_cast<uint32_t>(std::clamp<int64_t>(std::max(lastAccess, responseTime), 0, UINT32_MAX));
}

}  // namespace

FileStore::FileStore(StoreOptions options, std::shared_ptr<db::Database> database)
    : options_(std::move(options)),
      objectsDir_(options_.dir + "/objects"),
      tmpDir_(options_.dir + "/tmp"),
      index_(std::move(database)),
      policy_(S3Fifo::Options{options_.cacheLimit, 10, 1024, &counters_}),
      cacheLimit_(options_.cacheLimit) {}

// ---- records ----

void FileStore::postRecord(const Hash128& hash, const std::string* record, bool pinned) {
  db::Batch batch;
  if (record) index_.stagePut(batch, hash, *record);
  else index_.stageDel(batch, hash);
  writer_.post(std::move(batch), [this, hash, pinned](const Result<void>& r) {
    if (pinned) recordWritten(hash);
    if (!r) (void)writeFailed(r.error(), indexPath());
  });
}

std::future<Result<void>> FileStore::submitRecord(const Hash128& hash, const std::string& record, bool pinned) {
  db::Batch batch;
  index_.stagePut(batch, hash, record);
  auto done = std::make_shared<std::promise<Result<void>>>();
  std::future<Result<void>> result = done->get_future();
  writer_.post(std::move(batch), [this, hash, pinned, done](const Result<void>& r) {
    if (pinned) recordWritten(hash);
    done->set_value(r);
  });
  return result;
}

uint8_t FileStore::Counters::get(const Hash128& hash) {
  std::shared_lock lock(core_.mu);
  const IndexEntry* e = core_.entries.find(hash);
  return e ? e->freq.get() : 0;
}

void FileStore::Counters::set(const Hash128& hash, uint8_t value) {
  std::shared_lock lock(core_.mu);
  if (IndexEntry* e = core_.entries.find(hash)) e->freq.set(value);
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

  bool complete = false;
  uint64_t gen = 0, size = 0;
  {
    std::shared_lock lock(mu_);
    if (const IndexEntry* e = entries_.find(key.hash); e && e->complete()) {
      complete = true;
      gen = e->gen;
      size = e->size;
    }
  }
  if (complete) {
    // The caller may hold a stale entry: if the file matches the current
    // one, that entry is intact and stays.
    bool currentMismatch = false;
    int fd2 = openChecked(key.hash, gen, size, &err, &currentMismatch);
    if (fd2 >= 0) {
      ::close(fd2);
      return Error{Errc::NotFound, 0, "open object: replaced since lookup"};
    }
    OLOG_RATE(log::Level::Warn, "store: dropping %s: object file %s", key.text.c_str(),
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
  // (its bytes stay readable). Never a torn read. The pin counts in the
  // entry of that generation; it holds the index core (not the store), so
  // it may be dropped after the store is gone.
  bool pinned = false;
  {
    std::shared_lock lock(mu_);
    IndexEntry* e = entries_.find(key.hash);
    if (e && e->complete() && e->gen == meta.gen) {
      e->readers.fetch_add(1, std::memory_order_acq_rel);
      pinned = true;
    }
  }
  std::shared_ptr<void> pin;
  if (pinned) {
    pin = std::shared_ptr<void>(core_.get(), [core = core_, hash = key.hash, gen = meta.gen](void*) {
      std::shared_lock lock(core->mu);
      IndexEntry* e = core->entries.find(hash);
      if (e && e->complete() && e->gen == gen) e->readers.fetch_sub(1, std::memory_order_acq_rel);
    });
  }
  Result<int> fd = openObject(key, meta);
  if (!fd) return fd.error();  // the pin goes with it
  return OpenObject{*fd, std::move(pin)};
}

void FileStore::touch(const CacheKey& key) {
  std::shared_lock lock(mu_);
  if (IndexEntry* e = entries_.find(key.hash)) e->freq.bump();
}

uint64_t FileStore::durableBytes(const ObjectMeta& m) { return m.durableBytes(); }

uint32_t FileStore::publishLocked(const Hash128& hash, std::shared_ptr<const ObjectMeta> published) {
  const bool complete = published->kind == ObjectMeta::Kind::Complete;
  const uint64_t newGen = complete ? published->gen : 0;
  bool oldComplete = false;
  uint64_t oldGen = 0, oldSize = 0;
  uint32_t rev;
  {
    std::unique_lock lock(mu_);
    IndexEntry& e = entries_.upsert(hash);
    if (e.complete()) {
      oldComplete = true;
      oldGen = e.gen;
      oldSize = e.size;
      stats_.objects -= 1;
      stats_.bytes -= e.size;
    }
    if (!(oldComplete && complete && oldGen == newGen)) {
      // A new generation: no reader of it yet, nothing of it verified.
      e.readers.store(0, std::memory_order_relaxed);
      e.flags.store(0, std::memory_order_relaxed);
    }
    e.has = static_cast<uint8_t>((e.has & IndexEntry::kPartial) | (complete ? IndexEntry::kComplete : IndexEntry::kStub));
    e.gen = newGen;
    e.size = complete ? published->size : 0;
    if (complete && published->verified) e.flags.fetch_or(IndexEntry::kSums, std::memory_order_relaxed);
    e.usedAt = usedAtOf(published->lastAccess, published->responseTime);
    rev = e.rev = nextRev_++;
    if (complete) {
      stats_.objects += 1;
      stats_.bytes += published->size;
    }
    cacheRecordLocked(hash, std::move(published), rev);
  }
  if (oldComplete && oldGen != newGen) {
    ::unlink(objectPath(hash, oldGen).c_str());  // readers holding it open keep their bytes
    tellUnlinked(hash, oldGen, oldSize);
  }
  return rev;
}

void FileStore::setHasLocked(IndexEntry* e, uint8_t has) {
  // A live slot never has `has` 0: the table's probe runs end at such a slot.
  if (has == 0) entries_.erase(e->hash);
  else e->has = has;
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
  resumedAt_.erase(hash);
  if (IndexEntry* e = entries_.find(hash)) setHasLocked(e, static_cast<uint8_t>(e->has & ~IndexEntry::kPartial));
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
    const IndexEntry* e = entries_.find(key.hash);
    if (e && e->complete()) return ok();
  }
  std::future<Result<void>> written = submitRecord(key.hash, record, false);
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
    IndexEntry& e = entries_.upsert(key.hash);
    e.has |= IndexEntry::kPartial;
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
  uint32_t mine;
  std::future<Result<void>> written;
  {
    std::lock_guard keyGuard(keyLock(key.hash));
    written = submitRecord(key.hash, record, true);
    erasePartialLocked(key.hash);
    mine = publishLocked(key.hash, std::move(published));
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
      const IndexEntry* e = entries_.find(key.hash);
      stillMine = e && e->complete() && e->rev == mine;
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
  bool completeExists = false, completeNamesGen = false;
  {
    std::shared_lock lock(mu_);
    auto it = partial_.find(hash);
    if (it != partial_.end()) p = it->second;
    if (const IndexEntry* e = entries_.find(hash)) {
      completeExists = e->complete() || e->stub();
      completeNamesGen = e->complete() && e->gen == gen;
    }
  }
  if (p && p->gen == gen) {
    if (!completeExists) postRecord(hash, nullptr);
    erasePartialLocked(hash, tally);
  }
  if (completeNamesGen) return;  // never unlink the file a complete record names
  ::unlink(objectPath(hash, gen).c_str());
}

Result<void> FileStore::putStub(const CacheKey& key, ObjectMeta meta) {
  if (meta.kind != ObjectMeta::Kind::VaryStub) return Error{Errc::Invalid, 0, "put stub: not a stub"};
  meta.key = key.text;
  std::string record = encodeMeta(meta);
  auto published = std::make_shared<const ObjectMeta>(std::move(meta));
  std::lock_guard keyGuard(keyLock(key.hash));
  postRecord(key.hash, &record, true);  // not waited for: a loop thread calls this
  publishLocked(key.hash, std::move(published));
  syncLocked(key.hash);
  return ok();
}

Result<void> FileStore::refresh(const CacheKey& key, const ObjectMeta& updated) {
  std::lock_guard keyGuard(keyLock(key.hash));
  std::shared_ptr<const ObjectMeta> current = currentRecord(key.hash);
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
  postRecord(key.hash, &record, true);  // not waited for: a loop thread calls this
  publishLocked(key.hash, std::make_shared<const ObjectMeta>(std::move(m)));
  syncLocked(key.hash);
  return ok();
}

Result<void> FileStore::dropLocked(const Hash128& hash, Tally tally) {
  postRecord(hash, nullptr);  // not waited for: hits (openObject, verification) drop on a loop thread
  Result<void> r = ok();
  bool goneComplete = false;
  uint64_t goneGen = 0, goneSize = 0;
  {
    std::unique_lock lock(mu_);
    IndexEntry* e = entries_.find(hash);
    if (e && (e->complete() || e->stub())) {
      if (e->complete()) {
        goneComplete = true;
        goneGen = e->gen;
        goneSize = e->size;
        stats_.objects -= 1;
        stats_.bytes -= e->size;
        if (tally != Tally::None) stats_.evictedBytes += e->size;
        if (tally == Tally::Eviction) stats_.evictions += 1;
      }
      e->gen = e->size = 0;
      e->rev = nextRev_++;  // no record of an earlier rev may be served again
      records_.erase(hash);
      setHasLocked(e, static_cast<uint8_t>(e->has & IndexEntry::kPartial));
    }
  }
  if (goneComplete) {
    if (::unlink(objectPath(hash, goneGen).c_str()) != 0 && errno != ENOENT && r) r = errnoError(errno, "remove: unlink");
    tellUnlinked(hash, goneGen, goneSize);
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
    std::shared_lock lock(mu_);
    const IndexEntry* e = entries_.find(hash);
    const bool complete = e && e->complete();
    auto p = partial_.find(hash);
    const bool partial = p != partial_.end();
    if (complete) ev.bytes += e->size;
    if (partial) ev.bytes += durableBytes(*p->second);
    ev.present = complete || partial;
    used = stats_.bytes + stats_.partialBytes;
  }
  if (options_.cacheLimit == 0) return;  // no policy to feed
  const bool over = used > percentOf(cacheLimit_.load(std::memory_order_relaxed), kHighWatermarkPercent);
  {
    std::lock_guard lock(bgMu_);
    events_.push_back(ev);
    if (over) wake_ = true;
  }
  if (over) bgCv_.notify_one();
}

}  // namespace orchard::cache
