// A copy of encodeMeta() as it was before block checksums (format version
// 2, main at f9deb68), kept byte for byte so that tests can write the
// records a store from before the upgrade holds. Do not "fix" it: it is a
// fixture, not the encoder.
#pragma once

#include <string>
#include <string_view>

#include "cache/object_meta.h"

namespace orchard::cache::oldformat {

inline void v2PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

inline void v2PutSigned(std::string* out, int64_t v) {
  v2PutVarint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}

inline void v2PutString(std::string* out, std::string_view s) {
  v2PutVarint(out, s.size());
  out->append(s);
}

inline std::string encodeMetaV2(const ObjectMeta& meta) {
  std::string out;
  out.push_back(static_cast<char>(2));
  v2PutString(&out, meta.key);
  v2PutVarint(&out, meta.status);
  v2PutString(&out, meta.reason);
  v2PutVarint(&out, meta.size);
  v2PutVarint(&out, meta.headers.size());
  for (const auto& [n, v] : meta.headers) {
    v2PutString(&out, n);
    v2PutString(&out, v);
  }
  v2PutString(&out, meta.etag);
  v2PutString(&out, meta.lastModified);
  v2PutSigned(&out, meta.requestTime);
  v2PutSigned(&out, meta.responseTime);
  v2PutSigned(&out, meta.lastAccess);
  out.push_back(static_cast<char>(meta.kind));
  v2PutVarint(&out, meta.gen);
  v2PutVarint(&out, meta.blockSize);
  v2PutString(&out, meta.blocks);
  v2PutString(&out, meta.vary);
  return out;
}

}  // namespace orchard::cache::oldformat
