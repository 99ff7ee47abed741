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
