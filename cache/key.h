// Cache keys: the normalised text of an upstream URL and its XXH3-128 hash.
//
// The text is "scheme://host[:port]/path?query" with scheme and host in
// lower case, the default port (80 for http, 443 for https) left out, and
// the query stripped of the parameters that must not split the store:
// `source` and `sourceScheme` (Apple's content-cache URL form) and any
// configured `upstream.ignore_query` names. The order of the remaining
// parameters is kept (origins may care), and an empty query drops the '?'.
// The hash indexes the store; the full text is stored and compared on a hit,
// so a hash collision can never serve the wrong object.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace orchard::cache {

struct Hash128 {
  uint64_t hi = 0;
  uint64_t lo = 0;
  bool operator==(const Hash128&) const = default;
  std::string hex() const;  // 32 lower-case hex digits, hi first
};

struct Hash128Hasher {
  size_t operator()(const Hash128& h) const noexcept { return static_cast<size_t>(h.lo ^ (h.hi * 0x9E3779B97F4A7C15ull)); }
};

Hash128 hashKey(std::string_view text) noexcept;

struct CacheKey {
  std::string text;
  Hash128 hash;

  static CacheKey fromText(std::string text);
};

// Query parameter names that never enter a key.
inline constexpr std::string_view kAlwaysIgnoredParams[] = {"source", "sourceScheme"};

// Builds the normalised key text. `target` is the origin-form request target
// ("/path?query"); `ignore` lists extra query parameter names to drop
// (exact, case-sensitive match, as origins treat names).
std::string normaliseKey(std::string_view scheme, std::string_view host, uint16_t port,
                         std::string_view target, const std::vector<std::string>& ignore);

// Removes `source`, `sourceScheme` and `ignore` parameters from a target's
// query, keeping everything else byte for byte. Used for the key and for the
// target sent upstream (upstream only loses source/sourceScheme: pass an
// empty `ignore`).
std::string stripQueryParams(std::string_view target, const std::vector<std::string>& ignore);

// The host of a key text as normaliseKey() wrote it ("swcdn.apple.com",
// "::1" without its brackets), or "" when the text is not a key. A Vary
// variant's key starts with its URI's key, so it has the same host. A view
// into `keyText`.
std::string_view keyHost(std::string_view keyText);

}  // namespace orchard::cache
