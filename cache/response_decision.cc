// Response-side decisions; see response_decision.h. The hard parts: a
// varying answer is shared only under its variant key (followers compare
// keys), `Vary: *` is never stored, and an answer to a request that carried
// a body or credentials never reaches another client.
#include "cache/response_decision.h"

#include <algorithm>

#include "cache/key.h"
#include "cache/policy.h"
#include "cache/range.h"

namespace orchard::cache {

namespace {

// The origin-form target of `ref` when it names a resource of
// scheme://host:port (RFC 9110 §4.3.1: scheme and host compare
// case-insensitively, an omitted port is the default), or "" when it names
// another origin or is not a path. A network-path reference ("//x/y") names
// a host, never a path on ours.
std::string sameOriginTarget(std::string_view ref, std::string_view scheme, std::string_view host, uint16_t port) {
  if (ref.substr(0, 2) == "//") return {};
  if (!ref.empty() && ref.front() == '/') return std::string(ref);
  const size_t colon = ref.find("://");
  if (colon == std::string_view::npos || !iequals(ref.substr(0, colon), scheme)) return {};
  std::string_view rest = ref.substr(colon + 3);
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return {};  // "http://host": not a resource to drop
  std::string_view authority = rest.substr(0, slash);
  if (authority.find('@') != std::string_view::npos) return {};  // userinfo: refuse, never guess
  const uint16_t defaultPort = iequals(scheme, "https") ? 443 : 80;
  uint16_t refPort = defaultPort;
  std::string_view refHost = authority;
  if (const size_t c = authority.rfind(':'); c != std::string_view::npos && authority.back() != ']') {
    refHost = authority.substr(0, c);
    std::string_view digits = authority.substr(c + 1);
    if (digits.empty() || digits.size() > 5) return {};
    uint32_t v = 0;
    for (char d : digits) {
      if (d < '0' || d > '9') return {};
      v = v * 10 + static_cast<uint32_t>(d - '0');
    }
    if (v == 0 || v > 65535) return {};
    refPort = static_cast<uint16_t>(v);
  }
  if (!iequals(refHost, host) || refPort != port) return {};
  return std::string(rest.substr(slash));
}

bool safeMethod(std::string_view m) { return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE"; }

}  // namespace

std::vector<std::string> invalidatedKeys(std::string_view method, int status, const HeaderList& responseHeaders,
                                         std::string_view primaryKey, std::string_view host, uint16_t port,
                                         const std::vector<std::string>& ignoreQuery) {
  std::vector<std::string> out;
  if (safeMethod(method) || status < 200 || status >= 400) return out;
  out.emplace_back(primaryKey);
  const std::string_view scheme = primaryKey.substr(0, primaryKey.find("://"));
  for (const char* h : {"Location", "Content-Location"}) {
    auto v = findHeader(responseHeaders, h);
    if (!v || v->empty()) continue;
    std::string target = sameOriginTarget(*v, scheme, host, port);
    if (target.empty()) continue;  // another origin, or not a path
    out.push_back(normaliseKey(scheme, host, port, target, ignoreQuery));
  }
  return out;
}

StorePlan planStore(const ResponseFacts& f) {
  StorePlan p;
  StoreInput in;
  in.method = f.method;
  in.status = static_cast<uint16_t>(f.status);
  in.requestCacheControl = f.requestCacheControl;
  in.responseHeaders = f.responseHeaders;  // targeted fields, Cache-Control, Expires
  in.requestHasAuthorization = f.requestHasAuthorization;
  in.lengthKnown = f.lengthKnown;
  p.cacheable = decideStore(in) == StoreVerdict::Store;
  // Only an answer to exactly the request we sent is shared: never one to a
  // request whose body we forwarded (or did not).
  if (f.requestHadBody) p.cacheable = false;
  // Others may be given what could be stored, stored or not.
  p.shareable = p.cacheable;
  // Larger than the store may hold: passed through uncached. A declared
  // length is only a claim; it never sizes anything either.
  if (p.cacheable && f.length && *f.length > f.maxStoredObject) {
    p.cacheable = false;
    p.oversize = true;
  }
  auto vary = varyFields(*f.responseHeaders);
  if (!vary.empty() && p.cacheable) {
    if (std::find(vary.begin(), vary.end(), "*") != vary.end()) {
      p.cacheable = false;  // Vary: * never matches a later request
    } else {
      p.storeKey = variantKeyText(f.primaryKey, vary, *f.requestHeaders);
      if (f.primaryShared) {
        std::string stub;
        for (size_t i = 0; i < vary.size(); ++i) stub += (i ? "," : "") + vary[i];
        p.varyStub = std::move(stub);
      }
    }
  }
  // A varying answer is shared only with the requests that select the same
  // variant, which followers tell by its variant key.
  if (!vary.empty() && !p.storeKey) p.shareable = false;
  return p;
}

std::vector<std::string> stubVariants(const ObjectMeta& stub) {
  std::vector<std::string> out;
  if (stub.kind != ObjectMeta::Kind::VaryStub) return out;
  std::string_view s = stub.blocks;
  while (!s.empty()) {
    const size_t nl = s.find('\n');
    if (nl != 0) out.emplace_back(s.substr(0, nl));
    if (nl == std::string_view::npos) break;
    s.remove_prefix(nl + 1);
  }
  return out;
}

bool addStubVariant(ObjectMeta* stub, std::string_view variantKey) {
  if (stub->kind != ObjectMeta::Kind::VaryStub || variantKey.empty() ||
      variantKey.find('\n') != std::string_view::npos)
    return false;
  const auto listed = stubVariants(*stub);
  if (listed.size() >= kMaxListedVariants) return false;
  if (std::find(listed.begin(), listed.end(), variantKey) != listed.end()) return false;
  if (!stub->blocks.empty()) stub->blocks += '\n';
  stub->blocks += variantKey;
  return true;
}

namespace {
bool strongTag(std::string_view t) { return t.size() >= 2 && t.front() == '"'; }
}  // namespace

FirstRun judgeFirstRun(int status, const HeaderList& headers, uint64_t fetchStart) {
  FirstRun r;
  if (status != 206 || fetchStart == 0) return r;
  uint64_t first = 0, total = 0;
  auto cr = findHeader(headers, "Content-Range");
  if (!cr || !parseContentRange(*cr, &first, &total) || first != fetchStart) {
    r.kind = FirstRun::Kind::Mismatch;
    return r;
  }
  r.kind = FirstRun::Kind::Offset;
  r.total = total;
  return r;
}

RunVerdict judgeRun(int status, const HeaderList& headers, std::optional<uint64_t> contentLength,
                    const ObjectMeta& stored, uint64_t fetchStart, std::optional<uint64_t> length) {
  if (status == 206) {
    uint64_t first = 0, total = 0;
    auto cr = findHeader(headers, "Content-Range");
    if (cr && parseContentRange(*cr, &first, &total) && first == fetchStart && length && total == *length)
      return RunVerdict::Continue;
    return RunVerdict::Changed;
  }
  if (status == 200) {
    auto et = findHeader(headers, "ETag");
    auto lm = findHeader(headers, "Last-Modified");
    // Bytes are combined only under a strong validator (RFC 9111 §3.4):
    // a weak ETag never matches, a Last-Modified only without ETags.
    bool same = (strongTag(stored.etag) && et && *et == stored.etag) ||
                (stored.etag.empty() && !stored.lastModified.empty() && lm && *lm == stored.lastModified);
    if (same && contentLength && length && *contentLength == *length) return RunVerdict::Discard;
  }
  return RunVerdict::Changed;
}

RevalidationVerdict judgeRevalidation(int status) noexcept {
  if (status == 304) return RevalidationVerdict::Refresh;
  if (status >= 500) return RevalidationVerdict::Fail;
  return RevalidationVerdict::Replace;
}

}  // namespace orchard::cache
