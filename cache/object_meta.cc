// ObjectMeta encoding: the RocksDB value of one cache index record.
//
// Format version 1, all integers LEB128 varints (signed ones zig-zag):
//   u8     version (= 1)
//   str    key                      str = varint length + bytes
//   varint status (<= 65535)
//   str    reason
//   varint size
//   varint header count, then count x (str name, str value)
//   str    etag
//   str    lastModified
//   svar   requestTime, responseTime, lastAccess
//   u8     kind (0 Complete, 1 Partial, 2 VaryStub)       (version 2)
//   varint gen, blockSize
//   str    blocks, vary
//   varint sum count, then count x u64 little-endian    (version 3)
//          Complete: one XXH3-64 per blockSize block (count = block count);
//          Partial: one per block set in `blocks`, in block order
//          (count = set bits). A record without checksums is written as
//          version 2, which ends after vary.
// The record must end exactly after its last field. decodeMeta() treats the
// bytes as untrusted (a damaged disk, a fuzzer): every length is checked
// against what is left, nothing is read out of bounds, and any inconsistency
// is Errc::Corrupt. A new field means a new version byte.
#include "cache/object_meta.h"

#include <xxhash.h>

#include <limits>

namespace orchard::cache {

namespace {

// Version 2: no checksums (today's stores before the upgrade: still decoded,
// and still written for records without checksums). Version 3: checksums.
constexpr uint8_t kVersionNoSums = 2;
constexpr uint8_t kVersionSums = 3;

bool blockSet(const std::string& bitmap, uint64_t b) {
  return b / 8 < bitmap.size() && ((static_cast<unsigned char>(bitmap[b / 8]) >> (b % 8)) & 1);
}

// Whether meta.sums is encodable: Complete, one per block; Partial, indexed
// by block.
bool hasSums(const ObjectMeta& m) {
  if (m.sums.empty() || m.blockSize == 0) return false;
  if (m.kind == ObjectMeta::Kind::VaryStub) return false;
  return m.sums.size() == m.blockCount();
}

const Error kCorrupt{Errc::Corrupt, 0, "decode object meta"};

void putVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void putSigned(std::string* out, int64_t v) {
  putVarint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}

void putString(std::string* out, std::string_view s) {
  putVarint(out, s.size());
  out->append(s);
}

// A bounds-checked cursor over untrusted bytes. Every getter returns false
// (and leaves the output unspecified) instead of reading past the end.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}

  bool atEnd() const { return pos_ == b_.size(); }
  size_t remaining() const { return b_.size() - pos_; }

  bool byte(uint8_t* out) {
    if (pos_ >= b_.size()) return false;
    *out = static_cast<uint8_t>(b_[pos_++]);
    return true;
  }

  bool varint(uint64_t* out) {
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      uint8_t c;
      if (!byte(&c)) return false;
      if (i == 9 && c > 1) return false;  // would overflow 64 bits
      v |= static_cast<uint64_t>(c & 0x7f) << (7 * i);
      if ((c & 0x80) == 0) {
        *out = v;
        return true;
      }
    }
    return false;
  }

  bool signedVarint(int64_t* out) {
    uint64_t z;
    if (!varint(&z)) return false;
    *out = static_cast<int64_t>((z >> 1) ^ (~(z & 1) + 1));
    return true;
  }

  bool fixed64(uint64_t* out) {
    if (remaining() < 8) return false;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(b_[pos_ + i])) << (8 * i);
    pos_ += 8;
    *out = v;
    return true;
  }

  bool skip(std::string_view* out) {
    uint64_t n;
    if (!varint(&n) || n > remaining()) return false;
    *out = b_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return true;
  }

  bool skipBytes(uint64_t n) {
    if (n > remaining()) return false;
    pos_ += static_cast<size_t>(n);
    return true;
  }

  bool string(std::string* out) {
    uint64_t n;
    if (!varint(&n) || n > remaining()) return false;
    out->assign(b_.data() + pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return true;
  }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

}  // namespace

std::string_view ObjectMeta::header(std::string_view name) const {
  auto v = findHeader(headers, name);
  return v ? *v : std::string_view();
}

uint64_t blockChecksum(const void* data, size_t n) { return XXH3_64bits(data, n); }

std::string encodeMeta(const ObjectMeta& meta) {
  const bool sums = hasSums(meta);
  size_t estimate = 32 + meta.key.size() + meta.reason.size() + meta.etag.size() + meta.lastModified.size() +
                    meta.blocks.size() + meta.vary.size() + (sums ? 8 * meta.sums.size() + 10 : 0);
  for (const auto& [n, v] : meta.headers) estimate += n.size() + v.size() + 4;
  std::string out;
  out.reserve(estimate);
  out.push_back(static_cast<char>(sums ? kVersionSums : kVersionNoSums));
  putString(&out, meta.key);
  putVarint(&out, meta.status);
  putString(&out, meta.reason);
  putVarint(&out, meta.size);
  putVarint(&out, meta.headers.size());
  for (const auto& [n, v] : meta.headers) {
    putString(&out, n);
    putString(&out, v);
  }
  putString(&out, meta.etag);
  putString(&out, meta.lastModified);
  putSigned(&out, meta.requestTime);
  putSigned(&out, meta.responseTime);
  putSigned(&out, meta.lastAccess);
  out.push_back(static_cast<char>(meta.kind));
  putVarint(&out, meta.gen);
  putVarint(&out, meta.blockSize);
  putString(&out, meta.blocks);
  putString(&out, meta.vary);
  if (sums) {
    const bool partial = meta.kind == ObjectMeta::Kind::Partial;
    uint64_t count = 0;
    for (uint64_t b = 0; b < meta.sums.size(); ++b) count += !partial || blockSet(meta.blocks, b);
    putVarint(&out, count);
    for (uint64_t b = 0; b < meta.sums.size(); ++b) {
      if (partial && !blockSet(meta.blocks, b)) continue;
      for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(meta.sums[b] >> (8 * i)));
    }
  }
  return out;
}

Result<ObjectMeta> decodeMeta(std::string_view bytes) {
  Reader r(bytes);
  ObjectMeta m;
  uint8_t version;
  if (!r.byte(&version) || (version != kVersionNoSums && version != kVersionSums)) return kCorrupt;
  uint64_t status, count;
  if (!r.string(&m.key) || !r.varint(&status) || status > std::numeric_limits<uint16_t>::max() ||
      !r.string(&m.reason) || !r.varint(&m.size) || !r.varint(&count)) {
    return kCorrupt;
  }
  m.status = static_cast<uint16_t>(status);
  // Each header takes at least two bytes (two empty strings): a count the
  // buffer cannot hold is rejected before anything is allocated for it.
  if (count > r.remaining() / 2) return kCorrupt;
  m.headers.reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) {
    std::string n, v;
    if (!r.string(&n) || !r.string(&v)) return kCorrupt;
    m.headers.emplace_back(std::move(n), std::move(v));
  }
  if (!r.string(&m.etag) || !r.string(&m.lastModified) || !r.signedVarint(&m.requestTime) ||
      !r.signedVarint(&m.responseTime) || !r.signedVarint(&m.lastAccess)) {
    return kCorrupt;
  }
  // Times are seconds since 1970: anything beyond ±2^40 s (±35 000 years)
  // is damage, and arithmetic on it could overflow.
  constexpr int64_t kTimeLimit = int64_t{1} << 40;
  for (int64_t t : {m.requestTime, m.responseTime, m.lastAccess})
    if (t > kTimeLimit || t < -kTimeLimit) return kCorrupt;
  uint8_t kind;
  uint64_t blockSize;
  if (!r.byte(&kind) || kind > 2 || !r.varint(&m.gen) || !r.varint(&blockSize) ||
      blockSize > std::numeric_limits<uint32_t>::max() || !r.string(&m.blocks) || !r.string(&m.vary)) {
    return kCorrupt;
  }
  m.kind = static_cast<ObjectMeta::Kind>(kind);
  m.blockSize = static_cast<uint32_t>(blockSize);
  const uint64_t nblocks = m.blockCount();
  if (m.kind == ObjectMeta::Kind::Partial) {
    if (m.blockSize == 0) return kCorrupt;
    if (m.blocks.size() != (nblocks + 7) / 8) return kCorrupt;
  }
  // Version 2 (records from before checksums) ends here: decoded as it is,
  // with no checksums; the store serves such objects unverified until they
  // are refetched (they are not rehashed lazily: bytes of unknown origin
  // would only be certified as they are now).
  if (version == kVersionSums) {
    uint64_t count;
    if (m.kind == ObjectMeta::Kind::VaryStub || m.blockSize == 0 || !r.varint(&count) || count > r.remaining() / 8)
      return kCorrupt;
    if (m.kind == ObjectMeta::Kind::Complete) {
      if (count != nblocks) return kCorrupt;
      m.sums.resize(static_cast<size_t>(count));
      for (uint64_t b = 0; b < count; ++b)
        if (!r.fixed64(&m.sums[b])) return kCorrupt;
    } else {
      uint64_t set = 0;
      for (uint64_t b = 0; b < nblocks; ++b) set += blockSet(m.blocks, b);
      if (count != set) return kCorrupt;
      m.sums.assign(static_cast<size_t>(nblocks), 0);
      for (uint64_t b = 0; b < nblocks; ++b)
        if (blockSet(m.blocks, b) && !r.fixed64(&m.sums[b])) return kCorrupt;
    }
    // A Partial with no block set carries no checksum: canonical is version 2.
    if (count == 0) m.sums.clear();
  }
  if (!r.atEnd()) return kCorrupt;
  return m;
}

Result<MetaSummary> decodeMetaSummary(std::string_view bytes) {
  // The checks of decodeMeta(), in its order, on views instead of copies.
  Reader r(bytes);
  MetaSummary m;
  uint8_t version;
  if (!r.byte(&version) || (version != kVersionNoSums && version != kVersionSums)) return kCorrupt;
  uint64_t status, count;
  std::string_view skipped, blocks;
  if (!r.skip(&m.key) || !r.varint(&status) || status > std::numeric_limits<uint16_t>::max() || !r.skip(&skipped) ||
      !r.varint(&m.size) || !r.varint(&count)) {
    return kCorrupt;
  }
  if (count > r.remaining() / 2) return kCorrupt;
  for (uint64_t i = 0; i < count; ++i)
    if (!r.skip(&skipped) || !r.skip(&skipped)) return kCorrupt;
  int64_t requestTime;
  if (!r.skip(&skipped) || !r.skip(&skipped) || !r.signedVarint(&requestTime) || !r.signedVarint(&m.responseTime) ||
      !r.signedVarint(&m.lastAccess)) {
    return kCorrupt;
  }
  constexpr int64_t kTimeLimit = int64_t{1} << 40;
  for (int64_t t : {requestTime, m.responseTime, m.lastAccess})
    if (t > kTimeLimit || t < -kTimeLimit) return kCorrupt;
  uint8_t kind;
  uint64_t blockSize;
  if (!r.byte(&kind) || kind > 2 || !r.varint(&m.gen) || !r.varint(&blockSize) ||
      blockSize > std::numeric_limits<uint32_t>::max() || !r.skip(&blocks) || !r.skip(&skipped)) {
    return kCorrupt;
  }
  m.kind = static_cast<ObjectMeta::Kind>(kind);
  const uint64_t nblocks = blockSize ? m.size / blockSize + (m.size % blockSize ? 1 : 0) : 0;
  if (m.kind == ObjectMeta::Kind::Partial) {
    if (blockSize == 0) return kCorrupt;
    if (blocks.size() != (nblocks + 7) / 8) return kCorrupt;
  }
  if (version == kVersionSums) {
    uint64_t n;
    if (m.kind == ObjectMeta::Kind::VaryStub || blockSize == 0 || !r.varint(&n) || n > r.remaining() / 8)
      return kCorrupt;
    if (m.kind == ObjectMeta::Kind::Complete) {
      if (n != nblocks) return kCorrupt;
    } else {
      uint64_t set = 0;
      for (uint64_t b = 0; b < nblocks; ++b)
        set += b / 8 < blocks.size() && ((static_cast<unsigned char>(blocks[b / 8]) >> (b % 8)) & 1);
      if (n != set) return kCorrupt;
    }
    if (!r.skipBytes(8 * n)) return kCorrupt;
    m.sums = m.kind == ObjectMeta::Kind::Complete && n > 0;
  }
  if (!r.atEnd()) return kCorrupt;
  return m;
}

}  // namespace orchard::cache
