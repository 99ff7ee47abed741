// Cache keys: builds the normalised key text of an upstream URL (see key.h
// for the rules) and hashes it with XXH3-128. Pure functions, no I/O.
#include "cache/key.h"

#include <xxhash.h>

#include <algorithm>

namespace orchard::cache {

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

void appendHex64(std::string* out, uint64_t v) {
  for (int shift = 60; shift >= 0; shift -= 4) out->push_back(kHexDigits[(v >> shift) & 0xf]);
}

char asciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

void appendLower(std::string* out, std::string_view s) {
  for (char c : s) out->push_back(asciiLower(c));
}

bool isDropped(std::string_view name, const std::vector<std::string>& ignore) {
  for (std::string_view n : kAlwaysIgnoredParams) {
    if (name == n) return true;
  }
  return std::any_of(ignore.begin(), ignore.end(), [&](const std::string& n) { return name == n; });
}

}  // namespace

std::string Hash128::hex() const {
  std::string out;
  out.reserve(32);
  appendHex64(&out, hi);
  appendHex64(&out, lo);
  return out;
}

Hash128 hashKey(std::string_view text) noexcept {
  XXH128_hash_t h = XXH3_128bits(text.data(), text.size());
  return Hash128{h.high64, h.low64};
}

CacheKey CacheKey::fromText(std::string text) {
  Hash128 h = hashKey(text);
  return CacheKey{std::move(text), h};
}

std::string stripQueryParams(std::string_view target, const std::vector<std::string>& ignore) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return std::string(target);

  std::string out(target.substr(0, q));
  std::string_view query = target.substr(q + 1);
  std::string kept;
  kept.reserve(query.size());
  bool first = true;
  // Split on '&' and keep every parameter (empty ones included, byte for
  // byte) whose name -- the text before '=', or all of it -- is not dropped.
  size_t start = 0;
  while (start <= query.size()) {
    size_t amp = query.find('&', start);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view param = query.substr(start, amp - start);
    std::string_view name = param.substr(0, param.find('='));
    if (!isDropped(name, ignore)) {
      if (!first) kept.push_back('&');
      kept.append(param);
      first = false;
    }
    start = amp + 1;
  }
  if (!kept.empty()) {
    out.push_back('?');
    out.append(kept);
  }
  return out;
}

std::string normaliseKey(std::string_view scheme, std::string_view host, uint16_t port,
                         std::string_view target, const std::vector<std::string>& ignore) {
  std::string out;
  out.reserve(scheme.size() + host.size() + target.size() + 10);
  appendLower(&out, scheme);
  out.append("://");
  // An IPv6 literal keeps its brackets, so "[::1]:8080" and "[::1:8080]" differ.
  const bool v6 = host.find(':') != std::string_view::npos && host.front() != '[';
  if (v6) out.push_back('[');
  appendLower(&out, host);
  if (v6) out.push_back(']');

  std::string_view s(out.data(), scheme.size());
  bool defaultPort = port == 0 || (s == "http" && port == 80) || (s == "https" && port == 443);
  if (!defaultPort) {
    out.push_back(':');
    out.append(std::to_string(port));
  }

  // The target is origin-form; an empty one means "/", and one that lacks
  // the leading '/' gets it (the key text always has a path).
  if (target.empty() || target.front() != '/') out.push_back('/');
  out.append(stripQueryParams(target, ignore));
  return out;
}

std::string_view keyHost(std::string_view keyText) {
  const size_t sep = keyText.find("://");
  if (sep == std::string_view::npos) return {};
  std::string_view rest = keyText.substr(sep + 3);
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    return close == std::string_view::npos ? std::string_view() : rest.substr(1, close - 1);
  }
  return rest.substr(0, rest.find_first_of(":/?"));
}

}  // namespace orchard::cache
