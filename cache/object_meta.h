// ObjectMeta: what the index records about one stored response.
//
// Written once when a fill completes (the store never records an object
// before all of its bytes are on disk and its length matched), replaced as a
// whole when the object is refetched or revalidated. Encoded compactly for
// RocksDB with a format version byte; a record that fails to decode is
// treated as absent (Errc::Corrupt) and its entry dropped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace orchard::cache {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct ObjectMeta {
  // What the record describes:
  //   Complete  every byte is in the object file; served as a hit
  //   Partial   a fill in progress or interrupted: `blocks` says which
  //             blockSize-sized blocks of the file are durable; resumable,
  //             never served as whole
  //   VaryStub  the response varies on the request fields listed in `vary`;
  //             each variant is a record of its own under variantKey()
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

  // Returns the value of the first header with this name (case-insensitive), or empty.
  std::string_view header(std::string_view name) const;
};

std::string encodeMeta(const ObjectMeta& meta);
Result<ObjectMeta> decodeMeta(std::string_view bytes);

}  // namespace orchard::cache
