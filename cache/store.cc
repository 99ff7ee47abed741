// Store: objects as files, records in the Index, hits served from an
// in-memory map (see store.h for the layout and the object lifecycle).
//
// Locking:
//   mu_ (shared_mutex)   guards map_ and stats_; lookup() takes it shared,
//                        only for the map access, never across disk I/O.
//   keyLocks_[hash % N]  serialises the writers of one key (commit, remove,
//                        dropping a bad entry), so that the file rename, the
//                        index record and the map entry of a key always
//                        change in the same order. Taken before mu_.
//   bgMu_                guards the policy event queue and the background
//                        thread's wake-up flags; a leaf.
// Lock order: (a FillTable shard) -> keyLock -> mu_, and keyLock -> bgMu_;
// mu_ is never held while taking bgMu_. The busy check (which takes FillTable
// shard locks) is therefore only called with no store lock held.
// Order of a commit: file in place -> index record -> map entry, so a record
// never names a file that is not there yet. A remove goes the other way:
// index record -> file -> map entry.
//
// Maps: map_ holds Complete objects and Vary stubs (what lookup() serves),
// partial_ the resumable Partial records, state_ the per-hash EntryState
// (hit counter, reader pins) of every hash that has either.
//
// Eviction: every change to a key's complete or partial object ends with
// syncLocked(), which queues a PolicyEvent (present or not, bytes). The
// S3Fifo policy belongs to the background thread alone: it applies the
// queued events, asks the policy for victims with no lock held, and evicts
// each under its key lock after checking that no event re-added it and that
// no reader pinned it meanwhile. Hits only bump EntryState::freq.
//
// Verification: every published Complete entry with checksums gets a fresh
// VerifiedBlocks (a refresh() of the same generation keeps it), so a block
// is verified once per generation. A mismatch, found by a reader or the
// scrub, drops the entry under its key lock if it still names that
// generation, and is counted once (stats_.corruptObjects).
#include "cache/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cache/evictor.h"
#include "cache/file_util.h"
#include "cache/index.h"
#include "common/log.h"

namespace orchard::cache {

// ---- TempFile ----

TempFile::TempFile(TempFile&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)), hash_(o.hash_) { o.fd_ = -1; }

TempFile& TempFile::operator=(TempFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    path_ = std::move(o.path_);
    hash_ = o.hash_;
    o.fd_ = -1;
  }
  return *this;
}

TempFile::~TempFile() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

constexpr size_t kKeyLockCount = 64;
// How often the background thread looks at usage when nothing woke it.
constexpr std::chrono::milliseconds kEvictInterval{1000};
// A partial reopened for a resume is not evicted for this long: it covers
// the moment between reopenPartial() and the fill appearing in the
// FillTable, where the busy check cannot see it yet.
constexpr int64_t kResumeGuardMs = 30'000;
// The evictor gives up a pass after this many victims in a row it could not
// evict (re-added or pinned meanwhile); the next wake-up tries again.
constexpr int kMaxSkipsPerPass = 64;

// Seconds << 20 plus microseconds: a restart, even within the same second,
// starts above every generation the previous run made, unless that run made
// more than about one per microsecond of its life.
uint64_t initialGeneration() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return (static_cast<uint64_t>(ts.tv_sec) << 20) + static_cast<uint64_t>(ts.tv_nsec / 1000);
}

uint64_t percentOf(uint64_t total, unsigned pct) { return total / 100 * pct + total % 100 * pct / 100; }

int64_t steadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What the hit path and the evictor share about one hash. Created when the
// hash gets a complete or partial object, dropped from state_ when it has
// neither; pins keep their own reference.
struct EntryState {
  Frequency freq;                                   // hits, for the policy
  std::atomic<int32_t> readers{0};                  // live openForRead() pins
  std::atomic<int64_t> resumedAtMs{INT64_MIN / 2};  // steadyMs() of the last reopenPartial()
};

// A change of one hash's evictable bytes, queued for the background thread.
struct PolicyEvent {
  Hash128 hash;
  uint64_t bytes = 0;               // complete size + partial durable bytes
  std::shared_ptr<Frequency> freq;  // aliases the hash's EntryState
  bool present = false;             // false: the hash has nothing evictable left
};

bool isLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool isHex2(const char* name) { return isLowerHex(name[0]) && isLowerHex(name[1]) && name[2] == '\0'; }

uint64_t hexValue(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 16; ++i) v = (v << 4) | static_cast<uint64_t>(p[i] <= '9' ? p[i] - '0' : p[i] - 'a' + 10);
  return v;
}

// Parses "<32 lower-case hex>.<decimal gen>" whose hex starts with `prefix`
// (the 2 hex digits of its ab directory).
bool parseObjectName(const char* name, const char* prefix, Hash128* hash, uint64_t* gen) {
  size_t len = std::strlen(name);
  if (len < 34 || len > 33 + 20 || name[32] != '.') return false;
  for (int i = 0; i < 32; ++i)
    if (!isLowerHex(name[i])) return false;
  if (std::memcmp(name, prefix, 2) != 0) return false;
  uint64_t g = 0;
  for (size_t i = 33; i < len; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    uint64_t d = static_cast<uint64_t>(name[i] - '0');
    if (g > (UINT64_MAX - d) / 10) return false;
    g = g * 10 + d;
  }
  if (len > 34 && name[33] == '0') return false;  // one spelling per generation
  *hash = Hash128{hexValue(name), hexValue(name + 16)};
  *gen = g;
  return true;
}

// A directory entry's type: d_type where the file system fills it in (ext4,
// xfs, btrfs do), fstatat() otherwise. DT_UNKNOWN if it vanished.
unsigned char entryType(int dirFd, const struct dirent* e) {
  if (e->d_type != DT_UNKNOWN) return e->d_type;
  struct stat st;
  if (::fstatat(dirFd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) return DT_UNKNOWN;
  if (S_ISDIR(st.st_mode)) return DT_DIR;
  if (S_ISREG(st.st_mode)) return DT_REG;
  return DT_LNK;  // anything else that is not a directory: treated as a file
}

bool isDotEntry(const char* n) { return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')); }

// Opens subdirectory `name` of `dirFd` for readdir(). nullptr with errno set.
DIR* openSubdir(int dirFd, const char* name) {
  int fd = ::openat(dirFd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return nullptr;
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    int e = errno;
    ::close(fd);
    errno = e;
  }
  return d;
}

class FileStore final : public Store {
 public:
  FileStore(StoreOptions options, std::unique_ptr<Index> index)
      : options_(std::move(options)),
        objectsDir_(options_.dir + "/objects"),
        tmpDir_(options_.dir + "/tmp"),
        index_(std::move(index)),
        policy_(S3Fifo::Options{options_.cacheLimit}),
        cacheLimit_(options_.cacheLimit) {}
  ~FileStore() override;

  Result<void> load();
  // Starts the background thread (reconciliation, then eviction). Called
  // once by Store::open() after load(), before anyone else sees the store.
  void start();

  std::shared_ptr<const ObjectMeta> lookup(const CacheKey& key) const override;
  Result<int> openObject(const CacheKey& key, const ObjectMeta& meta) override;
  Result<OpenObject> openForRead(const CacheKey& key, const ObjectMeta& meta) override;
  void touch(const CacheKey& key) override;
  std::shared_ptr<const ObjectMeta> lookupPartial(const CacheKey& key) const override;
  Result<ObjectFile> createObject(const CacheKey& key) override;
  Result<int> reopenPartial(const CacheKey& key, const ObjectMeta& meta) override;
  Result<void> recordPartial(const CacheKey& key, ObjectMeta meta) override;
  Result<void> commitObject(const CacheKey& key, ObjectMeta meta) override;
  Result<void> verifyBlocks(const CacheKey& key, const ObjectMeta& meta, int fd, uint64_t offset,
                            uint64_t length) override;
  uint64_t scrubNow() override { return scrubPass(false); }
  void dropObject(const CacheKey& key, uint64_t gen) override;
  Result<void> putStub(const CacheKey& key, ObjectMeta meta) override;
  Result<void> refresh(const CacheKey& key, const ObjectMeta& updated) override;
  Result<TempFile> createTemp(const CacheKey& key) override;
  Result<void> commit(const CacheKey& key, TempFile&& file, ObjectMeta meta) override;
  void abandon(TempFile&& file) override;
  Result<void> remove(const CacheKey& key) override;
  StoreStats stats() const override;
  void setBusyCheck(std::function<bool(const Hash128&)> busy) override;
  void requestEviction(uint64_t bytesNeeded) override;
  void setCacheLimit(uint64_t bytes) override {
    if (options_.cacheLimit == 0) return;  // opened without a limit: no policy to evict by
    cacheLimit_.store(bytes, std::memory_order_relaxed);
    requestEviction(0);  // the evictor takes the new capacity on its next pass
  }
  uint64_t cacheLimit() const override { return cacheLimit_.load(std::memory_order_relaxed); }
  bool reconciled() const override { return reconciled_.load(std::memory_order_acquire); }
  std::string objectFilePath(const Hash128& hash, uint64_t gen) const override { return objectPath(hash, gen); }

 private:
  using BusyCheck = std::function<bool(const Hash128&)>;

  std::string objectDir(const std::string& hex) const { return objectsDir_ + "/" + hex.substr(0, 2); }
  std::string objectPath(const Hash128& h, uint64_t gen) const {
    std::string hex = h.hex();
    return objectDir(hex) + "/" + hex + "." + std::to_string(gen);
  }
  static uint64_t durableBytes(const ObjectMeta& m);
  // Gives a Complete meta about to be published its verification marks
  // (none without checksums; checksums that do not cover the object are
  // dropped: it is then served unverified).
  static void prepareMarks(ObjectMeta* m);
  // Block `block` of generation `gen` failed its checksum: drops the entry
  // if it still names that generation, and counts it. Returns whether it did.
  bool dropCorrupt(const Hash128& hash, uint64_t gen, const std::string& keyText, uint64_t block, const char* who);
  // Verifies every block of each complete object with checksums; drops the
  // ones that fail. Rate-limited (scrubBytesPerSecond) and evicting in
  // between when run by the background thread. Returns the objects dropped.
  uint64_t scrubPass(bool background);
  // Publishes `published` as the complete entry (map + stats); unlinks the
  // file of the generation it replaces. Caller holds keyLock.
  void publishLocked(const Hash128& hash, std::shared_ptr<const ObjectMeta> published);
  // How a removal counts in stats_.evictions / evictedBytes (updated in the
  // same critical section as the maps, so stats() is always consistent).
  enum class Tally : uint8_t { None, Bytes, Eviction };
  void erasePartialLocked(const Hash128& hash, Tally tally = Tally::None);
  std::mutex& keyLock(const Hash128& h) { return keyLocks_[h.lo % kKeyLockCount]; }
  // Reports a failed store write to health() and returns it.
  Error writeFailed(Error e, const std::string& path) {
    health().writeFailed(e, path, steadyMs());
    return e;
  }

  // Opens the object file and checks its size. Returns the fd, or the errno
  // of the failed call (-1 with *sizeMismatch set when the size differs).
  int openChecked(const Hash128& h, uint64_t gen, uint64_t size, int* err, bool* sizeMismatch) const;
  // Drops the entry for `hash` (record, file, memory). Caller holds keyLock.
  Result<void> dropLocked(const Hash128& hash, Tally tally = Tally::None);
  // Drops the partial record of `hash` if it names `gen`, and file `gen`
  // unless a complete record names it. Caller holds keyLock.
  void dropPartialLocked(const Hash128& hash, uint64_t gen, Tally tally = Tally::None);
  // Brings state_ and the eviction policy in line with the hash's current
  // complete and partial objects. Ends every change of them. Caller holds
  // keyLock (so that one hash's events are queued in the order of its changes).
  void syncLocked(const Hash128& hash);
  uint64_t usage() const;

  // ---- background thread ----
  void run();
  void buildPolicy();
  void drainEvents();
  // One eviction pass: evicts until usage is under the low watermark (minus
  // what requestEviction() asked for), if it is over the high one or asked.
  void evictPass();
  // Evicts `hash` (chosen by the policy) unless it changed or was pinned
  // since. Returns whether it did.
  bool evictOne(const Hash128& hash);
  // Evicts the complete and partial objects of `hash` (counted in stats_);
  // false if it had neither. Caller holds keyLock.
  bool evictLocked(const Hash128& hash);
  // Readers or a recent resume hold the entry (not the busy check).
  bool pinnedNow(const Hash128& hash) const;
  // Calls the busy check (false if none) under busyMu_, so that
  // setBusyCheck(nullptr) is a barrier. Call with no store lock held.
  bool busyNow(const Hash128& hash) const;
  void reconcile();
  // Runs an eviction pass if one is due (woken, or a second went by); lets
  // a long reconciliation walk keep the disk in bounds.
  void maybeEvict();

  const StoreOptions options_;
  const std::string objectsDir_;
  const std::string tmpDir_;
  std::unique_ptr<Index> index_;

  mutable std::shared_mutex mu_;
  std::unordered_map<Hash128, std::shared_ptr<const ObjectMeta>, Hash128Hasher> map_;      // guarded by mu_
  std::unordered_map<Hash128, std::shared_ptr<const ObjectMeta>, Hash128Hasher> partial_;  // guarded by mu_
  StoreStats stats_;                                                                       // guarded by mu_

  std::unordered_map<Hash128, std::shared_ptr<EntryState>, Hash128Hasher> state_;      // guarded by mu_

  std::array<std::mutex, kKeyLockCount> keyLocks_;
  std::atomic<uint64_t> tempCounter_{0};
  // Object file generations: start from the wall clock so that generations
  // keep growing across restarts (O_EXCL guards against any reuse); load()
  // also moves it past every generation the index names. Reconciliation
  // relies on it: files of generations from before open() are judged,
  // newer ones never.
  std::atomic<uint64_t> genCounter_{initialGeneration()};

  // Background thread. bgMu_ guards events_, wake_, stop_ and need_.
  std::mutex bgMu_;
  std::condition_variable bgCv_;
  std::vector<PolicyEvent> events_;
  bool wake_ = false;
  bool stop_ = false;
  uint64_t need_ = 0;                    // bytes asked for by requestEviction()
  std::atomic<bool> stopping_{false};    // stop_, readable without bgMu_ by long loops
  std::thread bg_;

  // Empty files made ahead of time in tmp/ (see refillSpares()).
  struct Spare {
    int fd = -1;
    std::string path;
  };
  static constexpr size_t kSpares = 8;
  bool takeSpare(Spare* out);
  void refillSpares();
  std::mutex spareMu_;
  std::vector<Spare> spares_;  // guarded by spareMu_
  bool spareWanted_ = false;   // guarded by bgMu_
  S3Fifo policy_;                        // background thread only
  std::atomic<uint64_t> cacheLimit_;     // options_.cacheLimit, then setCacheLimit()
  int64_t lastPassMs_ = 0;               // background thread only
  int64_t lastScrubMs_ = 0;              // background thread only: when the last scrub pass ended
  // Generations below this existed when the store opened: the only ones
  // reconciliation may remove (set by start(), read by the thread).
  uint64_t reconcileBelowGen_ = 0;
  std::atomic<bool> reconciled_{false};

  mutable std::mutex busyMu_;  // held while busy_ is called; order: busyMu_ -> FillTable shard -> keyLock -> mu_
  BusyCheck busy_;             // guarded by busyMu_
};

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
  Result<void> r = index_->forEach(
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
    if (Result<void> w = index_->write(std::move(batch)); !w) return w;
    for (const std::string& k : badKeys) {
      if (Result<void> w = index_->delRaw(k); !w) return w;
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

int FileStore::openChecked(const Hash128& h, uint64_t gen, uint64_t size, int* err, bool* sizeMismatch) const {
  *sizeMismatch = false;
  int fd = ::open(objectPath(h, gen).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    *err = errno;
    ::close(fd);
    return -1;
  }
  if (static_cast<uint64_t>(st.st_size) != size) {
    *err = 0;
    *sizeMismatch = true;
    ::close(fd);
    return -1;
  }
  return fd;
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

Result<TempFile> FileStore::createTemp(const CacheKey& key) {
  Spare spare;
  if (takeSpare(&spare)) return TempFile(spare.fd, std::move(spare.path), key.hash);
  std::string prefix = tmpDir_ + "/" + key.hash.hex() + ".";
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string path = prefix + std::to_string(tempCounter_.fetch_add(1, std::memory_order_relaxed));
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return TempFile(fd, std::move(path), key.hash);
    if (errno != EEXIST) return writeFailed(errnoError(errno, "create temp file"), path);
  }
  return Error{Errc::Exists, EEXIST, "create temp file"};
}

Result<void> FileStore::commit(const CacheKey& key, TempFile&& file, ObjectMeta meta) {
  if (!file.valid()) return Error{Errc::Invalid, EBADF, "commit: no temp file"};
  if (!(file.hash() == key.hash)) return Error{Errc::Invalid, 0, "commit: temp file is for another key"};
  if (!meta.key.empty() && meta.key != key.text) return Error{Errc::Invalid, 0, "commit: meta is for another key"};
  meta.key = key.text;

  struct stat st;
  if (::fstat(file.fd(), &st) != 0) return errnoError(errno, "commit: fstat");
  if (static_cast<uint64_t>(st.st_size) != meta.size) return Error{Errc::Corrupt, 0, "commit: size mismatch"};

  std::string hex = key.hash.hex();
  if (Result<void> r = makeDirs(objectDir(hex)); !r) return r;
  meta.kind = ObjectMeta::Kind::Complete;
  meta.gen = genCounter_.fetch_add(1, std::memory_order_relaxed);
  meta.blocks.clear();
  // Checksums of a body filled privately, read back here (the caller's
  // thread, off the loops like the rest of commit()).
  meta.blockSize = kChecksumBlockSize;
  meta.sums.resize(meta.blockCount());
  for (uint64_t b = 0; b < meta.sums.size(); ++b) {
    const uint64_t off = b * kChecksumBlockSize;
    auto sum = checksumRange(file.fd(), off, std::min<uint64_t>(kChecksumBlockSize, meta.size - off));
    if (!sum) return sum.error();
    meta.sums[b] = *sum;
  }
  prepareMarks(&meta);
  std::string finalPath = objectPath(key.hash, meta.gen);
  std::string record = encodeMeta(meta);
  auto published = std::make_shared<const ObjectMeta>(std::move(meta));

  std::lock_guard keyGuard(keyLock(key.hash));
  if (::rename(file.path().c_str(), finalPath.c_str()) != 0)
    return writeFailed(errnoError(errno, "commit: rename"), finalPath);
  if (Result<void> r = index_->put(key.hash, record); !r) {
    ::unlink(finalPath.c_str());
    return writeFailed(r.error(), options_.dir + "/index");
  }
  publishLocked(key.hash, std::move(published));
  syncLocked(key.hash);
  TempFile done(std::move(file));  // closes the fd; the path is now the object's
  health().writeSucceeded(steadyMs());
  return ok();
}

void FileStore::prepareMarks(ObjectMeta* m) {
  m->verified.reset();
  if (m->kind != ObjectMeta::Kind::Complete) return;
  if (m->sums.empty() || m->blockSize == 0 || m->sums.size() != m->blockCount()) {
    m->sums.clear();
    return;
  }
  m->verified = std::make_shared<VerifiedBlocks>(m->sums.size());
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
  if (old && old->kind == ObjectMeta::Kind::Complete && old->gen != published->gen)
    ::unlink(objectPath(hash, old->gen).c_str());  // readers holding it open keep their bytes
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

bool FileStore::takeSpare(Spare* out) {
  {
    std::lock_guard<std::mutex> lock(spareMu_);
    if (spares_.empty()) return false;
    *out = std::move(spares_.back());
    spares_.pop_back();
  }
  {
    std::lock_guard lock(bgMu_);
    spareWanted_ = true;
  }
  bgCv_.notify_one();
  return true;
}

void FileStore::refillSpares() {
  // Creating a file costs about a millisecond on some disks (inode
  // allocation, journal): done here, ahead of time, instead of on a miss.
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(spareMu_);
      if (spares_.size() >= kSpares || stopping_.load(std::memory_order_relaxed)) return;
    }
    std::string path = tmpDir_ + "/spare." + std::to_string(tempCounter_.fetch_add(1, std::memory_order_relaxed));
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return;
    std::lock_guard<std::mutex> lock(spareMu_);
    spares_.push_back(Spare{fd, std::move(path)});
  }
}

Result<ObjectFile> FileStore::createObject(const CacheKey& key) {
  std::string hex = key.hash.hex();
  Spare spare;
  while (takeSpare(&spare)) {
    uint64_t gen = genCounter_.fetch_add(1, std::memory_order_relaxed);
    std::string path = objectPath(key.hash, gen);
    // RENAME_NOREPLACE: never over another generation's file.
    if (::renameat2(AT_FDCWD, spare.path.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0)
      return ObjectFile{spare.fd, gen};
    ::close(spare.fd);
    ::unlink(spare.path.c_str());
  }
  if (Result<void> r = makeDirs(objectDir(hex)); !r) return writeFailed(r.error(), objectDir(hex));
  for (int attempt = 0; attempt < 8; ++attempt) {
    uint64_t gen = genCounter_.fetch_add(1, std::memory_order_relaxed);
    std::string path = objectPath(key.hash, gen);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return ObjectFile{fd, gen};
    if (errno != EEXIST) return writeFailed(errnoError(errno, "create object file"), path);
  }
  return Error{Errc::Exists, EEXIST, "create object file"};
}

Result<int> FileStore::reopenPartial(const CacheKey& key, const ObjectMeta& meta) {
  // Under the key lock, so that the evictor (which checks the guard under
  // it) either sees the guard and keeps the partial, or evicted it before
  // and the open below finds no file.
  std::lock_guard keyGuard(keyLock(key.hash));
  {
    // See kResumeGuardMs; a resume is also a request.
    std::shared_lock lock(mu_);
    auto it = state_.find(key.hash);
    if (it != state_.end()) {
      it->second->resumedAtMs.store(steadyMs(), std::memory_order_release);
      it->second->freq.bump();
    }
  }
  int fd = ::open(objectPath(key.hash, meta.gen).c_str(), O_RDWR | O_CLOEXEC);
  if (fd >= 0) return fd;
  int e = errno;
  if (e == ENOENT) {
    auto current = lookupPartial(key);
    if (current && current->gen == meta.gen) {
      (void)index_->del(key.hash);
      erasePartialLocked(key.hash);
      syncLocked(key.hash);
    }
    return Error{Errc::NotFound, ENOENT, "reopen partial: file missing"};
  }
  return errnoError(e, "reopen partial");
}

Result<void> FileStore::recordPartial(const CacheKey& key, ObjectMeta meta) {
  if (meta.kind != ObjectMeta::Kind::Partial || meta.blockSize == 0) return Error{Errc::Invalid, 0, "record partial: bad meta"};
  meta.key = key.text;
  std::string record = encodeMeta(meta);
  auto published = std::make_shared<const ObjectMeta>(std::move(meta));
  std::lock_guard keyGuard(keyLock(key.hash));
  {
    // A complete object of the key keeps its record: the partial is only
    // tracked in memory then (the record slot is the complete one's).
    std::shared_lock lock(mu_);
    auto it = map_.find(key.hash);
    if (it != map_.end() && it->second->kind == ObjectMeta::Kind::Complete) return ok();
  }
  if (Result<void> r = index_->put(key.hash, record); !r) return writeFailed(r.error(), options_.dir + "/index");
  std::unique_lock lock(mu_);
  auto [it, inserted] = partial_.try_emplace(key.hash, published);
  if (inserted) {
    stats_.partials += 1;
  } else {
    stats_.partialBytes -= durableBytes(*it->second);
    it->second = published;
  }
  stats_.partialBytes += durableBytes(*published);
  lock.unlock();
  syncLocked(key.hash);
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
  if (::stat(objectPath(key.hash, meta.gen).c_str(), &st) != 0)
    return writeFailed(errnoError(errno, "commit object: stat"), objectPath(key.hash, meta.gen));
  if (static_cast<uint64_t>(st.st_size) != meta.size) return Error{Errc::Corrupt, 0, "commit object: size mismatch"};
  std::string record = encodeMeta(meta);
  auto published = std::make_shared<const ObjectMeta>(std::move(meta));
  std::lock_guard keyGuard(keyLock(key.hash));
  if (Result<void> r = index_->put(key.hash, record); !r) return writeFailed(r.error(), options_.dir + "/index");
  erasePartialLocked(key.hash);
  publishLocked(key.hash, std::move(published));
  syncLocked(key.hash);
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
    if (!completeExists) (void)index_->del(hash);
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
  if (Result<void> r = index_->put(key.hash, record); !r) return r;
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
  if (Result<void> r = index_->put(key.hash, encodeMeta(m)); !r) return r;
  publishLocked(key.hash, std::make_shared<const ObjectMeta>(std::move(m)));
  syncLocked(key.hash);
  return ok();
}

void FileStore::abandon(TempFile&& file) {
  TempFile gone(std::move(file));
  if (!gone.path().empty() && ::unlink(gone.path().c_str()) != 0 && errno != ENOENT) {
    OLOG_RATE(log::Level::Warn, "store: cannot unlink temp file %s: %s", gone.path().c_str(),
              errnoError(errno, "abandon").message().c_str());
  }
}

Result<void> FileStore::dropLocked(const Hash128& hash, Tally tally) {
  Result<void> r = index_->del(hash);
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
  if (gone && gone->kind == ObjectMeta::Kind::Complete &&
      ::unlink(objectPath(hash, gone->gen).c_str()) != 0 && errno != ENOENT && r)
    r = errnoError(errno, "remove: unlink");
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

void FileStore::setBusyCheck(std::function<bool(const Hash128&)> busy) {
  BusyCheck old;
  {
    std::lock_guard lock(busyMu_);  // waits for a call in progress
    old = std::exchange(busy_, std::move(busy));
  }
}

bool FileStore::busyNow(const Hash128& hash) const {
  std::lock_guard lock(busyMu_);
  return busy_ && busy_(hash);
}

void FileStore::requestEviction(uint64_t bytesNeeded) {
  {
    std::lock_guard lock(bgMu_);
    need_ += bytesNeeded;
    wake_ = true;
  }
  bgCv_.notify_one();
}

bool FileStore::pinnedNow(const Hash128& hash) const {
  std::shared_lock lock(mu_);
  auto it = state_.find(hash);
  if (it == state_.end()) return false;
  const EntryState& st = *it->second;
  return st.readers.load(std::memory_order_acquire) > 0 ||
         steadyMs() - st.resumedAtMs.load(std::memory_order_acquire) < kResumeGuardMs;
}

// ---- background thread ----

void FileStore::run() {
  buildPolicy();
  lastPassMs_ = steadyMs();
  evictPass();  // a lowered cacheLimit, or a store left over its limit
  reconcile();
  refillSpares();
  std::unique_lock lock(bgMu_);
  while (!stop_) {
    bgCv_.wait_for(lock, kEvictInterval, [this] { return stop_ || wake_ || spareWanted_; });
    if (stop_) break;
    const bool evict = wake_;
    wake_ = false;
    spareWanted_ = false;
    lock.unlock();
    refillSpares();
    if (evict || steadyMs() - lastPassMs_ >= static_cast<int64_t>(kEvictInterval.count())) {
      lastPassMs_ = steadyMs();
      evictPass();
    }
    if (options_.scrubIntervalMs > 0 && steadyMs() - lastScrubMs_ >= options_.scrubIntervalMs) {
      (void)scrubPass(true);
      lastScrubMs_ = steadyMs();
    }
    lock.lock();
  }
}

void FileStore::buildPolicy() {
  if (options_.cacheLimit == 0) return;
  // The objects found at open() (generations below reconcileBelowGen_)
  // enter M in order of last use, oldest at the tail: they earned their
  // place before the restart, and new objects must prove themselves in S
  // before they can push them out. Objects made since open() arrive through
  // their events, into S.
  struct Resident {
    Hash128 hash;
    uint64_t bytes;
    int64_t used;
    std::shared_ptr<Frequency> freq;
  };
  std::vector<Resident> all;
  {
    std::shared_lock lock(mu_);
    all.reserve(map_.size() + partial_.size());
    auto freqOf = [this](const Hash128& h) -> std::shared_ptr<Frequency> {
      auto it = state_.find(h);
      if (it == state_.end()) return nullptr;
      return std::shared_ptr<Frequency>(it->second, &it->second->freq);
    };
    const uint64_t below = reconcileBelowGen_;
    for (const auto& [h, m] : map_) {
      if (m->kind != ObjectMeta::Kind::Complete || m->gen >= below) continue;
      uint64_t bytes = m->size;
      if (auto p = partial_.find(h); p != partial_.end()) bytes += durableBytes(*p->second);
      all.push_back({h, bytes, std::max(m->lastAccess, m->responseTime), freqOf(h)});
    }
    for (const auto& [h, p] : partial_) {
      auto c = map_.find(h);
      if (c != map_.end() && c->second->kind == ObjectMeta::Kind::Complete) continue;  // counted above
      if (p->gen >= below) continue;
      all.push_back({h, durableBytes(*p), std::max(p->lastAccess, p->responseTime), freqOf(h)});
    }
  }
  std::sort(all.begin(), all.end(), [](const Resident& a, const Resident& b) { return a.used < b.used; });
  for (Resident& r : all) policy_.restore(r.hash, r.bytes, std::move(r.freq));
  // Changes queued since load() are newer than the snapshot: apply them after.
  drainEvents();
}

void FileStore::drainEvents() {
  std::vector<PolicyEvent> events;
  {
    std::lock_guard lock(bgMu_);
    events.swap(events_);
  }
  for (PolicyEvent& ev : events) {
    if (ev.present) {
      policy_.insert(ev.hash, ev.bytes, std::move(ev.freq));
    } else {
      policy_.remove(ev.hash);
    }
  }
}

void FileStore::maybeEvict() {
  bool due;
  {
    std::lock_guard lock(bgMu_);
    due = wake_ || steadyMs() - lastPassMs_ >= kEvictInterval.count();
    wake_ = false;
  }
  if (!due) return;
  lastPassMs_ = steadyMs();
  evictPass();
}

void FileStore::evictPass() {
  uint64_t need;
  {
    std::lock_guard lock(bgMu_);
    need = need_;
    need_ = 0;
  }
  const uint64_t limit = cacheLimit_.load(std::memory_order_relaxed);
  if (limit == 0) return;
  policy_.setCapacity(limit);
  drainEvents();
  uint64_t used = usage();
  if (used <= percentOf(limit, kHighWatermarkPercent) && need == 0) return;
  // Down to the low watermark; after an ENOSPC, `need` further still (also
  // when usage is already under the watermark: the disk is fuller than the
  // limit says, e.g. shared with other data).
  const uint64_t floor = std::min(percentOf(limit, kLowWatermarkPercent), used);
  const uint64_t target = floor > need ? floor - need : 0;

  const auto pinned = [this](const Hash128& h) { return pinnedNow(h) || busyNow(h); };
  int skips = 0;
  while (used > target && !stopping_.load(std::memory_order_relaxed)) {
    drainEvents();
    std::optional<Hash128> v = policy_.victim(pinned);
    if (!v) {
      OLOG_RATE(log::Level::Warn, "store: over its limit but nothing can be evicted (all read or filled): %llu bytes",
                static_cast<unsigned long long>(used));
      break;
    }
    if (evictOne(*v)) {
      skips = 0;
    } else if (++skips > kMaxSkipsPerPass) {
      break;
    }
    used = usage();
  }
}

bool FileStore::evictOne(const Hash128& hash) {
  std::lock_guard keyGuard(keyLock(hash));
  // Every change of this hash queued its event under this lock: after the
  // drain the policy knows them all. If one re-added the hash since the
  // policy chose it (a new commit, a growing partial), it is no victim.
  drainEvents();
  if (policy_.contains(hash)) return false;
  // The busy check ran in victim(), just before, without the key lock (the
  // lock order forbids calling it under one). A fill that appeared since is
  // harmless: FillTable::acquire() does not start a fill over a complete
  // object, and a resume of a partial sets the guard pinnedNow() sees, under
  // this same key lock (reopenPartial()).
  if (pinnedNow(hash)) {  // a reader or a resume arrived since: back into the policy
    syncLocked(hash);
    return false;
  }
  bool evicted = evictLocked(hash);
  syncLocked(hash);
  return evicted;
}

bool FileStore::evictLocked(const Hash128& hash) {
  std::shared_ptr<const ObjectMeta> complete, partial;
  {
    std::shared_lock lock(mu_);
    if (auto it = map_.find(hash); it != map_.end() && it->second->kind == ObjectMeta::Kind::Complete)
      complete = it->second;
    if (auto it = partial_.find(hash); it != partial_.end()) partial = it->second;
  }
  if (!complete && !partial) return false;
  if (complete) {
    if (Result<void> r = dropLocked(hash, Tally::Eviction); !r)
      OLOG_RATE(log::Level::Warn, "store: evicting %s: %s", complete->key.c_str(), r.error().message().c_str());
  }
  if (partial) dropPartialLocked(hash, partial->gen, complete ? Tally::Bytes : Tally::Eviction);
  return true;
}

// ---- verification and scrub ----

Result<void> FileStore::verifyBlocks(const CacheKey& key, const ObjectMeta& meta, int fd, uint64_t offset,
                                     uint64_t length) {
  const std::shared_ptr<VerifiedBlocks>& marks = meta.verified;
  if (!marks || meta.blockSize == 0 || meta.sums.size() != marks->blocks()) return ok();  // nothing to check against
  if (length == 0 || offset >= meta.size) return ok();
  const uint64_t bs = meta.blockSize;
  const uint64_t last = (std::min(meta.size, offset + length) - 1) / bs;
  for (uint64_t b = offset / bs; b <= last; ++b) {
    if (marks->test(b)) continue;
    const uint64_t off = b * bs;
    Result<uint64_t> sum = checksumRange(fd, off, std::min(bs, meta.size - off));
    if (!sum && sum.error().code != Errc::Corrupt) return sum.error();  // a read error says nothing about the bytes
    if (!sum || *sum != meta.sums[b]) {
      (void)dropCorrupt(key.hash, meta.gen, meta.key, b, "hit");
      return Error{Errc::Corrupt, 0, "verify: block checksum mismatch"};
    }
    marks->mark(b);
  }
  return ok();
}

bool FileStore::dropCorrupt(const Hash128& hash, uint64_t gen, const std::string& keyText, uint64_t block,
                            const char* who) {
  std::lock_guard keyGuard(keyLock(hash));
  {
    std::shared_lock lock(mu_);
    auto it = map_.find(hash);
    if (it == map_.end() || it->second->kind != ObjectMeta::Kind::Complete || it->second->gen != gen) return false;
  }
  OLOG_RATE(log::Level::Warn, "store: dropping %s (generation %llu): block %llu failed its checksum (%s)",
            keyText.c_str(), static_cast<unsigned long long>(gen), static_cast<unsigned long long>(block), who);
  (void)dropLocked(hash);
  {
    std::unique_lock lock(mu_);
    stats_.corruptObjects += 1;
  }
  syncLocked(hash);
  return true;
}

uint64_t FileStore::scrubPass(bool background) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::pair<Hash128, std::shared_ptr<const ObjectMeta>>> objects;
  {
    std::shared_lock lock(mu_);
    objects.reserve(map_.size());
    for (const auto& [h, m] : map_)
      if (m->kind == ObjectMeta::Kind::Complete && m->verified) objects.emplace_back(h, m);
  }
  const uint64_t rate = background ? options_.scrubBytesPerSecond : 0;
  uint64_t bytes = 0, corrupt = 0, unverifiable = 0;
  double debtMs = 0;  // sleep owed to the rate cap, paid in slices of >= 10 ms
  for (const auto& [h, m] : objects) {
    if (stopping_.load(std::memory_order_relaxed)) break;
    if (background) {
      maybeEvict();
      refillSpares();
    }
    int err = 0;
    bool mismatch = false;
    int fd = openChecked(h, m->gen, m->size, &err, &mismatch);
    if (fd < 0) {
      // Gone or resized: replaced or removed since the snapshot, or for
      // openObject() to drop on the next hit (it checks the size).
      ++unverifiable;
      continue;
    }
    const uint64_t bs = m->blockSize;
    for (uint64_t b = 0; b < m->sums.size() && !stopping_.load(std::memory_order_relaxed); ++b) {
      const uint64_t off = b * bs, len = std::min(bs, m->size - off);
      Result<uint64_t> sum = checksumRange(fd, off, len, /*spareCache=*/background);
      bytes += len;
      if (!sum && sum.error().code != Errc::Corrupt) {
        ++unverifiable;
        break;
      }
      if (!sum || *sum != m->sums[b]) {
        if (dropCorrupt(h, m->gen, m->key, b, "scrub")) ++corrupt;
        break;
      }
      m->verified->mark(b);
      if (background && b % 16 == 15) {
        // A large object takes minutes at the scrub's rate: eviction and
        // spare files must not wait for it to end.
        maybeEvict();
        refillSpares();
      }
      if (rate > 0) {
        debtMs += static_cast<double>(len) * 1000.0 / static_cast<double>(rate);
        if (debtMs >= 10) {
          std::unique_lock lock(bgMu_);
          bgCv_.wait_for(lock, std::chrono::milliseconds(static_cast<int64_t>(debtMs)), [this] { return stop_; });
          debtMs = 0;
        }
      }
    }
    ::close(fd);
  }
  {
    std::unique_lock lock(mu_);
    stats_.scrubPasses += 1;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  OLOG_INFO("store: scrub verified %zu objects (%llu bytes) in %.3f s: %llu corrupt (dropped), %llu not readable",
            objects.size(), static_cast<unsigned long long>(bytes), secs, static_cast<unsigned long long>(corrupt),
            static_cast<unsigned long long>(unverifiable));
  return corrupt;
}

void FileStore::reconcile() {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t below = reconcileBelowGen_;
  struct Rec {
    Hash128 hash;
    uint64_t gen;
    bool operator<(const Rec& o) const {
      if (hash.hi != o.hash.hi) return hash.hi < o.hash.hi;
      if (hash.lo != o.hash.lo) return hash.lo < o.hash.lo;
      return gen < o.gen;
    }
  };
  // The records to check: those naming generations from before open().
  std::vector<Rec> recs;
  {
    std::shared_lock lock(mu_);
    recs.reserve(map_.size() + partial_.size());
    for (const auto& [h, m] : map_)
      if (m->kind == ObjectMeta::Kind::Complete && m->gen < below) recs.push_back({h, m->gen});
    for (const auto& [h, p] : partial_)
      if (p->gen < below) recs.push_back({h, p->gen});
  }
  std::sort(recs.begin(), recs.end());
  std::vector<uint8_t> seen(recs.size(), 0);
  uint64_t files = 0, orphans = 0, malformed = 0, dropped = 0;

  // Whether file (hash, gen) of an old generation is an orphan, decided
  // against the records as they are now, under the key lock.
  auto removeIfOrphan = [&](int dirFd, const char* name, const Hash128& h, uint64_t gen) {
    std::lock_guard keyGuard(keyLock(h));
    {
      std::shared_lock lock(mu_);
      auto c = map_.find(h);
      if (c != map_.end() && c->second->kind == ObjectMeta::Kind::Complete && c->second->gen == gen) return;
      auto p = partial_.find(h);
      if (p != partial_.end() && p->second->gen == gen) return;
    }
    if (::unlinkat(dirFd, name, 0) == 0) ++orphans;
  };

  bool walkedAll = true;
  DIR* top = ::opendir(objectsDir_.c_str());
  if (top == nullptr) {
    OLOG_WARN("store: cannot reconcile: %s", errnoError(errno, "open objects dir").message().c_str());
    walkedAll = false;
  }
  while (top != nullptr) {
    struct dirent* e1 = ::readdir(top);
    if (e1 == nullptr) break;
    if (stopping_.load(std::memory_order_relaxed)) {
      walkedAll = false;
      break;
    }
    if (isDotEntry(e1->d_name)) continue;
    maybeEvict();
    const int fd1 = ::dirfd(top);
    unsigned char t1 = entryType(fd1, e1);
    if (t1 != DT_DIR) {
      if (t1 != DT_UNKNOWN && ::unlinkat(fd1, e1->d_name, 0) == 0) ++malformed;
      continue;
    }
    if (!isHex2(e1->d_name)) continue;  // not ours: left alone
    DIR* d2 = openSubdir(fd1, e1->d_name);
    if (d2 == nullptr) {
      if (errno != ENOENT) walkedAll = false;
      continue;
    }
    char prefix[3] = {e1->d_name[0], e1->d_name[1], 0};
    const int fd2 = ::dirfd(d2);
    while (struct dirent* e2 = ::readdir(d2)) {
      if (isDotEntry(e2->d_name)) continue;
      if (e2->d_type == DT_DIR) continue;  // not ours
      Hash128 h;
      uint64_t gen;
      if (!parseObjectName(e2->d_name, prefix, &h, &gen)) {
        if (entryType(fd2, e2) != DT_DIR && ::unlinkat(fd2, e2->d_name, 0) == 0) ++malformed;
        continue;
      }
      ++files;
      if (gen >= below) continue;  // made since open(): not ours to judge
      auto it = std::lower_bound(recs.begin(), recs.end(), Rec{h, gen});
      if (it != recs.end() && it->hash == h && it->gen == gen) {
        seen[static_cast<size_t>(it - recs.begin())] = 1;
      } else {
        removeIfOrphan(fd2, e2->d_name, h, gen);
      }
    }
    ::closedir(d2);
  }
  if (top != nullptr) ::closedir(top);

  // Records whose file the walk did not see. Only after a complete walk: a
  // directory we could not read says nothing about its files.
  if (walkedAll) {
    for (size_t i = 0; i < recs.size(); ++i) {
      if (seen[i]) continue;
      if (stopping_.load(std::memory_order_relaxed)) break;
      const Hash128& h = recs[i].hash;
      std::lock_guard keyGuard(keyLock(h));
      bool complete = false, partial = false;
      {
        std::shared_lock lock(mu_);
        auto c = map_.find(h);
        complete = c != map_.end() && c->second->kind == ObjectMeta::Kind::Complete && c->second->gen == recs[i].gen;
        auto p = partial_.find(h);
        partial = p != partial_.end() && p->second->gen == recs[i].gen;
      }
      if (complete) (void)dropLocked(h);
      if (partial) dropPartialLocked(h, recs[i].gen);
      if (complete || partial) {
        ++dropped;
        syncLocked(h);
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (walkedAll) {
    OLOG_INFO("store: reconciled %zu records with %llu object files in %.3f s: removed %llu orphan and %llu malformed "
              "files, dropped %llu records without a file",
              recs.size(), static_cast<unsigned long long>(files), secs, static_cast<unsigned long long>(orphans),
              static_cast<unsigned long long>(malformed), static_cast<unsigned long long>(dropped));
  } else if (!stopping_.load(std::memory_order_relaxed)) {
    OLOG_WARN("store: reconciliation incomplete (removed %llu orphan files); records kept",
              static_cast<unsigned long long>(orphans));
  }
  reconciled_.store(true, std::memory_order_release);
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
  if (options.dir.empty()) return Error{Errc::Invalid, 0, "store open: empty dir"};
  for (const char* sub : {"", "/objects", "/tmp"}) {
    std::string failed;
    if (Result<void> r = makeDirs(options.dir + sub, &failed); !r) {
      OLOG_ERROR("store: cannot create directory %s: %s (storage.dir is %s)", failed.c_str(),
                 r.error().message().c_str(), options.dir.c_str());
      return Error{r.error().code, r.error().sys, "store open: cannot create a storage directory (the log names it)"};
    }
  }
  // objects/00 .. objects/ff exist from the start: no mkdir on a miss.
  for (int i = 0; i < 256; ++i) {
    char sub[16];
    std::snprintf(sub, sizeof sub, "/objects/%02x", i);
    if (::mkdir((options.dir + sub).c_str(), 0755) != 0 && errno != EEXIST) {
      int err = errno;
      OLOG_ERROR("store: cannot create directory %s%s: %s", options.dir.c_str(), sub,
                 errnoError(err, "mkdir").message().c_str());
      return errnoError(err, "store open: mkdir objects/xx (the log names it)");
    }
  }
  Result<uint64_t> cleared = clearDir(options.dir + "/tmp");
  if (!cleared) return cleared.error();
  if (*cleared > 0) OLOG_INFO("store: removed %llu leftover temp files", static_cast<unsigned long long>(*cleared));

  const std::string indexPath = options.dir + "/index";
  Result<std::unique_ptr<Index>> index = Index::open(indexPath);
  if (!index) {
    OLOG_ERROR("store: cannot open the index %s: %s. To recover, stop orchardd and either run "
               "`orchardd --repair-index` (with the same --config) to salvage it, or move %s aside: orchardd then "
               "starts with an empty index and the start-up reconciliation removes the object files no record "
               "names (the cache refills from the origins)",
               indexPath.c_str(), index.error().message().c_str(), indexPath.c_str());
    return Error{index.error().code, index.error().sys,
                 "store open: the index (storage.dir/index) is corrupt or unreadable; run orchardd --repair-index or "
                 "move it aside (the log says more)"};
  }
  auto store = std::make_unique<FileStore>(options, std::move(index).value());
  store->health().setRoot(options.dir);
  if (Result<void> r = store->load(); !r) return r.error();
  store->start();
  return std::unique_ptr<Store>(std::move(store));
}

Result<void> repairStoreIndex(const std::string& storageDir) { return repairIndex(storageDir + "/index"); }

}  // namespace orchard::cache
