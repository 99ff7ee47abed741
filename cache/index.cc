// Index: the cache family's record encoding over db::Database, and the
// summaries beside the records (see index.h).
//
// Hard parts: the hash key encoding is pinned by a test because every store
// on disk depends on it; every put and delete stages the record and its
// summary together (one atomic batch), and the summary is derived from the
// record bytes (decodeMetaSummary() plus the key's hash), so a bad record
// is flagged as one at write time and dropped at the next load as before.
#include "cache/index.h"

#include <algorithm>
#include <cassert>
#include <optional>
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

namespace {

// Not 16 bytes: never a hash key.
constexpr std::string_view kSummaryMarker = "summaries-v1";
constexpr uint8_t kSummaryVersion = 1;
constexpr uint8_t kBadKind = 0xff;

void putVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool getVarint(std::string_view b, size_t* pos, uint64_t* out) {
  uint64_t v = 0;
  for (int i = 0; i < 10 && *pos < b.size(); ++i) {
    const uint8_t c = static_cast<uint8_t>(b[(*pos)++]);
    v |= static_cast<uint64_t>(c & 0x7f) << (7 * i);
    if ((c & 0x80) == 0) {
      *out = v;
      return true;
    }
  }
  return false;
}

}  // namespace

std::string encodeSummary(const Hash128& hash, std::string_view record) {
  std::string out;
  out.reserve(24);
  out.push_back(static_cast<char>(kSummaryVersion));
  Result<MetaSummary> m = decodeMetaSummary(record);
  if (!m || !(hashKey(m->key) == hash)) {
    out.push_back(static_cast<char>(kBadKind));
    return out;
  }
  out.push_back(static_cast<char>(m->kind));
  out.push_back(static_cast<char>(m->sums ? 1 : 0));
  putVarint(&out, m->gen);
  putVarint(&out, m->size);
  putVarint(&out, static_cast<uint64_t>(std::clamp<int64_t>(std::max(m->lastAccess, m->responseTime), 0, UINT32_MAX)));
  return out;
}

bool decodeSummary(std::string_view b, IndexSummary* out) {
  *out = IndexSummary{};
  if (b.size() < 2 || static_cast<uint8_t>(b[0]) != kSummaryVersion) return false;
  const uint8_t kind = static_cast<uint8_t>(b[1]);
  if (kind == kBadKind) return b.size() == 2;  // valid == false: a bad record
  if (kind > 2 || b.size() < 3) return false;
  out->kind = static_cast<ObjectMeta::Kind>(kind);
  out->sums = b[2] & 1;
  size_t pos = 3;
  uint64_t used;
  if (!getVarint(b, &pos, &out->gen) || !getVarint(b, &pos, &out->size) || !getVarint(b, &pos, &used) ||
      used > UINT32_MAX || pos != b.size())
    return false;
  out->usedAt = static_cast<uint32_t>(used);
  out->valid = true;
  return true;
}

Result<void> repairIndex(const std::string& path) {
  if (Result<void> r = db::repair(path, {kCacheFamily, kSummaryFamily}); !r) return r;
  // What the repair salvaged of the two families may differ: rebuild the
  // summaries from the records at the next open.
  Result<std::unique_ptr<Index>> index = Index::open(path);
  if (!index) return index.error();
  return (*index)->dropSummaryMarker();
}

Index::Index(std::shared_ptr<db::Database> database)
    : database_(std::move(database)),
      family_(database_->family(kCacheFamily)),
      summaryFamily_(database_->family(kSummaryFamily)) {
  assert(family_.valid());
}

Result<std::unique_ptr<Index>> Index::open(const std::string& path) {
  Result<std::unique_ptr<db::Database>> d = db::Database::open(path, {kCacheFamily, kSummaryFamily});
  if (!d) return d.error();
  return std::make_unique<Index>(std::shared_ptr<db::Database>(std::move(d).value()));
}

Result<void> Index::put(const Hash128& hash, std::string_view bytes) {
  db::Batch batch;
  stagePut(batch, hash, bytes);
  return database_->write(std::move(batch));
}

Result<std::optional<std::string>> Index::get(const Hash128& hash) const {
  return database_->get(family_, encodeHashKey(hash));
}

uint64_t Index::estimatedCount() const { return database_->estimatedKeys(family_); }

Result<void> Index::del(const Hash128& hash) {
  db::Batch batch;
  stageDel(batch, hash);
  return database_->write(std::move(batch));
}

Result<void> Index::delRaw(std::string_view key) { return database_->del(family_, key); }

void Index::stagePut(db::Batch& batch, const Hash128& hash, std::string_view bytes) const {
  const std::string key = encodeHashKey(hash);
  batch.put(family_, key, bytes);
  if (summaryFamily_.valid()) batch.put(summaryFamily_, key, encodeSummary(hash, bytes));
}

void Index::stageDel(db::Batch& batch, const Hash128& hash) const {
  const std::string key = encodeHashKey(hash);
  batch.del(family_, key);
  if (summaryFamily_.valid()) batch.del(summaryFamily_, key);
}

bool Index::hasSummaries() const {
  if (!summaryFamily_.valid()) return false;
  Result<std::optional<std::string>> m = database_->get(summaryFamily_, kSummaryMarker);
  return m && m->has_value();
}

Result<uint64_t> Index::buildSummaries() {
  if (!summaryFamily_.valid()) return Error{Errc::Unsupported, 0, "build summaries: no summary family"};
  uint64_t written = 0;
  db::Batch batch;
  Result<void> failed = ok();
  Result<void> r = forEach([&](const Hash128& hash, std::string_view bytes) {
    if (!failed) return;
    batch.put(summaryFamily_, encodeHashKey(hash), encodeSummary(hash, bytes));
    if (++written % 16384 == 0) failed = database_->write(std::exchange(batch, db::Batch{}));
  });
  if (!r) return r.error();
  if (!failed) return failed.error();
  batch.put(summaryFamily_, kSummaryMarker, "1");
  if (Result<void> w = database_->write(std::move(batch)); !w) return w.error();
  return written;
}

Result<void> Index::forEachSummary(const std::function<void(const Hash128&, const IndexSummary&)>& fn,
                                   const std::function<void(std::string_view)>& onBadKey) const {
  if (!summaryFamily_.valid()) return Error{Errc::Unsupported, 0, "summary scan: no summary family"};
  return database_->forEach(summaryFamily_, [&](std::string_view key, std::string_view value) {
    Hash128 h;
    IndexSummary s;
    if (key == kSummaryMarker) return;
    if (decodeHashKey(key, &h) && decodeSummary(value, &s)) fn(h, s);
    else if (decodeHashKey(key, &h)) fn(h, IndexSummary{});  // undecodable summary: the record goes as a bad one
    else if (onBadKey) onBadKey(key);
  });
}

Result<void> Index::delRawSummary(std::string_view key) {
  if (!summaryFamily_.valid()) return ok();
  return database_->del(summaryFamily_, key);
}

Result<void> Index::dropSummaryMarker() {
  if (!summaryFamily_.valid()) return ok();
  return database_->del(summaryFamily_, kSummaryMarker);
}

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
