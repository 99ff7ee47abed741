// Pure HTTP caching decisions: functions of (request, response or stored
// metadata, now) with no I/O, tested by tables (STYLE pattern 4).
//
// This is the appliance-core subset: what may be stored and how old a stored
// answer is. Freshness, revalidation and Vary build on these types.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "cache/object_meta.h"

namespace orchard::cache {

struct CacheControl {
  bool noStore = false;
  bool noCache = false;
  bool isPrivate = false;
  bool isPublic = false;
  bool mustRevalidate = false;
  bool proxyRevalidate = false;
  bool immutable = false;
  std::optional<int64_t> maxAge;
  std::optional<int64_t> sMaxAge;
};

// Parses a Cache-Control field value (directives are case-insensitive,
// unknown ones ignored, quoted arguments accepted; an invalid delta-seconds
// leaves that directive unset).
CacheControl parseCacheControl(std::string_view value);

enum class StoreVerdict : uint8_t {
  Store,
  Method,         // only GET answers are stored
  Status,         // not a status this build stores
  NoStore,        // Cache-Control: no-store (request or response)
  Private,        // Cache-Control: private
  Authorization,  // request carried credentials and the answer is not marked shareable
  UnknownLength,  // close-delimited body: completeness cannot be proven
};
const char* storeVerdictName(StoreVerdict v);

struct StoreInput {
  std::string_view method;
  uint16_t status = 0;
  std::string_view requestCacheControl;
  std::string_view responseCacheControl;
  bool requestHasAuthorization = false;
  bool lengthKnown = false;  // Content-Length or chunked framing
};

StoreVerdict decideStore(const StoreInput& in);

// Current age of a stored response per RFC 9111 §4.2.3, from the stored
// Date and Age headers and the request/response times recorded at fetch.
int64_t currentAge(const ObjectMeta& meta, int64_t now);

// Parses an HTTP-date (IMF-fixdate, RFC 850 and asctime forms). nullopt if invalid.
std::optional<int64_t> parseHttpDate(std::string_view s);
// Formats unix seconds as IMF-fixdate into out (29 chars + NUL).
void formatHttpDate(int64_t t, char out[30]);

}  // namespace orchard::cache
