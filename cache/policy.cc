// Pure caching decisions (RFC 9111); see policy.h: Cache-Control parsing,
// storability, freshness lifetime and age, the verdict for a stored
// response, Vary keys, conditionals and 304 merging. No clock reads: the
// time is an argument. The hard part is hostile directive syntax (quoted
// arguments, repeated and invalid values), handled as the RFC's parsing
// rules say rather than by guessing.
#include "cache/policy.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "common/headers.h"

namespace orchard::cache {
namespace {

std::string_view trim(std::string_view s) { return trimOws(s); }

std::optional<int64_t> parseDelta(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (v.empty()) return std::nullopt;
  int64_t out = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    if (out > (int64_t{1} << 31)) return int64_t{1} << 31;  // RFC 9111 §1.2.2: saturate
    out = out * 10 + (c - '0');
  }
  return std::min<int64_t>(out, int64_t{1} << 31);
}

}  // namespace

CacheControl parseCacheControl(std::string_view value) {
  CacheControl cc;
  size_t i = 0;
  while (i < value.size()) {
    // One directive: token [ "=" ( token / quoted-string ) ], separated by commas.
    size_t start = i;
    bool inQuote = false;
    while (i < value.size() && (inQuote || value[i] != ',')) {
      if (value[i] == '"') inQuote = !inQuote;
      else if (value[i] == '\\' && inQuote && i + 1 < value.size()) ++i;
      ++i;
    }
    std::string_view d = trim(value.substr(start, i - start));
    ++i;
    if (d.empty()) continue;
    std::string_view name = d, arg;
    if (auto eq = d.find('='); eq != std::string_view::npos) {
      name = trim(d.substr(0, eq));
      arg = trim(d.substr(eq + 1));
    }
    if (iequals(name, "no-store")) cc.noStore = true;
    else if (iequals(name, "no-cache")) cc.noCache = true;
    else if (iequals(name, "private")) cc.isPrivate = true;
    else if (iequals(name, "public")) cc.isPublic = true;
    else if (iequals(name, "must-revalidate")) cc.mustRevalidate = true;
    else if (iequals(name, "proxy-revalidate")) cc.proxyRevalidate = true;
    else if (iequals(name, "immutable")) cc.immutable = true;
    else if (iequals(name, "max-age")) cc.maxAge = parseDelta(arg);
    else if (iequals(name, "s-maxage")) cc.sMaxAge = parseDelta(arg);
    else if (iequals(name, "only-if-cached")) cc.onlyIfCached = true;
    else if (iequals(name, "max-stale")) {
      cc.maxStalePresent = true;
      cc.maxStale = arg.empty() ? std::optional<int64_t>() : parseDelta(arg);
    } else if (iequals(name, "min-fresh")) cc.minFresh = parseDelta(arg);
    else if (iequals(name, "stale-while-revalidate")) cc.staleWhileRevalidate = parseDelta(arg);
    else if (iequals(name, "stale-if-error")) cc.staleIfError = parseDelta(arg);
  }
  return cc;
}

const char* storeVerdictName(StoreVerdict v) {
  switch (v) {
    case StoreVerdict::Store: return "store";
    case StoreVerdict::Method: return "method";
    case StoreVerdict::Status: return "status";
    case StoreVerdict::NoStore: return "no-store";
    case StoreVerdict::Private: return "private";
    case StoreVerdict::Authorization: return "authorization";
    case StoreVerdict::UnknownLength: return "unknown-length";
  }
  return "?";
}

bool heuristicallyCacheable(uint16_t s) {
  switch (s) {
    case 200: case 203: case 204: case 300: case 301: case 308: case 404: case 405: case 410: case 414: case 501:
      return true;
    default:
      return false;
  }
}

StoreVerdict decideStore(const StoreInput& in) {
  if (in.method != "GET") return StoreVerdict::Method;
  CacheControl req = parseCacheControl(in.requestCacheControl);
  CacheControl resp = parseCacheControl(in.responseCacheControl);
  // RFC 9111 §3: a final status that is cacheable by default, or any final
  // status with explicit freshness. 206 and 304 are handled by their own
  // paths (blocks, revalidation) and never stored as objects.
  const bool explicitFreshness = resp.maxAge || resp.sMaxAge || in.hasExpires || resp.isPublic;
  if (in.status < 200 || in.status == 206 || in.status == 304) return StoreVerdict::Status;
  if (!heuristicallyCacheable(in.status) && !explicitFreshness) return StoreVerdict::Status;
  if (req.noStore || resp.noStore) return StoreVerdict::NoStore;
  if (resp.isPrivate) return StoreVerdict::Private;
  // RFC 9111 §3.5: a shared cache stores answers to authorised requests only
  // when the response explicitly allows it.
  if (in.requestHasAuthorization && !(resp.isPublic || resp.sMaxAge || resp.mustRevalidate))
    return StoreVerdict::Authorization;
  if (!in.lengthKnown) return StoreVerdict::UnknownLength;
  return StoreVerdict::Store;
}

int64_t freshnessLifetime(const ObjectMeta& meta, const FreshnessConfig& cfg, bool* heuristic) {
  if (heuristic) *heuristic = false;
  CacheControl c = parseCacheControl(joinedHeader(meta.headers, "Cache-Control"));
  if (c.sMaxAge) return *c.sMaxAge;
  if (c.maxAge) return *c.maxAge;
  auto date = parseHttpDate(trim(meta.header("Date")));
  int64_t dateValue = date ? *date : meta.responseTime;
  std::string_view expires = trim(meta.header("Expires"));
  if (!expires.empty()) {
    auto e = parseHttpDate(expires);
    if (!e) return 0;  // an invalid Expires means "already expired" (RFC 9111 §5.3)
    return std::max<int64_t>(0, *e - dateValue);
  }
  if (!heuristicallyCacheable(meta.status) && !c.isPublic) return 0;
  auto lm = parseHttpDate(trim(meta.header("Last-Modified")));
  if (!lm || *lm >= dateValue) return 0;
  if (heuristic) *heuristic = true;
  auto h = static_cast<int64_t>(static_cast<double>(dateValue - *lm) * cfg.heuristicFraction);
  return std::min(h, cfg.heuristicMax);
}

CachedDecision decideCached(const ObjectMeta& meta, std::string_view requestCacheControl, bool requestPragmaNoCache,
                            int64_t now, const FreshnessConfig& cfg) {
  CachedDecision d;
  CacheControl resp = parseCacheControl(joinedHeader(meta.headers, "Cache-Control"));
  CacheControl req = parseCacheControl(requestCacheControl);
  d.age = currentAge(meta, now);
  d.lifetime = freshnessLifetime(meta, cfg);
  d.stale = d.age >= d.lifetime;
  const int64_t staleness = d.stale ? d.age - d.lifetime : 0;
  d.mustRevalidate = resp.mustRevalidate || resp.proxyRevalidate || resp.sMaxAge.has_value();
  if (resp.staleIfError && !d.mustRevalidate) d.staleIfErrorAllowed = staleness <= *resp.staleIfError;
  if (req.staleIfError && !d.mustRevalidate) d.staleIfErrorAllowed = d.staleIfErrorAllowed || staleness <= *req.staleIfError;

  // Always revalidate: response no-cache, request no-cache (or Pragma without Cache-Control).
  if (resp.noCache || req.noCache || (requestPragmaNoCache && requestCacheControl.empty())) {
    d.action = CachedDecision::Action::Revalidate;
    d.mustRevalidate = d.mustRevalidate || resp.noCache;
    return d;
  }
  bool fresh = !d.stale;
  if (fresh && req.maxAge && d.age > *req.maxAge) fresh = false;
  if (fresh && req.minFresh && d.lifetime - d.age < *req.minFresh) fresh = false;
  if (fresh) {
    d.action = CachedDecision::Action::Serve;
    return d;
  }
  // Stale (or not fresh enough for this request).
  if (d.stale && !d.mustRevalidate && req.maxStalePresent && !(req.maxAge && d.age > *req.maxAge)) {
    if (!req.maxStale || staleness <= *req.maxStale) {
      d.action = CachedDecision::Action::Serve;
      return d;
    }
  }
  if (d.stale && !d.mustRevalidate && resp.staleWhileRevalidate && staleness <= *resp.staleWhileRevalidate &&
      !req.maxAge && !req.minFresh) {
    d.action = CachedDecision::Action::ServeStaleAndRevalidate;
    return d;
  }
  d.action = CachedDecision::Action::Revalidate;
  return d;
}

std::vector<std::string> varyFields(const HeaderList& responseHeaders) {
  std::vector<std::string> out;
  for (const auto& [k, v] : responseHeaders) {
    if (!iequals(k, "Vary")) continue;
    forEachListItem(v, [&](std::string_view t) {
      std::string f(t);
      for (auto& c : f) c = static_cast<char>(asciiLower(static_cast<unsigned char>(c)));
      if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(std::move(f));
    });
  }
  return out;
}

std::string variantKeyText(std::string_view primaryKey, const std::vector<std::string>& fields,
                           const HeaderList& requestHeaders) {
  std::string out(primaryKey);
  for (const auto& f : fields) {
    out += '\x1f';
    out += f;
    out += '=';
    bool first = true;
    for (const auto& [k, v] : requestHeaders) {
      if (!iequals(k, f)) continue;
      if (!first) out += ',';
      out += trim(v);
      first = false;
    }
  }
  return out;
}

namespace {
std::string_view opaqueTag(std::string_view t) {
  t = trim(t);
  if (t.substr(0, 2) == "W/") t.remove_prefix(2);
  return t;
}
}  // namespace

bool notModified(const HeaderList& requestHeaders, const ObjectMeta& meta) {
  bool sawInm = false;
  for (const auto& [k, v] : requestHeaders) {
    if (!iequals(k, "If-None-Match")) continue;
    sawInm = true;
    if (trim(v) == "*") return true;
    if (meta.etag.empty()) continue;
    std::string_view mine = opaqueTag(meta.etag);
    bool match = false;
    forEachListItem(v, [&](std::string_view t) { match = match || opaqueTag(t) == mine; });
    if (match) return true;
  }
  if (sawInm) return false;
  for (const auto& [k, v] : requestHeaders) {
    if (!iequals(k, "If-Modified-Since")) continue;
    auto since = parseHttpDate(trim(v));
    auto lm = parseHttpDate(trim(meta.lastModified));
    if (since && lm && *lm <= *since) return true;
  }
  return false;
}

HeaderList mergeNotModified(const HeaderList& stored, const HeaderList& fresh) {
  auto keepStored = [](std::string_view n) {
    return iequals(n, "Content-Length") || iequals(n, "Transfer-Encoding") || iequals(n, "Content-Encoding") ||
           iequals(n, "Content-Range") || iequals(n, "Content-Type") || iequals(n, "Connection");
  };
  HeaderList out;
  for (const auto& kv : stored) {
    bool replaced = false;
    if (!keepStored(kv.first))
      for (const auto& f : fresh)
        if (iequals(f.first, kv.first)) replaced = true;
    if (!replaced) out.push_back(kv);
  }
  for (const auto& f : fresh) {
    if (keepStored(f.first)) continue;
    out.push_back(f);
  }
  return out;
}

int64_t currentAge(const ObjectMeta& meta, int64_t now) {
  // RFC 9111 §4.2.3
  int64_t ageValue = 0;
  if (auto a = parseDelta(trim(meta.header("Age")))) ageValue = *a;
  int64_t dateValue = meta.responseTime;
  if (auto d = parseHttpDate(trim(meta.header("Date")))) dateValue = *d;
  int64_t apparentAge = std::max<int64_t>(0, meta.responseTime - dateValue);
  int64_t responseDelay = std::max<int64_t>(0, meta.responseTime - meta.requestTime);
  int64_t correctedAgeValue = ageValue + responseDelay;
  int64_t correctedInitialAge = std::max(apparentAge, correctedAgeValue);
  int64_t residentTime = std::max<int64_t>(0, now - meta.responseTime);
  return correctedInitialAge + residentTime;
}

namespace {
int monthIndex(std::string_view m) {
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i)
    if (m == kMonths[i]) return i;
  return -1;
}
}  // namespace

namespace {
// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil): no time zone, no locale, no libc state.
int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool twoDigits(std::string_view s, size_t at, int* out) {
  if (s[at] < '0' || s[at] > '9' || s[at + 1] < '0' || s[at + 1] > '9') return false;
  *out = (s[at] - '0') * 10 + (s[at + 1] - '0');
  return true;
}

// The hot path: IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT", fixed width.
std::optional<int64_t> parseImfFixdate(std::string_view s) {
  if (s.size() != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[19] != ':' ||
      s[22] != ':' || s[25] != ' ' || s.substr(26) != "GMT")
    return std::nullopt;
  int d, h, mi, se, y1, y2;
  if (!twoDigits(s, 5, &d) || !twoDigits(s, 12, &y1) || !twoDigits(s, 14, &y2) || !twoDigits(s, 17, &h) ||
      !twoDigits(s, 20, &mi) || !twoDigits(s, 23, &se))
    return std::nullopt;
  int m = monthIndex(s.substr(8, 3));
  int y = y1 * 100 + y2;
  if (m < 0 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 || y < 1970) return std::nullopt;
  return daysFromCivil(y, static_cast<unsigned>(m + 1), static_cast<unsigned>(d)) * 86400 + h * 3600 + mi * 60 + se;
}
}  // namespace

std::optional<int64_t> parseHttpDate(std::string_view s) {
  if (auto t = parseImfFixdate(s)) return t;
  // Accepts "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
  // "Sun Nov  6 08:49:37 1994". Numeric fields are digits only (no signs).
  if (s.size() > 64) return std::nullopt;
  std::string buf(s);
  char wd[16], mon[4], d[3], y[5], h[3], mi[3], se[3];
  int consumed = 0;
  auto num = [](const char* p) { return std::atoi(p); };
  int day, year;
  if (std::sscanf(buf.c_str(), "%15[A-Za-z], %2[0-9] %3[A-Za-z] %4[0-9] %2[0-9]:%2[0-9]:%2[0-9] GMT%n", wd, d, mon, y,
                  h, mi, se, &consumed) == 7 && consumed == static_cast<int>(buf.size()) && std::strlen(y) == 4) {
    day = num(d);
    year = num(y);
  } else if (std::sscanf(buf.c_str(), "%15[A-Za-z], %2[0-9]-%3[A-Za-z]-%2[0-9] %2[0-9]:%2[0-9]:%2[0-9] GMT%n", wd, d,
                         mon, y, h, mi, se, &consumed) == 7 && consumed == static_cast<int>(buf.size())) {
    day = num(d);
    year = num(y);
    year += (year < 70) ? 2000 : 1900;
  } else if (std::sscanf(buf.c_str(), "%3[A-Za-z] %3[A-Za-z] %2[0-9] %2[0-9]:%2[0-9]:%2[0-9] %4[0-9]%n", wd, mon, d, h,
                         mi, se, y, &consumed) == 7 && consumed == static_cast<int>(buf.size())) {
    day = num(d);
    year = num(y);
  } else {
    return std::nullopt;
  }
  if (std::strlen(h) != 2 || std::strlen(mi) != 2 || std::strlen(se) != 2) return std::nullopt;
  int m = monthIndex(mon);
  int hh = num(h), mm = num(mi), ss = num(se);
  if (m < 0 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || year < 1970) return std::nullopt;
  struct tm tm;
  std::memset(&tm, 0, sizeof tm);
  tm.tm_year = year - 1900;
  tm.tm_mon = m;
  tm.tm_mday = day;
  tm.tm_hour = hh;
  tm.tm_min = mm;
  tm.tm_sec = ss;
  return static_cast<int64_t>(timegm(&tm));
}

void formatHttpDate(int64_t t, char out[30]) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm;
  gmtime_r(&tt, &tm);
  std::strftime(out, 30, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

}  // namespace orchard::cache
