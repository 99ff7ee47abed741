// The pure decisions a fill makes about an origin's answer: whether it is
// stored and shared (and under which variant key, with which Vary stub),
// which stored objects an unsafe method invalidates, and whether the head
// of a range run continues the object the fill holds (If-Range validated).
// server/proxy/fill_driver.cc carries them out; table-tested in
// tests/unit/cache/response_decision_test.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/object_meta.h"
#include "cache/range.h"

namespace orchard::cache {

// RFC 9111 §4.4: a successful (2xx/3xx) answer to an unsafe method
// invalidates the URI's stored object and those named by Location and
// Content-Location on the same origin (scheme, host and port; relative or
// absolute, compared case-insensitively). Returns the key texts to remove
// (none for the safe methods GET, HEAD, OPTIONS, TRACE or other statuses).
std::vector<std::string> invalidatedKeys(std::string_view method, int status, const HeaderList& responseHeaders,
                                         std::string_view primaryKey, std::string_view host, uint16_t port,
                                         const std::vector<std::string>& ignoreQuery);

struct ResponseFacts {
  std::string_view method;
  int status = 0;
  std::string_view requestCacheControl;
  const HeaderList* responseHeaders = nullptr;  // end-to-end, as the origin sent them
  const HeaderList* requestHeaders = nullptr;   // the client's (Vary selection)
  bool requestHasAuthorization = false;
  bool requestHadBody = false;  // an answer to a request with a body is never shared
  bool lengthKnown = false;     // Content-Length, chunked, or a known range total
  std::optional<uint64_t> length;
  uint64_t maxStoredObject = 0;
  std::string_view primaryKey;  // the URI's key
  bool primaryShared = false;   // the fill is the shared fill of the primary key (may write the stub)
};

struct StorePlan {
  bool cacheable = false;  // the object is written to the store
  bool shareable = false;  // other requests may be given it (stored or not)
  bool oversize = false;   // storable but over storage.max_object_size
  std::optional<std::string> storeKey;  // a varying answer: its variant key
  std::optional<std::string> varyStub;  // the fields of the stub to write under the primary key
};

StorePlan planStore(const ResponseFacts& f);

// The variant keys a Vary stub lists (so that invalidating the URI removes
// them too), and adding one: false when it is listed already or the list
// is full (kMaxListedVariants; a variant left off is still validated before
// use once its stub is rewritten, see ObjectMeta::Kind::VaryStub).
inline constexpr size_t kMaxListedVariants = 64;
std::vector<std::string> stubVariants(const ObjectMeta& stub);
bool addStubVariant(ObjectMeta* stub, std::string_view variantKey);

// (parseContentRange() is in cache/range.h.)

// The head of a fill's first run, which asked for `Range: bytes=start-`
// when start > 0: Whole (a 200, or no range asked), Offset (the 206 we
// asked for; `total` is the object's length), or Mismatch (another range).
struct FirstRun {
  enum class Kind : uint8_t { Whole, Offset, Mismatch };
  Kind kind = Kind::Whole;
  uint64_t total = 0;
};
FirstRun judgeFirstRun(int status, const HeaderList& headers, uint64_t fetchStart);

// The head of a later run of a fill that holds `stored`'s head (If-Range
// validated): Continue (the 206 we asked for), Discard (a 200 of the same
// representation: skip to our run), Changed (anything else: the object
// changed at the origin, its blocks cannot be completed).
enum class RunVerdict : uint8_t { Continue, Discard, Changed };
RunVerdict judgeRun(int status, const HeaderList& headers, std::optional<uint64_t> contentLength,
                    const ObjectMeta& stored, uint64_t fetchStart, std::optional<uint64_t> length);

// The answer to a revalidation: Refresh (304), Fail (5xx: readers may use
// the stale object), Replace (a new representation).
enum class RevalidationVerdict : uint8_t { Refresh, Fail, Replace };
RevalidationVerdict judgeRevalidation(int status) noexcept;

}  // namespace orchard::cache
