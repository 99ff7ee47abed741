// Byte ranges (RFC 9110 §14): parsing the Range header, resolving it against
// a representation length, and If-Range evaluation. Pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace orchard::cache {

// One range-spec as written: "a-b", "a-" or "-n".
struct RangeSpecItem {
  std::optional<uint64_t> first;   // absent for a suffix range
  std::optional<uint64_t> last;    // absent for "a-"
  std::optional<uint64_t> suffix;  // "-n"
};

// Parses a Range header value. nullopt when it is not a valid bytes range
// set (RFC 9110: a server ignores a Range it does not understand).
std::optional<std::vector<RangeSpecItem>> parseRange(std::string_view value);

// An inclusive byte range resolved against a known length.
struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
  uint64_t size() const { return last - first + 1; }
  bool operator==(const ByteRange&) const = default;
};

enum class RangeOutcome : uint8_t {
  Full,           // no usable Range: answer 200 with the whole body
  Partial,        // 206 with ranges (one: Content-Range; several: multipart/byteranges)
  Unsatisfiable,  // 416 with Content-Range: bytes */length
};

struct RangeResult {
  RangeOutcome outcome = RangeOutcome::Full;
  std::vector<ByteRange> ranges;  // sorted and coalesced when Partial
};

// Most ranges honoured in one request; more (a known amplification attack)
// makes the whole request a plain 200.
inline constexpr size_t kMaxRanges = 32;

// Resolves a parsed range set against `length`. Satisfiable ranges are
// sorted and overlapping or adjacent ones coalesced (RFC 9110 §14.2 allows it).
RangeResult resolveRanges(const std::vector<RangeSpecItem>& items, uint64_t length);

// Convenience: parse + resolve; an absent or invalid header gives Full.
RangeResult evaluateRange(std::optional<std::string_view> rangeHeader, uint64_t length);

// If-Range (RFC 9110 §13.1.5): true when the stored representation matches,
// so the Range applies. An entity-tag must be strong and equal to a strong
// `etag`; an HTTP-date must equal `lastModified` exactly, and Last-Modified
// must be strong (at least a second before the response Date).
bool ifRangeMatches(std::string_view ifRange, std::string_view etag, std::string_view lastModified,
                    std::string_view date);

// "bytes first-last/length"
std::string contentRange(const ByteRange& r, uint64_t length);

// A Content-Range of a 206, "bytes a-b/total" -> a, total (RFC 9110
// §14.4: digits only, a <= b < total). False unless well formed.
bool parseContentRange(std::string_view v, uint64_t* first, uint64_t* total);

}  // namespace orchard::cache
