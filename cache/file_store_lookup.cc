// FileStore lookup (see file_store.h, "Memory"): the hit path. The compact
// entry says whether the hash has a complete object or a stub and which
// record (rev) is current; the record itself comes from the record cache
// (cache/record_cache.h) or, on a miss there, from RocksDB (a point read,
// usually from its block cache or the page cache), decoded and kept.
//
// Hard parts: RocksDB lags the index (records are written by the writer
// thread), so a record read from it is only believed if the entry still has
// the rev it had before the read, and only then cached (under the shared
// lock, which every publish excludes); a publish pins its record in the
// cache until written, so a lookup after it never needs RocksDB. A read
// that raced a publish is retried. The one blocking call of the hit path
// is that RocksDB read, of about a microsecond to a few when the index
// block is cached; no lock is held across it.
#include "cache/file_store.h"

#include "cache/file_util.h"
#include "common/log.h"

namespace orchard::cache {

void FileStore::cacheRecordLocked(const Hash128& hash, std::shared_ptr<const ObjectMeta> meta, uint32_t rev) {
  records_.put(hash, std::move(meta), rev, /*pinned=*/true);
}

std::shared_ptr<const ObjectMeta> FileStore::lookup(const CacheKey& key) const {
  std::shared_ptr<const ObjectMeta> meta = currentRecord(key.hash);
  // The full text decides: a hash collision is a miss, never a wrong object.
  if (!meta || meta->key != key.text) return nullptr;
  return meta;
}

std::shared_ptr<const ObjectMeta> FileStore::currentRecord(const Hash128& hash) const {
  constexpr int kAttempts = 4;  // a read that raced a publish is retried; the next finds the pinned record
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    uint32_t rev;
    uint64_t gen;
    bool complete, verified;
    {
      std::shared_lock lock(mu_);
      const IndexEntry* e = entries_.find(hash);
      if (e == nullptr || !(e->complete() || e->stub())) return nullptr;
      if (std::shared_ptr<const ObjectMeta> m = records_.get(hash, e->rev)) {
        // Every block passed: remembered in the entry, for a re-read record.
        if (m->verified && m->verified->allVerified() &&
            !(e->flags.load(std::memory_order_relaxed) & IndexEntry::kVerified))
          const_cast<IndexEntry*>(e)->flags.fetch_or(IndexEntry::kVerified, std::memory_order_relaxed);
        return m;
      }
      rev = e->rev;
      gen = e->gen;
      complete = e->complete();
      verified = e->flags.load(std::memory_order_relaxed) & IndexEntry::kVerified;
    }
    Result<std::optional<std::string>> bytes = index_.get(hash);
    if (!bytes) return nullptr;  // counted and logged by the database wrapper
    if (!bytes->has_value()) {
      OLOG_RATE(log::Level::Warn, "store: index entry %s has no record in RocksDB", hash.hex().c_str());
      return nullptr;
    }
    Result<ObjectMeta> decoded = decodeMeta(**bytes);
    if (!decoded) {
      OLOG_RATE(log::Level::Warn, "store: record %s no longer decodes", hash.hex().c_str());
      return nullptr;
    }
    const bool matches = complete ? decoded->kind == ObjectMeta::Kind::Complete && decoded->gen == gen
                                  : decoded->kind == ObjectMeta::Kind::VaryStub;
    if (!matches) continue;  // the entry changed since: look again
    prepareMarks(&decoded.value());
    if (verified && decoded->verified)
      for (uint64_t b = 0; b < decoded->verified->blocks(); ++b) decoded->verified->mark(b);
    auto meta = std::make_shared<const ObjectMeta>(std::move(decoded).value());
    std::shared_lock lock(mu_);
    const IndexEntry* e = entries_.find(hash);
    if (e == nullptr || e->rev != rev) continue;  // published or dropped meanwhile
    records_.fill(hash, meta, rev);
    return meta;
  }
  return nullptr;
}

}  // namespace orchard::cache
