// Index: the cache family's record encoding over db::Database (see index.h).
// Nothing here is hard; the hash key encoding is pinned by a test because
// every store on disk depends on it.
#include "cache/index.h"

#include <cassert>
#include <utility>

namespace orchard::cache {

std::string encodeHashKey(const Hash128& h) {
  std::string k(16, '\0');
  for (int i = 0; i < 8; ++i) {
    k[i] = static_cast<char>(h.hi >> (56 - 8 * i));
    k[8 + i] = static_cast<char>(h.lo >> (56 - 8 * i));
  }
  return k;
}

bool decodeHashKey(std::string_view bytes, Hash128* out) {
  if (bytes.size() != 16) return false;
  uint64_t hi = 0, lo = 0;
  for (int i = 0; i < 8; ++i) {
    hi = (hi << 8) | static_cast<uint8_t>(bytes[i]);
    lo = (lo << 8) | static_cast<uint8_t>(bytes[8 + i]);
  }
  *out = Hash128{hi, lo};
  return true;
}

Result<void> repairIndex(const std::string& path) { return db::repair(path, {kCacheFamily}); }

Index::Index(std::shared_ptr<db::Database> database)
    : database_(std::move(database)), family_(database_->family(kCacheFamily)) {
  assert(family_.valid());
}

Result<std::unique_ptr<Index>> Index::open(const std::string& path) {
  Result<std::unique_ptr<db::Database>> d = db::Database::open(path, {kCacheFamily});
  if (!d) return d.error();
  return std::make_unique<Index>(std::shared_ptr<db::Database>(std::move(d).value()));
}

Result<void> Index::put(const Hash128& hash, std::string_view bytes) {
  return database_->put(family_, encodeHashKey(hash), bytes);
}

Result<std::optional<std::string>> Index::get(const Hash128& hash) const {
  return database_->get(family_, encodeHashKey(hash));
}

uint64_t Index::estimatedCount() const { return database_->estimatedKeys(family_); }

Result<void> Index::del(const Hash128& hash) { return database_->del(family_, encodeHashKey(hash)); }

Result<void> Index::delRaw(std::string_view key) { return database_->del(family_, key); }

void Index::stagePut(db::Batch& batch, const Hash128& hash, std::string_view bytes) const {
  batch.put(family_, encodeHashKey(hash), bytes);
}

void Index::stageDel(db::Batch& batch, const Hash128& hash) const { batch.del(family_, encodeHashKey(hash)); }

void Index::stage(db::Batch& batch, IndexBatch&& changes) const {
  for (const auto& op : changes.ops_) {
    if (op.del) stageDel(batch, op.hash);
    else stagePut(batch, op.hash, op.value);
  }
}

Result<void> Index::write(IndexBatch&& changes) {
  db::Batch batch;
  stage(batch, std::move(changes));
  return database_->write(std::move(batch));
}

Result<void> Index::forEach(const std::function<void(const Hash128&, std::string_view)>& fn,
                            const std::function<void(std::string_view)>& onBadKey) const {
  return database_->forEach(family_, [&](std::string_view key, std::string_view value) {
    Hash128 h;
    if (decodeHashKey(key, &h)) fn(h, value);
    else if (onBadKey) onBadKey(key);
  });
}

}  // namespace orchard::cache
