// MemoryStore (see memory_store.h). Its hard parts: an open descriptor must
// have its own file offset and access mode, so openObject() reopens the
// memfd through /proc/self/fd rather than dup()ing it; and a replaced or
// dropped generation's memfd is closed by the store while readers' own
// descriptors keep its bytes, as unlink does on the file store.
#include "cache/memory_store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "cache/file_util.h"

namespace orchard::cache {

namespace {

using MetaPtr = std::shared_ptr<const ObjectMeta>;

// A new descriptor of the same memfd with its own offset and `flags`.
int reopenFd(int fd, int flags) {
  char path[40];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  return ::open(path, flags | O_CLOEXEC);
}

class MemoryStore final : public Store {
 public:
  ~MemoryStore() override {
    for (auto& [h, gens] : files_)
      for (auto& [g, fd] : gens) ::close(fd);
  }

  std::shared_ptr<const ObjectMeta> lookup(const CacheKey& key) const override {
    std::shared_lock lock(mu_);
    auto it = map_.find(key.hash);
    return it != map_.end() && it->second->key == key.text ? it->second : nullptr;
  }

  std::shared_ptr<const ObjectMeta> lookupPartial(const CacheKey& key) const override {
    std::shared_lock lock(mu_);
    auto it = partial_.find(key.hash);
    return it != partial_.end() && it->second->key == key.text ? it->second : nullptr;
  }

  Result<int> openObject(const CacheKey& key, const ObjectMeta& meta) override {
    if (meta.kind != ObjectMeta::Kind::Complete) return Error{Errc::Invalid, 0, "open object: not a complete object"};
    std::unique_lock lock(mu_);
    int own = fileLocked(key.hash, meta.gen);
    if (own < 0) return Error{Errc::NotFound, ENOENT, "open object: file missing"};
    int fd = reopenFd(own, O_RDONLY);
    if (fd < 0) return errnoError(errno, "open object");
    struct stat st;
    if (::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) == meta.size) return fd;
    ::close(fd);
    if (auto it = map_.find(key.hash); it != map_.end() && it->second->gen == meta.gen) eraseCompleteLocked(key.hash);
    return Error{Errc::Corrupt, 0, "open object: size mismatch"};
  }

  Result<OpenObject> openForRead(const CacheKey& key, const ObjectMeta& meta) override {
    Result<int> fd = openObject(key, meta);
    if (!fd) return fd.error();
    return OpenObject{*fd, pin_};  // nothing is evicted here: the pin only has to exist
  }

  Result<void> verifyBlocks(const CacheKey& key, const ObjectMeta& meta, int fd, uint64_t offset,
                            uint64_t length) override {
    uint64_t bad = 0;
    Result<void> r = checkBlocks(meta, fd, offset, length, &bad);
    if (!r && r.error().code == Errc::Corrupt) dropCorrupt(key.hash, meta.gen);
    return r;
  }

  uint64_t scrubNow() override {
    std::vector<std::pair<Hash128, MetaPtr>> objects;
    {
      std::shared_lock lock(mu_);
      for (const auto& [h, m] : map_)
        if (m->verified) objects.emplace_back(h, m);
    }
    uint64_t corrupt = 0;
    for (const auto& [h, m] : objects) {
      Result<int> fd = openObject(CacheKey{m->key, h}, *m);
      if (!fd) continue;
      uint64_t bad = 0;
      Result<void> r = checkBlocks(*m, *fd, 0, m->size, &bad);
      ::close(*fd);
      if (!r && r.error().code == Errc::Corrupt && dropCorrupt(h, m->gen)) ++corrupt;
    }
    std::unique_lock lock(mu_);
    counters_.scrubPasses += 1;
    return corrupt;
  }

  void touch(const CacheKey&) override {}

  Result<ObjectFile> createObject(const CacheKey& key) override {
    int own = ::memfd_create("orchard-object", MFD_CLOEXEC);
    if (own < 0) return writeFailed(errnoError(errno, "create object file"));
    int fd = ::fcntl(own, F_DUPFD_CLOEXEC, 0);  // pwrite only: the shared offset does not matter
    if (fd < 0) {
      ::close(own);
      return writeFailed(errnoError(errno, "create object file"));
    }
    std::unique_lock lock(mu_);
    const uint64_t gen = ++gen_;
    files_[key.hash][gen] = own;
    return ObjectFile{fd, gen};
  }

  Result<int> reopenPartial(const CacheKey& key, const ObjectMeta& meta) override {
    std::unique_lock lock(mu_);
    int own = fileLocked(key.hash, meta.gen);
    if (own < 0) {
      if (auto it = partial_.find(key.hash); it != partial_.end() && it->second->gen == meta.gen) partial_.erase(it);
      return Error{Errc::NotFound, ENOENT, "reopen partial: file missing"};
    }
    int fd = reopenFd(own, O_RDWR);
    if (fd < 0) return errnoError(errno, "reopen partial");
    return fd;
  }

  Result<void> recordPartial(const CacheKey& key, ObjectMeta meta) override {
    if (meta.kind != ObjectMeta::Kind::Partial || meta.blockSize == 0) return Error{Errc::Invalid, 0, "record partial: bad meta"};
    meta.key = key.text;
    std::unique_lock lock(mu_);
    if (auto it = map_.find(key.hash); it != map_.end() && it->second->kind == ObjectMeta::Kind::Complete) return ok();
    partial_[key.hash] = std::make_shared<const ObjectMeta>(std::move(meta));
    return ok();
  }

  Result<void> commitObject(const CacheKey& key, ObjectMeta meta) override {
    meta.key = key.text;
    meta.kind = ObjectMeta::Kind::Complete;
    meta.blocks.clear();
    if (meta.sums.empty()) meta.blockSize = 0;
    prepareMarks(&meta);
    std::unique_lock lock(mu_);
    int own = fileLocked(key.hash, meta.gen);
    if (own < 0) return Error{Errc::Invalid, ENOENT, "commit object: no such object file for this key"};
    struct stat st;
    if (::fstat(own, &st) != 0) return writeFailed(errnoError(errno, "commit object: stat"));
    if (static_cast<uint64_t>(st.st_size) != meta.size) return Error{Errc::Corrupt, 0, "commit object: size mismatch"};
    partial_.erase(key.hash);
    publishLocked(key.hash, std::make_shared<const ObjectMeta>(std::move(meta)));
    return ok();
  }

  void dropObject(const CacheKey& key, uint64_t gen) override {
    std::unique_lock lock(mu_);
    if (auto it = partial_.find(key.hash); it != partial_.end() && it->second->gen == gen) partial_.erase(it);
    auto c = map_.find(key.hash);
    if (c == map_.end() || c->second->kind != ObjectMeta::Kind::Complete || c->second->gen != gen)
      closeFileLocked(key.hash, gen);
  }

  Result<void> putStub(const CacheKey& key, ObjectMeta meta) override {
    if (meta.kind != ObjectMeta::Kind::VaryStub) return Error{Errc::Invalid, 0, "put stub: not a stub"};
    meta.key = key.text;
    std::unique_lock lock(mu_);
    publishLocked(key.hash, std::make_shared<const ObjectMeta>(std::move(meta)));
    return ok();
  }

  Result<void> refresh(const CacheKey& key, const ObjectMeta& updated) override {
    std::unique_lock lock(mu_);
    auto it = map_.find(key.hash);
    if (it == map_.end() || it->second->key != key.text || it->second->kind != ObjectMeta::Kind::Complete ||
        it->second->gen != updated.gen || it->second->size != updated.size)
      return Error{Errc::NotFound, 0, "refresh: object changed"};
    ObjectMeta m = updated;
    m.key = key.text;
    m.kind = ObjectMeta::Kind::Complete;
    m.blockSize = it->second->blockSize;  // same bytes: same checksums and marks
    m.sums = it->second->sums;
    m.verified = it->second->verified;
    it->second = std::make_shared<const ObjectMeta>(std::move(m));
    return ok();
  }

  Result<TempFile> createTemp(const CacheKey& key) override {
    int fd = ::memfd_create("orchard-temp", MFD_CLOEXEC);
    if (fd < 0) return writeFailed(errnoError(errno, "create temp file"));
    return TempFile(fd, std::string(), key.hash);
  }

  void abandon(TempFile&& file) override { TempFile gone(std::move(file)); }

  Result<void> remove(const CacheKey& key) override {
    std::unique_lock lock(mu_);
    auto it = map_.find(key.hash);
    if (it == map_.end() || it->second->key != key.text) return Error{Errc::NotFound, 0, "remove"};
    eraseCompleteLocked(key.hash);
    return ok();
  }

  StoreStats stats() const override {
    std::shared_lock lock(mu_);
    StoreStats st = counters_;
    for (const auto& [h, m] : map_) {
      if (m->kind != ObjectMeta::Kind::Complete) continue;
      st.objects += 1;
      st.bytes += m->size;
    }
    for (const auto& [h, p] : partial_) {
      uint64_t blocks = 0;
      for (unsigned char c : p->blocks) blocks += static_cast<uint64_t>(__builtin_popcount(c));
      st.partials += 1;
      st.partialBytes += std::min<uint64_t>(blocks * p->blockSize, p->size);
    }
    return st;
  }

  Result<std::vector<std::string>> keysWhere(const std::function<bool(std::string_view)>& match) const override {
    std::vector<std::string> out;
    std::shared_lock lock(mu_);
    for (const auto& [h, m] : map_)
      if (match(m->key)) out.push_back(m->key);
    for (const auto& [h, p] : partial_)
      if (match(p->key) && !map_.count(h)) out.push_back(p->key);
    return out;
  }

  void setBusyCheck(std::function<bool(const Hash128&)>) override {}  // never called: nothing is evicted
  void setUnlinkListener(UnlinkListener) override {}                  // no files
  void requestEviction(uint64_t) override {}
  // Kept and reported, never enforced (nothing is evicted).
  void setCacheLimit(uint64_t bytes) override { limit_.store(bytes, std::memory_order_relaxed); }
  uint64_t cacheLimit() const override { return limit_.load(std::memory_order_relaxed); }
  bool reconciled() const override { return true; }
  std::string objectFilePath(const Hash128& hash, uint64_t gen) const override {
    return "memfd:" + hash.hex() + "." + std::to_string(gen);
  }

 private:
  std::atomic<uint64_t> limit_{0};
  Error writeFailed(Error e) {
    health().writeFailed(e, "memfd", 0);
    return e;
  }
  int fileLocked(const Hash128& hash, uint64_t gen) const {
    auto it = files_.find(hash);
    if (it == files_.end()) return -1;
    auto g = it->second.find(gen);
    return g == it->second.end() ? -1 : g->second;
  }
  void closeFileLocked(const Hash128& hash, uint64_t gen) {
    auto it = files_.find(hash);
    if (it == files_.end()) return;
    if (auto g = it->second.find(gen); g != it->second.end()) {
      ::close(g->second);
      it->second.erase(g);
    }
    if (it->second.empty()) files_.erase(it);
  }
  // Replaces the key's entry; the file of a complete generation it replaces goes.
  void publishLocked(const Hash128& hash, MetaPtr published) {
    MetaPtr& slot = map_[hash];
    if (slot && slot->kind == ObjectMeta::Kind::Complete && slot->gen != published->gen) closeFileLocked(hash, slot->gen);
    slot = std::move(published);
  }
  void eraseCompleteLocked(const Hash128& hash) {
    auto it = map_.find(hash);
    if (it == map_.end()) return;
    if (it->second->kind == ObjectMeta::Kind::Complete) closeFileLocked(hash, it->second->gen);
    map_.erase(it);
  }
  bool dropCorrupt(const Hash128& hash, uint64_t gen) {
    std::unique_lock lock(mu_);
    auto it = map_.find(hash);
    if (it == map_.end() || it->second->kind != ObjectMeta::Kind::Complete || it->second->gen != gen) return false;
    eraseCompleteLocked(hash);
    counters_.corruptObjects += 1;
    return true;
  }

  mutable std::shared_mutex mu_;  // guards everything below
  std::unordered_map<Hash128, MetaPtr, Hash128Hasher> map_;      // complete objects and stubs
  std::unordered_map<Hash128, MetaPtr, Hash128Hasher> partial_;  // partial records
  std::unordered_map<Hash128, std::map<uint64_t, int>, Hash128Hasher> files_;  // memfds by generation
  uint64_t gen_ = 0;
  StoreStats counters_;  // corruptObjects and scrubPasses; the rest is counted in stats()
  const std::shared_ptr<void> pin_ = std::make_shared<int>(0);
};

}  // namespace

std::unique_ptr<Store> makeMemoryStore() { return std::make_unique<MemoryStore>(); }

}  // namespace orchard::cache
