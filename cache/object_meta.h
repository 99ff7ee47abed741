// ObjectMeta: what the index records about one stored response.
//
// Written once when a fill completes (the store never records an object
// before all of its bytes are on disk and its length matched), replaced as a
// whole when the object is refetched or revalidated. Encoded compactly for
// RocksDB with a format version byte; a record that fails to decode is
// treated as absent (Errc::Corrupt) and its entry dropped.
//
// Block checksums (format version 3): `sums` holds an XXH3-64 of each
// blockSize block of the object file, computed by the fill as the blocks
// complete. The store verifies a block once per stored generation before
// its first send (see Store::ensureVerified()) and its scrub re-verifies
// them. Records written before checksums existed (version 2) decode with
// `sums` empty: their objects are served unverified (see decodeMeta()).
#pragma once

#include <atomic>
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/headers.h"
#include "common/result.h"

namespace orchard::cache {

using orchard::HeaderList;

// Bytes per checksummed block of a stored object (== Fill::kBlockSize).
inline constexpr uint32_t kChecksumBlockSize = 1u << 20;

// Which blocks of one stored object generation passed their checksum since
// the store published it. In memory only (never encoded); shared by every
// holder of the published ObjectMeta, written from any thread. Once every
// block is marked, allVerified() is the one atomic load of the hit path.
class VerifiedBlocks {
 public:
  explicit VerifiedBlocks(uint64_t blocks)
      : blocks_(blocks), rest_(blocks > 64 ? new std::atomic<uint64_t>[(blocks - 1) / 64]() : nullptr),
        all_(blocks == 0) {}
  uint64_t blocks() const { return blocks_; }
  bool allVerified() const { return all_.load(std::memory_order_acquire); }
  bool test(uint64_t b) const { return (word(b).load(std::memory_order_acquire) >> (b % 64)) & 1; }
  // Marks block b verified; the last one marked sets allVerified().
  void mark(uint64_t b) {
    const uint64_t bit = uint64_t{1} << (b % 64);
    const uint64_t before = word(b).fetch_or(bit, std::memory_order_acq_rel);
    if ((before & bit) == 0 && marked_.fetch_add(1, std::memory_order_acq_rel) + 1 == blocks_)
      all_.store(true, std::memory_order_release);
  }

 private:
  std::atomic<uint64_t>& word(uint64_t b) const { return b < 64 ? first_ : rest_[b / 64 - 1]; }

  const uint64_t blocks_;
  // Blocks 0..63 inline (most objects: no second allocation), the rest after.
  mutable std::atomic<uint64_t> first_{0};
  std::unique_ptr<std::atomic<uint64_t>[]> rest_;
  std::atomic<uint64_t> marked_{0};
  std::atomic<bool> all_;
};

struct ObjectMeta {
  // What the record describes:
  //   Complete  every byte is in the object file; served as a hit
  //   Partial   a fill in progress or interrupted: `blocks` says which
  //             blockSize-sized blocks of the file are durable; resumable,
  //             never served as whole
  //   VaryStub  the response varies on the request fields listed in `vary`;
  //             each variant is a record of its own under variantKey().
  //             A stub's requestTime (when not 0) is when it was written:
  //             variants whose responseTime is older are from before it
  //             (an invalidated or evicted stub) and validated before use;
  //             its `blocks` lists the variant keys stored under it
  //             (cache/response_decision.h: stubVariants)
  enum class Kind : uint8_t { Complete = 0, Partial = 1, VaryStub = 2 };

  Kind kind = Kind::Complete;
  uint64_t gen = 0;          // object file generation: objects/ab/<hex>.<gen>
  uint32_t blockSize = 0;    // Partial: bytes per block
  std::string blocks;        // Partial: bitmap, bit i (byte i/8, bit i%8) = block i durable
  std::string vary;          // VaryStub: lower-case field names, comma-separated
  std::string key;           // full normalised key text (compared on every hit)
  uint16_t status = 200;
  std::string reason;        // origin's reason phrase
  uint64_t size = 0;         // body length in bytes == object file size
  HeaderList headers;        // end-to-end response headers as the origin sent them,
                             // without hop-by-hop headers, Content-Length and Transfer-Encoding
  std::string etag;          // strong or weak validator as sent, may be empty
  std::string lastModified;  // as sent, may be empty
  int64_t requestTime = 0;   // when the request that fetched it was sent (unix s)
  int64_t responseTime = 0;  // when its headers arrived (unix s)
  int64_t lastAccess = 0;    // unix s; updated lazily (batched), not per hit
  // XXH3-64 of each blockSize block (version 3). Complete: one per block, or
  // empty (a record from before checksums: served unverified). Partial:
  // indexed by block, meaningful for the blocks set in `blocks` (only those
  // are encoded); empty when the record had none.
  std::vector<uint64_t> sums;
  // In memory only: set by the store on the entry it publishes (Complete
  // with sums). Copies share it; the store replaces it for a new generation.
  std::shared_ptr<VerifiedBlocks> verified;

  // Blocks of blockSize covering `size` (0 when blockSize is 0).
  uint64_t blockCount() const { return blockSize ? size / blockSize + (size % blockSize ? 1 : 0) : 0; }
  // Partial: bytes of the durable blocks (`blocks`), at most `size`.
  uint64_t durableBytes() const {
    uint64_t n = 0;
    for (unsigned char c : blocks) n += static_cast<uint64_t>(__builtin_popcount(c));
    return std::min<uint64_t>(n * blockSize, size);
  }

  // Returns the value of the first header with this name (case-insensitive), or empty.
  std::string_view header(std::string_view name) const;
};

// Writes version 3 when the record has checksums, else version 2 (the
// format of records from before checksums, byte for byte).
std::string encodeMeta(const ObjectMeta& meta);
// XXH3-64 of a block's bytes, the checksum recorded in ObjectMeta::sums.
uint64_t blockChecksum(const void* data, size_t n);
Result<ObjectMeta> decodeMeta(std::string_view bytes);

// What the store's compact index (cache/compact_index.h) needs of a record,
// read without allocating: the start-up scan decodes only this. Accepts and
// rejects exactly the records decodeMeta() does (same checks, the strings
// skipped instead of copied), so a record that loads also decodes on a hit.
struct MetaSummary {
  ObjectMeta::Kind kind = ObjectMeta::Kind::Complete;
  uint64_t gen = 0;
  uint64_t size = 0;
  std::string_view key;  // into the decoded bytes
  int64_t responseTime = 0;
  int64_t lastAccess = 0;
  bool sums = false;     // Complete with block checksums
};
Result<MetaSummary> decodeMetaSummary(std::string_view bytes);

}  // namespace orchard::cache
