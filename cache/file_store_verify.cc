// FileStore block verification and scrub (see store.h, "Block
// verification"): ensureVerified()'s slow half on the hit path, the drop of
// an object whose block fails, and the scrub pass that re-reads every
// object with checksums.
//
// Hard parts: a block is verified once per generation (the marks live in
// the published entry, shared by every lookup of it, and a refresh() of the
// same generation keeps them); a mismatch drops the entry only if it still
// names that generation, under its key lock, and counts it once; and the
// background scrub is rate-limited and must not hold up eviction or the
// spare files while it reads a large object.
#include "cache/file_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "cache/file_util.h"
#include "common/log.h"

namespace orchard::cache {

Result<void> FileStore::verifyBlocks(const CacheKey& key, const ObjectMeta& meta, int fd, uint64_t offset,
                                     uint64_t length) {
  uint64_t bad = 0;
  Result<void> r = checkBlocks(meta, fd, offset, length, &bad);
  if (!r && r.error().code == Errc::Corrupt) (void)dropCorrupt(key.hash, meta.gen, meta.key, bad, "hit");
  return r;
}

bool FileStore::dropCorrupt(const Hash128& hash, uint64_t gen, const std::string& keyText, uint64_t block,
                            const char* who) {
  std::lock_guard keyGuard(keyLock(hash));
  {
    std::shared_lock lock(mu_);
    const IndexEntry* e = entries_.find(hash);
    if (e == nullptr || !e->complete() || e->gen != gen) return false;
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
  // The objects with checksums; each record is read when its turn comes
  // (from the record cache or RocksDB), not all held at once.
  std::vector<std::pair<Hash128, uint64_t>> objects;
  {
    std::shared_lock lock(mu_);
    entries_.forEach([&](const IndexEntry& e) {
      if (e.complete() && (e.flags.load(std::memory_order_relaxed) & IndexEntry::kSums)) objects.emplace_back(e.hash, e.gen);
    });
  }
  const uint64_t rate = background ? options_.scrubBytesPerSecond : 0;
  uint64_t bytes = 0, corrupt = 0, unverifiable = 0;
  double debtMs = 0;  // sleep owed to the rate cap, paid in slices of >= 10 ms
  for (const auto& [h, objectGen] : objects) {
    if (stopping_.load(std::memory_order_relaxed)) break;
    const std::shared_ptr<const ObjectMeta> m = currentRecord(h);
    if (!m || m->kind != ObjectMeta::Kind::Complete || m->gen != objectGen || !m->verified) continue;  // changed since
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
    if (m->verified->allVerified()) {  // remembered in the entry for a re-read record
      std::shared_lock lock(mu_);
      if (IndexEntry* e = entries_.find(h); e && e->complete() && e->gen == objectGen)
        e->flags.fetch_or(IndexEntry::kVerified, std::memory_order_relaxed);
    }
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

}  // namespace orchard::cache
