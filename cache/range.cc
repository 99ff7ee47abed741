// Byte ranges (RFC 9110 §14): parsing Range and Content-Range, and
// evaluating a Range against a length (satisfiable parts, coalescing,
// 416). Hostile input is the hard part: every number is digits only and
// bounded, and a Range with many parts cannot cost more than its length.
#include "cache/range.h"

#include <algorithm>
#include <string>

#include "common/headers.h"
#include "cache/policy.h"

namespace orchard::cache {
namespace {

std::string_view trim(std::string_view s) { return trimOws(s); }

std::optional<uint64_t> digits(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;  // 19 digits always fit in uint64
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

std::optional<std::vector<RangeSpecItem>> parseRange(std::string_view value) {
  value = trim(value);
  if (value.size() < 6) return std::nullopt;
  std::string_view unit = value.substr(0, 5);
  if (!(unit[0] == 'b' || unit[0] == 'B') || value.substr(1, 4) != "ytes" || value[5] != '=') {
    // Case-insensitive "bytes" per RFC 9110 §14.1.
    std::string u(unit);
    for (auto& c : u) c = static_cast<char>(asciiLower(static_cast<unsigned char>(c)));
    if (u != "bytes" || value.size() < 6 || value[5] != '=') return std::nullopt;
  }
  std::string_view set = value.substr(6);
  std::vector<RangeSpecItem> items;
  while (true) {
    auto comma = set.find(',');
    std::string_view spec = trim(set.substr(0, comma));
    if (!spec.empty()) {
      auto dash = spec.find('-');
      if (dash == std::string_view::npos) return std::nullopt;
      std::string_view a = trim(spec.substr(0, dash)), b = trim(spec.substr(dash + 1));
      RangeSpecItem item;
      if (a.empty()) {
        auto n = digits(b);
        if (!n) return std::nullopt;
        item.suffix = *n;
      } else {
        auto f = digits(a);
        if (!f) return std::nullopt;
        item.first = *f;
        if (!b.empty()) {
          auto l = digits(b);
          if (!l || *l < *f) return std::nullopt;
          item.last = *l;
        }
      }
      items.push_back(item);
      if (items.size() > 1000) return std::nullopt;
    }
    if (comma == std::string_view::npos) break;
    set.remove_prefix(comma + 1);
  }
  if (items.empty()) return std::nullopt;
  return items;
}

RangeResult resolveRanges(const std::vector<RangeSpecItem>& items, uint64_t length) {
  RangeResult r;
  if (items.size() > kMaxRanges) return r;  // Full
  for (const auto& it : items) {
    ByteRange b;
    if (it.suffix) {
      if (*it.suffix == 0 || length == 0) continue;
      uint64_t n = std::min(*it.suffix, length);
      b.first = length - n;
      b.last = length - 1;
    } else {
      if (*it.first >= length) continue;
      b.first = *it.first;
      b.last = it.last ? std::min(*it.last, length - 1) : length - 1;
    }
    r.ranges.push_back(b);
  }
  if (r.ranges.empty()) {
    r.outcome = RangeOutcome::Unsatisfiable;
    return r;
  }
  std::sort(r.ranges.begin(), r.ranges.end(), [](const ByteRange& x, const ByteRange& y) { return x.first < y.first; });
  std::vector<ByteRange> merged;
  for (const auto& b : r.ranges) {
    if (!merged.empty() && b.first <= merged.back().last + 1) merged.back().last = std::max(merged.back().last, b.last);
    else merged.push_back(b);
  }
  r.ranges = std::move(merged);
  r.outcome = RangeOutcome::Partial;
  return r;
}

RangeResult evaluateRange(std::optional<std::string_view> rangeHeader, uint64_t length) {
  if (!rangeHeader) return {};
  auto items = parseRange(*rangeHeader);
  if (!items) return {};
  return resolveRanges(*items, length);
}

bool ifRangeMatches(std::string_view ifRange, std::string_view etag, std::string_view lastModified,
                    std::string_view date) {
  ifRange = trim(ifRange);
  if (ifRange.empty()) return false;
  if (ifRange.front() == '"' || ifRange.substr(0, 2) == "W/") {
    // Strong comparison: neither may be weak.
    if (ifRange.substr(0, 2) == "W/") return false;
    std::string_view e = trim(etag);
    if (e.empty() || e.substr(0, 2) == "W/") return false;
    return e == ifRange;
  }
  auto want = parseHttpDate(ifRange);
  auto lm = parseHttpDate(trim(lastModified));
  if (!want || !lm || *want != *lm) return false;
  auto d = parseHttpDate(trim(date));
  return d && *lm + 1 <= *d;  // strong only if modified at least a second before Date
}

std::string contentRange(const ByteRange& r, uint64_t length) {
  return "bytes " + std::to_string(r.first) + "-" + std::to_string(r.last) + "/" + std::to_string(length);
}

bool parseContentRange(std::string_view v, uint64_t* first, uint64_t* total) {
  constexpr std::string_view kUnit = "bytes ";
  if (v.substr(0, kUnit.size()) != kUnit) return false;
  v.remove_prefix(kUnit.size());
  const size_t dash = v.find('-'), slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) return false;
  auto a = digits(v.substr(0, dash)), b = digits(v.substr(dash + 1, slash - dash - 1)), t = digits(v.substr(slash + 1));
  if (!a || !b || !t || *b < *a || *b >= *t) return false;
  *first = *a;
  *total = *t;
  return true;
}

}  // namespace orchard::cache
