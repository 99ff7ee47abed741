// Fuzz target: config/config loadString() (TOML written by users, through
// toml++) and the value parsers it uses: ListenAddress::parse, Cidr::parse,
// normalizeHostPattern/normalizeHostName, parseSize, parseDuration.
//
// Input: the whole input is a TOML document. Each of its lines is also fed
// to the value parsers (with one level of surrounding quotes removed, so
// `listen = ["127.0.0.1:80"]` style seeds reach them too).
//
// Invariants beyond "no crash":
//   - loadString never throws, and gives either a Config with no problems or
//     no Config and at least one problem, each with a message and a line >=
//     0; formatProblem renders every problem;
//   - a loaded Config keeps the cross-key rules (a listener, no TLS
//     listener, not both admin token forms) and the table's bounds that
//     are visible in the struct; loading the same text again gives the
//     same Config (no hidden state);
//   - value parsers: what parses re-parses from its canonical form to the
//     same value (sizes and durations via formatSize/formatDuration, host
//     patterns are idempotent, addresses via "host:port"/"[v6]:port").
#include <cstdint>
#include <stdexcept>
#include <string>

#include "config/config.h"
#include "config/net.h"
#include "config/params.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace orchard;

void checkValueParsers(std::string_view s) {
  const std::string ctx = fuzz::escape(s);
  if (auto a = config::ListenAddress::parse(s); a.ok()) {
    FUZZ_CHECK(a->port >= 1, "ListenAddress port 0 from %s", ctx.c_str());
    FUZZ_CHECK(a->text == s, "ListenAddress text %s != input %s", fuzz::escape(a->text).c_str(), ctx.c_str());
    std::string again = a->v6 ? "[" + a->host + "]:" + std::to_string(a->port) : a->host + ":" + std::to_string(a->port);
    auto b = config::ListenAddress::parse(again);
    FUZZ_CHECK(b.ok() && b->host == a->host && b->port == a->port && b->v6 == a->v6,
               "ListenAddress %s does not re-parse from %s", ctx.c_str(), again.c_str());
  }
  if (auto c = config::Cidr::parse(s); c.ok()) {
    FUZZ_CHECK(c->prefix <= (c->v6 ? 128 : 32), "Cidr prefix %u from %s", c->prefix, ctx.c_str());
    FUZZ_CHECK(c->text == s, "Cidr text differs from input %s", ctx.c_str());
  }
  if (auto h = config::normalizeHostPattern(s); h.ok()) {
    FUZZ_CHECK(!h->empty(), "empty host pattern from %s", ctx.c_str());
    auto again = config::normalizeHostPattern(*h);
    FUZZ_CHECK(again.ok() && *again == *h, "normalizeHostPattern not idempotent on %s", ctx.c_str());
    config::HostMatcher m({*h});
    if (h->front() != '*') FUZZ_CHECK(m.matches(*h), "pattern %s does not match itself", fuzz::escape(*h).c_str());
  }
  if (auto h = config::normalizeHostName(s); h.ok()) {
    auto again = config::normalizeHostName(*h);
    FUZZ_CHECK(again.ok() && *again == *h, "normalizeHostName not idempotent on %s", ctx.c_str());
  }
  if (auto v = config::parseSize(s); v.ok()) {
    FUZZ_CHECK(*v >= 0, "negative size from %s", ctx.c_str());
    std::string f = config::formatSize(*v);
    auto back = config::parseSize(f);
    FUZZ_CHECK(back.ok() && *back == *v, "size %s -> %lld -> %s does not round-trip", ctx.c_str(),
               static_cast<long long>(*v), f.c_str());
  }
  if (auto v = config::parseDuration(s); v.ok()) {
    FUZZ_CHECK(*v >= 0, "negative duration from %s", ctx.c_str());
    std::string f = config::formatDuration(*v);
    auto back = config::parseDuration(f);
    FUZZ_CHECK(back.ok() && *back == *v, "duration %s -> %lld ms -> %s does not round-trip", ctx.c_str(),
               static_cast<long long>(*v), f.c_str());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text = fuzz::asView(data, size);
  config::LoadResult r;
  try {
    r = config::loadString(text, "fuzz.toml");
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, "loadString threw: %s", e.what());
  } catch (...) {
    FUZZ_CHECK(false, "loadString threw a non-std exception");
  }
  FUZZ_CHECK(r.ok() == r.problems.empty(), "ok()=%d with %zu problems", r.ok(), r.problems.size());
  for (const config::Problem& p : r.problems) {
    FUZZ_CHECK(!p.message.empty(), "a problem without a message (key %s)", p.key.c_str());
    FUZZ_CHECK(p.line >= 0, "negative line %d", p.line);
    FUZZ_CHECK(!config::formatProblem(p, "fuzz.toml").empty(), "formatProblem gave nothing");
  }
  if (r.ok()) {
    const config::Config& c = *r.config;
    FUZZ_CHECK(!c.listen.empty(), "a config without listeners loaded");
    FUZZ_CHECK(c.tlsListen.empty(), "a TLS listener loaded");
    FUZZ_CHECK(c.adminToken.empty() || c.adminTokenFile.empty(), "both admin token forms loaded");
    FUZZ_CHECK(c.workers >= 0 && c.maxConnections >= 1 && c.idleTimeoutMs >= 1000 && c.drainTimeoutMs >= 0 &&
                   c.connectTimeoutMs >= 100 && c.readTimeoutMs >= 1000 && c.maxIdlePerOrigin >= 0 &&
                   c.cacheLimit >= (uint64_t{1} << 20),
               "a loaded config out of the table's bounds");
    for (const auto& a : c.listen) FUZZ_CHECK(a.port >= 1, "listener with port 0");
    for (const auto& [host, addr] : c.upstreamResolve) {
      FUZZ_CHECK(!host.empty() && addr.port >= 1, "bad upstream.resolve entry");
      for (char ch : host) FUZZ_CHECK(!(ch >= 'A' && ch <= 'Z'), "upstream.resolve key not lower case");
    }
    for (const auto& p : c.upstreamAllow) FUZZ_CHECK(!p.empty(), "empty upstream.allow pattern loaded");
    config::LoadResult again = config::loadString(text, "fuzz.toml");
    FUZZ_CHECK(again.ok() && *again.config == c, "loading the same text twice gave different configs");
  }

  // Value parsers on each line, bare and without one level of quotes.
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (line.size() <= 512) {
      checkValueParsers(line);
      if (size_t eq = line.find('='); eq != std::string_view::npos) {
        std::string_view v = line.substr(eq + 1);
        while (!v.empty() && (v.front() == ' ' || v.front() == '[')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == ']')) v.remove_suffix(1);
        if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
        checkValueParsers(v);
      }
    }
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return 0;
}
