// Fuzz target: cache/range: parseRange, resolveRanges, evaluateRange,
// ifRangeMatches and contentRange (Range and If-Range come from clients).
//
// Input: fields separated by "\n--\n" (fuzz_util.h):
//   0 Range header value   1 representation length (decimal; any junk: 0)
//   2 If-Range value       3 stored ETag   4 stored Last-Modified   5 Date
//
// Invariants, checked against the given length and a few edge lengths
// (0, 1, 2^63, UINT64_MAX):
//   - a parsed set is non-empty, at most 1000 items, each a suffix "-n" or a
//     "first-[last]" with last >= first;
//   - more than kMaxRanges items give Full; otherwise Partial ranges lie in
//     [0, length), are sorted, non-overlapping and not adjacent (coalesced),
//     and cover exactly the union of the satisfiable items; Unsatisfiable
//     exactly when no item is satisfiable;
//   - evaluateRange == parse + resolve, and Full for an invalid header;
//   - contentRange renders "bytes first-last/length";
//   - If-Range: a weak or absent validator never matches; a strong entity
//     tag matches only an identical strong ETag, and always does.
#include <cstdint>
#include <string>

#include "cache/range.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace orchard;
using cache::ByteRange;
using cache::RangeOutcome;
using cache::RangeSpecItem;

uint64_t parseLength(std::string_view s) {
  uint64_t v = 0;
  for (char c : s.substr(0, 20)) {
    if (c < '0' || c > '9') return v;
    v = v * 10 + static_cast<uint64_t>(c - '0');  // wraps on 20 digits: any value is fine
  }
  return v;
}

// The item as an inclusive interval against length; false if unsatisfiable.
bool itemInterval(const RangeSpecItem& it, uint64_t length, ByteRange* out) {
  if (it.suffix) {
    if (*it.suffix == 0 || length == 0) return false;
    uint64_t n = *it.suffix < length ? *it.suffix : length;
    *out = ByteRange{length - n, length - 1};
    return true;
  }
  if (*it.first >= length) return false;
  uint64_t last = it.last && *it.last < length - 1 ? *it.last : length - 1;
  *out = ByteRange{*it.first, last};
  return true;
}

void checkResolved(const std::vector<RangeSpecItem>& items, uint64_t length, std::string_view header) {
  cache::RangeResult r = cache::resolveRanges(items, length);
  auto ctx = [&] { return fuzz::escape(header) + " (length " + std::to_string(length) + ")"; };
  if (items.size() > cache::kMaxRanges) {
    FUZZ_CHECK(r.outcome == RangeOutcome::Full && r.ranges.empty(), "over kMaxRanges must be Full: %s", ctx().c_str());
    return;
  }
  std::vector<ByteRange> want;
  for (const auto& it : items) {
    ByteRange b;
    if (itemInterval(it, length, &b)) want.push_back(b);
  }
  if (want.empty()) {
    FUZZ_CHECK(r.outcome == RangeOutcome::Unsatisfiable && r.ranges.empty(), "expected Unsatisfiable: %s", ctx().c_str());
    return;
  }
  FUZZ_CHECK(r.outcome == RangeOutcome::Partial && !r.ranges.empty(), "expected Partial: %s", ctx().c_str());
  for (size_t i = 0; i < r.ranges.size(); ++i) {
    const ByteRange& b = r.ranges[i];
    FUZZ_CHECK(b.first <= b.last && b.last < length, "range %llu-%llu outside [0,%llu): %s",
               static_cast<unsigned long long>(b.first), static_cast<unsigned long long>(b.last),
               static_cast<unsigned long long>(length), ctx().c_str());
    if (i > 0) {
      FUZZ_CHECK(r.ranges[i - 1].last < b.first && b.first - r.ranges[i - 1].last > 1,
                 "ranges not sorted and coalesced at %zu: %s", i, ctx().c_str());
    }
    std::string cr = cache::contentRange(b, length);
    std::string expect = "bytes " + std::to_string(b.first) + "-" + std::to_string(b.last) + "/" + std::to_string(length);
    FUZZ_CHECK(cr == expect, "contentRange gave %s", cr.c_str());
  }
  // Every item lies inside one resolved range ...
  for (const ByteRange& w : want) {
    bool inside = false;
    for (const ByteRange& b : r.ranges) inside = inside || (b.first <= w.first && w.last <= b.last);
    FUZZ_CHECK(inside, "item %llu-%llu not covered: %s", static_cast<unsigned long long>(w.first),
               static_cast<unsigned long long>(w.last), ctx().c_str());
  }
  // ... and every resolved range starts and ends on item bounds (no byte
  // outside the union of the items is served).
  for (const ByteRange& b : r.ranges) {
    bool starts = false, ends = false;
    for (const ByteRange& w : want) {
      starts = starts || w.first == b.first;
      ends = ends || w.last == b.last;
    }
    FUZZ_CHECK(starts && ends, "resolved range %llu-%llu not made of items: %s",
               static_cast<unsigned long long>(b.first), static_cast<unsigned long long>(b.last), ctx().c_str());
  }
}

std::string_view trimSp(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = fuzz::splitFields(fuzz::asView(data, size), 6);
  std::string_view header = f[0];
  const uint64_t length = parseLength(f[1]);

  auto items = cache::parseRange(header);
  if (items) {
    FUZZ_CHECK(!items->empty() && items->size() <= 1000, "parsed %zu items", items->size());
    for (const auto& it : *items) {
      if (it.suffix) {
        FUZZ_CHECK(!it.first && !it.last, "suffix item with first/last: %s", fuzz::escape(header).c_str());
      } else {
        FUZZ_CHECK(it.first.has_value(), "item without first or suffix: %s", fuzz::escape(header).c_str());
        FUZZ_CHECK(!it.last || *it.last >= *it.first, "last < first: %s", fuzz::escape(header).c_str());
      }
    }
    for (uint64_t len : {length, uint64_t{0}, uint64_t{1}, uint64_t{1} << 63, UINT64_MAX}) checkResolved(*items, len, header);
    cache::RangeResult e = cache::evaluateRange(header, length);
    cache::RangeResult d = cache::resolveRanges(*items, length);
    FUZZ_CHECK(e.outcome == d.outcome && e.ranges == d.ranges, "evaluateRange != parse+resolve");
  } else {
    cache::RangeResult e = cache::evaluateRange(header, length);
    FUZZ_CHECK(e.outcome == RangeOutcome::Full && e.ranges.empty(), "invalid Range must give Full: %s",
               fuzz::escape(header).c_str());
  }
  cache::RangeResult none = cache::evaluateRange(std::nullopt, length);
  FUZZ_CHECK(none.outcome == RangeOutcome::Full, "absent Range must give Full");

  // If-Range.
  std::string_view ifRange = f[2], etag = f[3], lastModified = f[4], date = f[5];
  bool match = cache::ifRangeMatches(ifRange, etag, lastModified, date);
  std::string_view ir = trimSp(ifRange);
  if (ir.empty() || ir.substr(0, 2) == "W/") FUZZ_CHECK(!match, "weak or empty If-Range matched");
  if (!ir.empty() && ir.front() == '"') {
    bool strongEqual = trimSp(etag) == ir;
    FUZZ_CHECK(match == strongEqual, "If-Range %s vs ETag %s: match=%d", fuzz::escape(ir).c_str(),
               fuzz::escape(etag).c_str(), match);
    FUZZ_CHECK(cache::ifRangeMatches(ifRange, ifRange, "", ""), "a strong tag must match itself");
  }
  return 0;
}
