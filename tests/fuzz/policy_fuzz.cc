// Fuzz target: cache/policy: parseCacheControl, parseHttpDate, varyFields,
// notModified, mergeNotModified and the decisions built on them
// (decideStore, freshnessLifetime, decideCached), all fed by header values
// from clients and origins.
//
// Input: fields separated by "\n--\n" (fuzz_util.h):
//   0 a Cache-Control value (request and response side)
//   1 an HTTP-date candidate
//   2 stored response headers, "Name: value" lines
//   3 request / 304 headers, "Name: value" lines
//   4 stored ETag    5 stored Last-Modified
//   6 8 bytes: response time offset and status (little endian)
//
// Invariants beyond "no crash":
//   - every delta-seconds parsed lies in [0, 2^31] (RFC 9111 §1.2.2);
//   - a parsed date is >= 1970 and survives formatHttpDate -> parseHttpDate;
//   - varyFields: non-empty, lower case, trimmed, comma-free, no duplicates;
//   - notModified never throws; "If-None-Match: *" is always 304; a listed
//     tag equal (weakly) to the stored ETag is 304;
//   - mergeNotModified keeps the stored framing/Content-* headers, takes
//     every other header the 304 carries, and drops the stored ones it
//     replaces;
//   - decideStore never stores no-store/private answers; lifetimes and ages
//     are >= 0; a stale must-revalidate answer is never served unvalidated.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cache/policy.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace orchard;
using cache::CachedDecision;
using cache::HeaderList;

bool refIEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::string_view trimSp(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void checkDelta(const std::optional<int64_t>& v, const char* name) {
  if (v) FUZZ_CHECK(*v >= 0 && *v <= (int64_t{1} << 31), "%s = %lld out of [0, 2^31]", name, static_cast<long long>(*v));
}

void checkCacheControl(std::string_view value) {
  cache::CacheControl cc = cache::parseCacheControl(value);
  checkDelta(cc.maxAge, "max-age");
  checkDelta(cc.sMaxAge, "s-maxage");
  checkDelta(cc.maxStale, "max-stale");
  checkDelta(cc.minFresh, "min-fresh");
  checkDelta(cc.staleWhileRevalidate, "stale-while-revalidate");
  checkDelta(cc.staleIfError, "stale-if-error");
  if (cc.maxStale) FUZZ_CHECK(cc.maxStalePresent, "max-stale value without maxStalePresent");
}

void checkDate(std::string_view s) {
  auto t = cache::parseHttpDate(s);
  if (!t) return;
  FUZZ_CHECK(*t >= 0, "date before 1970: %s -> %lld", fuzz::escape(s).c_str(), static_cast<long long>(*t));
  // Year 9999 is the last one a four-digit form can hold; "Dec 31 9999
  // 23:59:60" rolls into year 10000 and cannot be formatted back.
  if (*t >= 253402300799) return;
  char buf[30];
  cache::formatHttpDate(*t, buf);
  auto back = cache::parseHttpDate(buf);
  FUZZ_CHECK(back && *back == *t, "format/parse round trip: %s -> %lld -> %s", fuzz::escape(s).c_str(),
             static_cast<long long>(*t), buf);
}

bool keptFromStored(std::string_view n) {
  return refIEquals(n, "Content-Length") || refIEquals(n, "Transfer-Encoding") || refIEquals(n, "Content-Encoding") ||
         refIEquals(n, "Content-Range") || refIEquals(n, "Content-Type") || refIEquals(n, "Connection");
}

size_t countNamed(const HeaderList& l, std::string_view n) {
  size_t c = 0;
  for (const auto& kv : l) c += refIEquals(kv.first, n) ? 1 : 0;
  return c;
}

void checkMerge(const HeaderList& stored, const HeaderList& fresh) {
  HeaderList out = cache::mergeNotModified(stored, fresh);
  FUZZ_CHECK(out.size() <= stored.size() + fresh.size(), "merge grew the list");
  // Framing and Content-* headers: exactly the stored ones, in order.
  HeaderList keptOut, keptStored;
  for (const auto& kv : out)
    if (keptFromStored(kv.first)) keptOut.push_back(kv);
  for (const auto& kv : stored)
    if (keptFromStored(kv.first)) keptStored.push_back(kv);
  FUZZ_CHECK(keptOut == keptStored, "framing/Content-* headers changed by a 304");
  // Any other name: the 304's copies when it has the name, else the stored ones.
  for (const auto& kv : out) {
    if (keptFromStored(kv.first)) continue;
    size_t inFresh = countNamed(fresh, kv.first);
    size_t want = inFresh > 0 ? inFresh : countNamed(stored, kv.first);
    FUZZ_CHECK(countNamed(out, kv.first) == want, "header %s: %zu after merge, want %zu",
               fuzz::escape(kv.first).c_str(), countNamed(out, kv.first), want);
  }
  for (const auto& kv : fresh) {
    if (keptFromStored(kv.first)) continue;
    bool present = false;
    for (const auto& o : out) present = present || o == kv;
    FUZZ_CHECK(present, "a 304 header was dropped: %s", fuzz::escape(kv.first).c_str());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = fuzz::splitFields(fuzz::asView(data, size), 7);
  const std::string_view cc = f[0], date = f[1];
  const HeaderList stored = fuzz::parseHeaderLines<HeaderList>(f[2]);
  const HeaderList request = fuzz::parseHeaderLines<HeaderList>(f[3]);
  fuzz::Bytes nums(f[6]);
  const int64_t responseOffset = static_cast<int32_t>(nums.u64(4));  // +-68 years around the base time
  const uint16_t status = static_cast<uint16_t>(nums.u64(2));

  checkCacheControl(cc);
  checkDate(date);
  checkDate(trimSp(date));
  for (const auto& kv : stored) checkDate(kv.second);

  // Vary.
  std::vector<std::string> vary = cache::varyFields(stored);
  for (size_t i = 0; i < vary.size(); ++i) {
    const std::string& v = vary[i];
    FUZZ_CHECK(!v.empty() && v == trimSp(v) && v.find(',') == std::string::npos, "bad Vary field \"%s\"",
               fuzz::escape(v).c_str());
    for (char c : v) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "Vary field not lower case: %s", fuzz::escape(v).c_str());
    for (size_t j = 0; j < i; ++j) FUZZ_CHECK(vary[j] != v, "duplicate Vary field %s", fuzz::escape(v).c_str());
  }
  std::string k1 = cache::variantKeyText("http://h/p", vary, request);
  FUZZ_CHECK(k1 == cache::variantKeyText("http://h/p", vary, request), "variantKeyText is not deterministic");
  FUZZ_CHECK(k1.rfind("http://h/p", 0) == 0, "variant key lost its primary key");

  // The stored response.
  cache::ObjectMeta meta;
  meta.key = "http://origin.test/obj";
  meta.status = status;
  meta.headers = stored;
  meta.etag = std::string(f[4]);
  meta.lastModified = std::string(f[5]);
  const int64_t base = 1'700'000'000;
  meta.requestTime = base + responseOffset - 1;
  meta.responseTime = base + responseOffset;
  meta.lastAccess = meta.responseTime;

  // Conditionals.
  bool nm = false;
  try {
    nm = cache::notModified(request, meta);
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, "notModified threw: %s", e.what());
  }
  bool hasInm = false, inmStar = false, inmTagMatch = false;
  auto opaque = [](std::string_view t) {
    t = trimSp(t);
    if (t.substr(0, 2) == "W/") t.remove_prefix(2);
    return t;
  };
  for (const auto& [k, v] : request) {
    if (!refIEquals(k, "If-None-Match")) continue;
    hasInm = true;
    if (trimSp(v) == "*") inmStar = true;
    if (meta.etag.empty()) continue;
    std::string_view rest = v;
    while (true) {
      size_t c = rest.find(',');
      if (opaque(rest.substr(0, c)) == opaque(meta.etag)) inmTagMatch = true;
      if (c == std::string_view::npos) break;
      rest.remove_prefix(c + 1);
    }
  }
  if (inmStar || inmTagMatch) FUZZ_CHECK(nm, "If-None-Match matching the stored ETag must give 304");
  if (hasInm && !inmStar && !inmTagMatch) FUZZ_CHECK(!nm, "If-None-Match without a match gave 304");

  checkMerge(stored, request);

  // Decisions on the stored response.
  cache::StoreInput si;
  si.method = "GET";
  si.status = status;
  si.requestCacheControl = cc;
  si.responseCacheControl = meta.header("Cache-Control");
  si.lengthKnown = true;
  cache::StoreVerdict sv = cache::decideStore(si);
  cache::CacheControl respCc = cache::parseCacheControl(si.responseCacheControl);
  cache::CacheControl reqCc = cache::parseCacheControl(cc);
  if (sv == cache::StoreVerdict::Store) {
    FUZZ_CHECK(!respCc.noStore && !reqCc.noStore && !respCc.isPrivate, "stored a no-store/private answer");
  }
  FUZZ_CHECK(cache::storeVerdictName(sv) != nullptr, "verdict without a name");

  cache::FreshnessConfig cfg;
  bool heuristic = false;
  int64_t lifetime = cache::freshnessLifetime(meta, cfg, &heuristic);
  FUZZ_CHECK(lifetime >= 0, "negative lifetime %lld", static_cast<long long>(lifetime));
  if (heuristic) FUZZ_CHECK(lifetime <= cfg.heuristicMax, "heuristic lifetime above heuristicMax");
  for (int64_t now : {meta.responseTime, meta.responseTime + 1, meta.responseTime + 86400 * 400}) {
    int64_t age = cache::currentAge(meta, now);
    FUZZ_CHECK(age >= 0, "negative age %lld", static_cast<long long>(age));
    for (bool pragma : {false, true}) {
      CachedDecision d = cache::decideCached(meta, cc, pragma, now, cfg);
      FUZZ_CHECK(d.age == age && d.lifetime == lifetime, "decideCached disagrees with currentAge/freshnessLifetime");
      FUZZ_CHECK(d.stale == (d.age >= d.lifetime), "stale flag wrong");
      if (d.mustRevalidate && d.stale) {
        FUZZ_CHECK(d.action == CachedDecision::Action::Revalidate, "stale must-revalidate answer not revalidated");
        FUZZ_CHECK(!d.staleIfErrorAllowed, "stale-if-error allowed on a must-revalidate answer");
      }
      if (respCc.noCache || reqCc.noCache) FUZZ_CHECK(d.action == CachedDecision::Action::Revalidate, "no-cache served");
    }
  }
  return 0;
}
