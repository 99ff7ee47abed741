#include "common/history.h"

#include <charconv>

#include "common/clock.h"

namespace orchard::history {
namespace {

void putU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t getU64(std::string_view in, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(in[at + static_cast<size_t>(i)]);
  return v;
}

bool leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// n decimal digits at text[at..], or -1.
int digits(std::string_view text, size_t at, size_t n) {
  if (at + n > text.size()) return -1;
  int v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return -1;
    v = v * 10 + (text[i] - '0');
  }
  return v;
}

std::optional<int64_t> parseRfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  if (s.size() < 20) return std::nullopt;
  const int y = digits(s, 0, 4), mo = digits(s, 5, 2), d = digits(s, 8, 2);
  const int h = digits(s, 11, 2), mi = digits(s, 14, 2), sec = digits(s, 17, 2);
  if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0) return std::nullopt;
  if (s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':') return std::nullopt;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1) return std::nullopt;
  if (d > kDays[mo - 1] + (mo == 2 && leap(y) ? 1 : 0)) return std::nullopt;
  if (h > 23 || mi > 59 || sec > 60) return std::nullopt;  // 60: a leap second, read as the next
  size_t at = 19;
  if (at < s.size() && s[at] == '.') {
    ++at;
    const size_t start = at;
    while (at < s.size() && s[at] >= '0' && s[at] <= '9') ++at;
    if (at == start) return std::nullopt;
  }
  int64_t offset = 0;
  if (at < s.size() && (s[at] == 'Z' || s[at] == 'z')) {
    ++at;
  } else if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
    const int oh = digits(s, at + 1, 2), om = digits(s, at + 4, 2);
    if (oh < 0 || om < 0 || at + 3 >= s.size() || s[at + 3] != ':' || oh > 23 || om > 59) return std::nullopt;
    offset = (oh * 60 + om) * 60;
    if (s[at] == '-') offset = -offset;
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != s.size()) return std::nullopt;
  return daysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 + mi * 60 + sec -
         offset;
}

}  // namespace

std::string encodeKey(int64_t minute) {
  std::string k(kKeySize, '\0');
  const uint64_t v = static_cast<uint64_t>(minute);
  for (size_t i = 0; i < kKeySize; ++i) k[i] = static_cast<char>((v >> (8 * (kKeySize - 1 - i))) & 0xff);
  return k;
}

std::optional<int64_t> decodeKey(std::string_view key) {
  if (key.size() != kKeySize) return std::nullopt;
  uint64_t v = 0;
  for (char c : key) v = (v << 8) | static_cast<uint8_t>(c);
  return static_cast<int64_t>(v);
}

std::string encodeValue(const Sample& s) {
  std::string out;
  out.reserve(kValueSize);
  out.push_back(static_cast<char>(kValueVersion));
  putU64(out, s.bytesFromCache);
  putU64(out, s.bytesFromOrigin);
  putU64(out, s.requests);
  putU64(out, s.hits);
  putU64(out, s.cacheUsed);
  return out;
}

std::optional<Sample> decodeValue(std::string_view v) {
  if (v.size() != kValueSize || static_cast<uint8_t>(v[0]) != kValueVersion) return std::nullopt;
  Sample s;
  s.bytesFromCache = getU64(v, 1);
  s.bytesFromOrigin = getU64(v, 9);
  s.requests = getU64(v, 17);
  s.hits = getU64(v, 25);
  s.cacheUsed = getU64(v, 33);
  return s;
}

uint64_t counterDelta(uint64_t earlier, uint64_t later) { return later >= earlier ? later - earlier : later; }

void accumulate(Sample& a, const Sample& b) {
  a.bytesFromCache += b.bytesFromCache;
  a.bytesFromOrigin += b.bytesFromOrigin;
  a.requests += b.requests;
  a.hits += b.hits;
  a.cacheUsed = b.cacheUsed;
}

std::vector<Point> aggregate(const std::vector<MinuteSample>& minutes, int64_t stepSeconds) {
  std::vector<Point> out;
  for (const MinuteSample& m : minutes) {
    const int64_t t = m.minute * 60;
    // Floor division: minutes before 1970 are not expected, but must not
    // land in the bucket after theirs.
    int64_t start = t / stepSeconds * stepSeconds;
    if (t < 0 && t % stepSeconds != 0) start -= stepSeconds;
    if (out.empty() || out.back().t != start) out.push_back(Point{start, {}});
    accumulate(out.back().sample, m.sample);
  }
  return out;
}

std::optional<int64_t> parseTime(std::string_view text) {
  if (text.empty()) return std::nullopt;
  const bool numeric = text.find_first_not_of("0123456789") == std::string_view::npos;
  if (numeric) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
    return v;
  }
  return parseRfc3339(text);
}

int64_t defaultStep(int64_t rangeSeconds) {
  if (rangeSeconds <= 0) return kMinStep;
  const int64_t perPoint = (rangeSeconds + kMaxPoints - 1) / kMaxPoints;
  const int64_t step = (perPoint + kMinStep - 1) / kMinStep * kMinStep;
  return step < kMinStep ? kMinStep : step;
}

QueryResult parseQuery(const std::optional<std::string>& from, const std::optional<std::string>& to,
                       const std::optional<std::string>& step, int64_t now) {
  QueryResult r;
  auto fail = [&](const char* param, std::string detail) {
    r.error = {param, std::string(param) + ": " + std::move(detail)};
    return r;
  };
  Query q;
  q.to = now;
  if (to) {
    auto t = parseTime(*to);
    if (!t) return fail("to", "not Unix seconds or an RFC 3339 time: " + *to);
    q.to = *t;
  }
  q.from = q.to - kDefaultRange;
  if (from) {
    auto t = parseTime(*from);
    if (!t) return fail("from", "not Unix seconds or an RFC 3339 time: " + *from);
    q.from = *t;
  }
  if (q.from > q.to) return fail("from", "after to");
  if (q.to - q.from > kMaxRange) return fail("from", "the range from..to is longer than 400 days");
  if (step) {
    int64_t s = 0;
    auto [p, ec] = std::from_chars(step->data(), step->data() + step->size(), s);
    if (step->empty() || ec != std::errc() || p != step->data() + step->size())
      return fail("step", "not a whole number of seconds: " + *step);
    if (s < kMinStep) return fail("step", "under 60 seconds");
    if (s % 60 != 0) return fail("step", "not a multiple of 60 seconds");
    if ((q.to - q.from) / s + 1 > kMaxBuckets) return fail("step", "too small for the range: over 100000 points");
    q.step = s;
  } else {
    q.step = defaultStep(q.to - q.from);
  }
  r.query = q;
  return r;
}

}  // namespace orchard::history
