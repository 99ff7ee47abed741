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

#include "cache/targeted_control.h"
#include "common/ascii.h"
#include "common/clock.h"
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

int64_t parseAge(std::string_view firstLine) {
  // RFC 9111 §5.1: delta-seconds. The first line wins (ObjectMeta::header
  // gives it) and, when that line is a list, its first member: "7200, 0" is
  // old, "0, 7200" is not. Anything but digits (a sign, a point, quotes,
  // parameters) makes the field invalid: it is ignored.
  std::string_view v = trim(firstLine.substr(0, firstLine.find(',')));
  if (v.empty()) return 0;
  int64_t out = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return 0;
    if (out <= (int64_t{1} << 31)) out = out * 10 + (c - '0');
  }
  return std::min<int64_t>(out, int64_t{1} << 31);
}

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
    else if (iequals(name, "must-understand")) cc.mustUnderstand = true;
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
  CacheControl resp;
  bool hasExpires = in.hasExpires;
  if (in.responseHeaders) {
    ResponseControls rc = responseControls(*in.responseHeaders);
    resp = rc.cc;
    hasExpires = !rc.targeted && findHeader(*in.responseHeaders, "Expires").has_value();
  } else {
    resp = parseCacheControl(in.responseCacheControl);
  }
  // RFC 9111 §3: a final status that is cacheable by default, or any final
  // status with explicit freshness. 206 and 304 are handled by their own
  // paths (blocks, revalidation) and never stored as objects.
  const bool explicitFreshness = resp.maxAge || resp.sMaxAge || hasExpires || resp.isPublic;
  if (in.status < 200 || in.status == 206 || in.status == 304) return StoreVerdict::Status;
  if (!heuristicallyCacheable(in.status) && !explicitFreshness) return StoreVerdict::Status;
  // must-understand: a cache that knows the status code's caching rules
  // stores it whatever no-store says; one that does not, does not store it.
  const bool understood = heuristicallyCacheable(in.status) || in.status == 302 || in.status == 307;
  if (resp.mustUnderstand && !understood) return StoreVerdict::Status;
  if (req.noStore || (resp.noStore && !(resp.mustUnderstand && understood))) return StoreVerdict::NoStore;
  if (resp.isPrivate) return StoreVerdict::Private;
  // RFC 9111 §3.5: a shared cache stores answers to authorised requests only
  // when the response explicitly allows it.
  if (in.requestHasAuthorization && !(resp.isPublic || resp.sMaxAge || resp.mustRevalidate))
    return StoreVerdict::Authorization;
  if (!in.lengthKnown) return StoreVerdict::UnknownLength;
  return StoreVerdict::Store;
}

namespace {
int64_t lifetimeOf(const ObjectMeta& meta, const ResponseControls& rc, const FreshnessConfig& cfg, bool* heuristic) {
  if (heuristic) *heuristic = false;
  const CacheControl& c = rc.cc;
  if (c.sMaxAge) return *c.sMaxAge;
  if (c.maxAge) return *c.maxAge;
  auto date = parseHttpDate(trim(meta.header("Date")));
  int64_t dateValue = date ? *date : meta.responseTime;
  // A targeted field overrides Expires as well (RFC 9213 §2.1).
  std::string_view expires = rc.targeted ? std::string_view() : trim(meta.header("Expires"));
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
}  // namespace

int64_t freshnessLifetime(const ObjectMeta& meta, const FreshnessConfig& cfg, bool* heuristic) {
  return lifetimeOf(meta, responseControls(meta.headers), cfg, heuristic);
}

CachedDecision decideCached(const ObjectMeta& meta, std::string_view requestCacheControl, bool requestPragmaNoCache,
                            int64_t now, const FreshnessConfig& cfg) {
  CachedDecision d;
  const ResponseControls rc = responseControls(meta.headers);  // once per hit
  const CacheControl& resp = rc.cc;
  CacheControl req = parseCacheControl(requestCacheControl);
  d.age = currentAge(meta, now);
  d.lifetime = lifetimeOf(meta, rc, cfg, nullptr);
  d.stale = d.age >= d.lifetime;
  const int64_t staleness = d.stale ? d.age - d.lifetime : 0;
  // no-cache, must-revalidate, proxy-revalidate and (shared caches)
  // s-maxage all forbid a stale answer without the origin (RFC 9111 §5.2.2).
  d.mustRevalidate = resp.mustRevalidate || resp.proxyRevalidate || resp.sMaxAge.has_value() || resp.noCache;
  d.staleIfDisconnected = !d.mustRevalidate;
  if (resp.staleIfError && !d.mustRevalidate) d.staleIfErrorAllowed = staleness <= *resp.staleIfError;
  if (req.staleIfError && !d.mustRevalidate) d.staleIfErrorAllowed = d.staleIfErrorAllowed || staleness <= *req.staleIfError;

  // Always revalidate: response no-cache, request no-cache (or Pragma without Cache-Control).
  if (resp.noCache || req.noCache || (requestPragmaNoCache && requestCacheControl.empty())) {
    d.action = CachedDecision::Action::Revalidate;
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

namespace {

// Accept-Language members as (q in thousandths, lower-case range), most
// preferred first, ties by name; q=0 members ("not acceptable") are kept,
// since they change what the origin may send.
void appendLanguages(std::string& out, const std::vector<std::string_view>& members) {
  std::vector<std::pair<int, std::string>> langs;
  for (std::string_view m : members) {
    std::string_view range = trim(m.substr(0, m.find(';')));
    int q = 1000;
    if (size_t semi = m.find(';'); semi != std::string_view::npos) {
      std::string_view p = trim(m.substr(semi + 1));
      if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
        p.remove_prefix(2);
        // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ); anything else keeps the text.
        int v = 0;
        bool ok = !p.empty() && (p[0] == '0' || p[0] == '1');
        if (ok) v = (p[0] - '0') * 1000;
        if (ok && p.size() > 1) {
          ok = p[1] == '.' && p.size() <= 5;
          for (size_t i = 2; ok && i < p.size(); ++i) {
            ok = p[i] >= '0' && p[i] <= '9';
            v += (p[i] - '0') * (i == 2 ? 100 : i == 3 ? 10 : 1);
          }
        }
        if (ok && v <= 1000) q = v;
        else range = trim(m);  // unparsed: the member as it is
      } else {
        range = trim(m);
      }
    }
    std::string r(range);
    for (auto& c : r) c = static_cast<char>(asciiLower(static_cast<unsigned char>(c)));
    langs.emplace_back(q, std::move(r));
  }
  std::sort(langs.begin(), langs.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  for (size_t i = 0; i < langs.size(); ++i) {
    if (i) out += ',';
    out += langs[i].second;
    if (langs[i].first != 1000) out += ";q=" + std::to_string(langs[i].first);
  }
}

}  // namespace

std::string variantKeyText(std::string_view primaryKey, const std::vector<std::string>& fields,
                           const HeaderList& requestHeaders) {
  std::string out(primaryKey);
  std::vector<std::string_view> members;
  for (const auto& f : fields) {
    out += '\x1f';
    out += f;
    out += '=';
    members.clear();
    bool present = false;
    for (const auto& [k, v] : requestHeaders) {
      if (!iequals(k, f)) continue;
      present = true;
      forEachListItem(v, [&](std::string_view m) { members.push_back(trim(m)); });
    }
    if (!present) {
      out += '\x1e';  // absent, unlike a present but empty field
      continue;
    }
    if (f == "accept-language") {
      appendLanguages(out, members);
      continue;
    }
    for (size_t i = 0; i < members.size(); ++i) {
      if (i) out += ',';
      out += members[i];
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
    auto lm = parseHttpDate(trim(meta.lastModified.empty() ? meta.header("Date") : std::string_view(meta.lastModified)));
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
  const int64_t ageValue = parseAge(meta.header("Age"));
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
// Names compare case-insensitively (RFC 9110 §5.6.7: recipients should
// accept other cases); everything else is fixed: one SP, two-digit fields.
// Three letters folded to lower case and packed: one integer compare per name.
constexpr uint32_t pack3(char a, char b, char c) {
  return (uint32_t{asciiLower(static_cast<unsigned char>(a))} << 16) |
         (uint32_t{asciiLower(static_cast<unsigned char>(b))} << 8) | asciiLower(static_cast<unsigned char>(c));
}
uint32_t pack3(std::string_view s) { return s.size() == 3 ? pack3(s[0], s[1], s[2]) : 0; }

int monthIndex(std::string_view m) {
  static constexpr uint32_t kMonths[] = {pack3('j', 'a', 'n'), pack3('f', 'e', 'b'), pack3('m', 'a', 'r'),
                                         pack3('a', 'p', 'r'), pack3('m', 'a', 'y'), pack3('j', 'u', 'n'),
                                         pack3('j', 'u', 'l'), pack3('a', 'u', 'g'), pack3('s', 'e', 'p'),
                                         pack3('o', 'c', 't'), pack3('n', 'o', 'v'), pack3('d', 'e', 'c')};
  const uint32_t k = pack3(m);
  for (int i = 0; i < 12; ++i)
    if (k == kMonths[i]) return i;
  return -1;
}
bool dayName(std::string_view d) {
  static constexpr uint32_t kDays[] = {pack3('m', 'o', 'n'), pack3('t', 'u', 'e'), pack3('w', 'e', 'd'),
                                       pack3('t', 'h', 'u'), pack3('f', 'r', 'i'), pack3('s', 'a', 't'),
                                       pack3('s', 'u', 'n')};
  const uint32_t k = pack3(d);
  for (uint32_t v : kDays)
    if (k == v) return true;
  return false;
}
bool longDayName(std::string_view d) {
  for (const char* n : {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"})
    if (iequals(d, n)) return true;
  return false;
}

// "hh:mm:ss" at `at`.
bool timeOfDay(std::string_view s, size_t at, int* h, int* mi, int* se) {
  return at + 8 <= s.size() && s[at + 2] == ':' && s[at + 5] == ':' && asciiDigits(s, at, 2, h) &&
         asciiDigits(s, at + 3, 2, mi) && asciiDigits(s, at + 6, 2, se);
}

std::optional<int64_t> civil(int y, int m, int d, int h, int mi, int se) {
  if (m < 0 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 || y < 1970) return std::nullopt;
  return daysFromCivil(y, static_cast<unsigned>(m + 1), static_cast<unsigned>(d)) * 86400 + h * 3600 + mi * 60 + se;
}

// IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT": fixed width (the hot path).
std::optional<int64_t> parseImfFixdate(std::string_view s) {
  if (s.size() != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[25] != ' ' ||
      !iequals(s.substr(26), "GMT") || !dayName(s.substr(0, 3)))
    return std::nullopt;
  int d, y, h, mi, se;
  if (!asciiDigits(s, 5, 2, &d) || !asciiDigits(s, 12, 4, &y) || !timeOfDay(s, 17, &h, &mi, &se)) return std::nullopt;
  return civil(y, monthIndex(s.substr(8, 3)), d, h, mi, se);
}

// RFC 850, "Sunday, 06-Nov-94 08:49:37 GMT" (two-digit years: 70-99 are 19xx).
std::optional<int64_t> parseRfc850(std::string_view s) {
  const size_t comma = s.find(',');
  if (comma == std::string_view::npos || !longDayName(s.substr(0, comma))) return std::nullopt;
  std::string_view r = s.substr(comma);  // ", 06-Nov-94 08:49:37 GMT"
  if (r.size() != 24 || r[1] != ' ' || r[4] != '-' || r[8] != '-' || r[11] != ' ' || r[20] != ' ' ||
      !iequals(r.substr(21), "GMT"))
    return std::nullopt;
  int d, y, h, mi, se;
  if (!asciiDigits(r, 2, 2, &d) || !asciiDigits(r, 9, 2, &y) || !timeOfDay(r, 12, &h, &mi, &se)) return std::nullopt;
  y += y < 70 ? 2000 : 1900;
  return civil(y, monthIndex(r.substr(5, 3)), d, h, mi, se);
}

// asctime, "Sun Nov  6 08:49:37 1994" (a one-digit day is space-padded).
std::optional<int64_t> parseAsctime(std::string_view s) {
  if (s.size() != 24 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' || !dayName(s.substr(0, 3)))
    return std::nullopt;
  int d, y, h, mi, se;
  if (s[8] == ' ') {
    if (!asciiDigits(s, 9, 1, &d)) return std::nullopt;
  } else if (!asciiDigits(s, 8, 2, &d)) {
    return std::nullopt;
  }
  if (!timeOfDay(s, 11, &h, &mi, &se) || !asciiDigits(s, 20, 4, &y)) return std::nullopt;
  return civil(y, monthIndex(s.substr(4, 3)), d, h, mi, se);
}
}  // namespace

std::optional<int64_t> parseHttpDate(std::string_view s) {
  if (auto t = parseImfFixdate(s)) return t;
  if (auto t = parseRfc850(s)) return t;
  return parseAsctime(s);
}

void formatHttpDate(int64_t t, char out[30]) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm;
  gmtime_r(&tt, &tm);
  std::strftime(out, 30, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

}  // namespace orchard::cache
