// Fuzz target: cache/key normaliseKey() and stripQueryParams(), which turn
// client-chosen URLs into the cache key and the upstream target.
//
// Input: fields separated by "\n--\n" (fuzz_util.h):
//   0 scheme   1 host   2 port (decimal, taken mod 65536)   3 target
//   4 ignore names, one per line
//
// Invariants beyond "no crash":
//   - stripQueryParams: a target without '?' is returned unchanged; the
//     path before '?' is kept byte for byte; the parameters left are the
//     original ones, in order, minus exactly those named source,
//     sourceScheme or in `ignore`; no '?' is left with an empty query;
//     stripping is idempotent, and stripping the upstream form (no ignore
//     list) first changes nothing;
//   - normaliseKey: lower-case scheme "://" prefix, the stripped target
//     (behind a '/' when it lacked one) at the end, the port only when not
//     the scheme's default, and a deterministic XXH3 hash whose hex() is 32
//     lower-case hex digits.
#include <cstdint>
#include <string>
#include <vector>

#include "cache/key.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace orchard;

std::vector<std::string_view> params(std::string_view query) {
  std::vector<std::string_view> out;
  while (true) {
    size_t amp = query.find('&');
    out.push_back(query.substr(0, amp));
    if (amp == std::string_view::npos) return out;
    query.remove_prefix(amp + 1);
  }
}

bool dropped(std::string_view param, const std::vector<std::string>& ignore) {
  std::string_view name = param.substr(0, param.find('='));
  if (name == "source" || name == "sourceScheme") return true;
  for (const auto& n : ignore)
    if (name == n) return true;
  return false;
}

void checkStrip(std::string_view target, const std::vector<std::string>& ignore) {
  std::string s = cache::stripQueryParams(target, ignore);
  const std::string ctx = fuzz::escape(target);
  size_t q = target.find('?');
  if (q == std::string_view::npos) {
    FUZZ_CHECK(s == target, "target without a query changed: %s", ctx.c_str());
    return;
  }
  FUZZ_CHECK(s.compare(0, q, target.substr(0, q)) == 0, "path changed: %s -> %s", ctx.c_str(), fuzz::escape(s).c_str());
  std::string want(target.substr(0, q));
  std::string kept;
  bool first = true;
  for (std::string_view p : params(target.substr(q + 1))) {
    if (dropped(p, ignore)) continue;
    if (!first) kept += '&';
    kept += p;
    first = false;
  }
  if (!kept.empty()) want += "?" + kept;
  FUZZ_CHECK(s == want, "stripQueryParams(%s) = %s, want %s", ctx.c_str(), fuzz::escape(s).c_str(),
             fuzz::escape(want).c_str());
  FUZZ_CHECK(cache::stripQueryParams(s, ignore) == s, "stripQueryParams is not idempotent on %s", ctx.c_str());
  FUZZ_CHECK(cache::stripQueryParams(cache::stripQueryParams(target, {}), ignore) == s,
             "stripping the upstream form first changes the key query: %s", ctx.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = fuzz::splitFields(fuzz::asView(data, size), 5);
  std::string_view scheme = f[0], host = f[1], target = f[3];
  uint32_t portNum = 0;
  for (char c : f[2].substr(0, 9)) {
    if (c < '0' || c > '9') break;
    portNum = portNum * 10 + static_cast<uint32_t>(c - '0');
  }
  const uint16_t port = static_cast<uint16_t>(portNum);
  std::vector<std::string> ignore;
  {
    std::string_view names = f[4];
    while (!names.empty()) {
      size_t nl = names.find('\n');
      ignore.emplace_back(names.substr(0, nl));
      if (nl == std::string_view::npos) break;
      names.remove_prefix(nl + 1);
    }
  }

  checkStrip(target, ignore);
  checkStrip(target, {});

  std::string key = cache::normaliseKey(scheme, host, port, target, ignore);
  std::string lowerScheme(scheme);
  for (auto& c : lowerScheme) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  FUZZ_CHECK(key.rfind(lowerScheme + "://", 0) == 0, "key %s lacks the scheme prefix", fuzz::escape(key).c_str());
  std::string tail = cache::stripQueryParams(target, ignore);
  if (target.empty() || target.front() != '/') tail.insert(0, "/");
  FUZZ_CHECK(key.size() >= tail.size() && key.compare(key.size() - tail.size(), tail.size(), tail) == 0,
             "key %s does not end with the stripped target %s", fuzz::escape(key).c_str(), fuzz::escape(tail).c_str());
  bool defaultPort = port == 0 || (lowerScheme == "http" && port == 80) || (lowerScheme == "https" && port == 443);
  if (!defaultPort) {
    std::string portText = ":" + std::to_string(port) + tail;
    FUZZ_CHECK(key.size() >= portText.size() &&
                   key.compare(key.size() - portText.size(), portText.size(), portText) == 0,
               "key %s lacks port %u", fuzz::escape(key).c_str(), port);
  }
  FUZZ_CHECK(key == cache::normaliseKey(scheme, host, port, target, ignore), "normaliseKey is not deterministic");

  cache::CacheKey k = cache::CacheKey::fromText(key);
  FUZZ_CHECK(k.text == key && k.hash == cache::hashKey(key), "CacheKey::fromText disagrees with hashKey");
  std::string hex = k.hash.hex();
  FUZZ_CHECK(hex.size() == 32, "hex() of %zu chars", hex.size());
  for (char c : hex) FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'), "hex() char %c", c);
  return 0;
}
