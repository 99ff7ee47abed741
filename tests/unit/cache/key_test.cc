// Tests for cache/key: key normalisation (table-driven), query stripping and
// the XXH3-128 hash (stability, hex form).
#include "cache/key.h"

#include <gtest/gtest.h>

#include <set>

namespace orchard::cache {
namespace {

struct NormCase {
  const char* scheme;
  const char* host;
  uint16_t port;
  const char* target;
  std::vector<std::string> ignore;
  const char* want;
};

class NormaliseKeyTest : public ::testing::TestWithParam<NormCase> {};

TEST_P(NormaliseKeyTest, Table) {
  const NormCase& c = GetParam();
  EXPECT_EQ(normaliseKey(c.scheme, c.host, c.port, c.target, c.ignore), c.want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, NormaliseKeyTest,
    ::testing::Values(
        // Case and default ports.
        NormCase{"http", "swcdn.apple.com", 80, "/a/b.pkg", {}, "http://swcdn.apple.com/a/b.pkg"},
        NormCase{"HTTP", "SWCDN.Apple.COM", 80, "/A/B.pkg", {}, "http://swcdn.apple.com/A/B.pkg"},
        NormCase{"https", "Host", 443, "/x", {}, "https://host/x"},
        NormCase{"http", "host", 443, "/x", {}, "http://host:443/x"},
        NormCase{"https", "host", 80, "/x", {}, "https://host:80/x"},
        NormCase{"http", "host", 8080, "/x", {}, "http://host:8080/x"},
        NormCase{"HTTPS", "host", 443, "/x", {}, "https://host/x"},
        NormCase{"http", "host", 0, "/x", {}, "http://host/x"},
        NormCase{"http", "[::1]", 8080, "/x", {}, "http://[::1]:8080/x"},
        // Targets.
        NormCase{"http", "host", 80, "", {}, "http://host/"},
        NormCase{"http", "host", 80, "/", {}, "http://host/"},
        NormCase{"http", "host", 80, "x", {}, "http://host/x"},
        NormCase{"http", "host", 80, "/p%20q/R", {}, "http://host/p%20q/R"},
        // source / sourceScheme removed in any position, order kept.
        NormCase{"http", "h", 80, "/p?source=swcdn.apple.com", {}, "http://h/p"},
        NormCase{"http", "h", 80, "/p?source=s&a=1&b=2", {}, "http://h/p?a=1&b=2"},
        NormCase{"http", "h", 80, "/p?a=1&source=s&b=2", {}, "http://h/p?a=1&b=2"},
        NormCase{"http", "h", 80, "/p?b=2&a=1&source=s", {}, "http://h/p?b=2&a=1"},
        NormCase{"http", "h", 80, "/p?sourceScheme=https&source=s", {}, "http://h/p"},
        NormCase{"http", "h", 80, "/p?source", {}, "http://h/p"},
        NormCase{"http", "h", 80, "/p?source=", {}, "http://h/p"},
        // Names compare exactly: case, prefixes and values are not names.
        NormCase{"http", "h", 80, "/p?Source=s&sources=t&x=source", {}, "http://h/p?Source=s&sources=t&x=source"},
        NormCase{"http", "h", 80, "/p?sourcescheme=x", {}, "http://h/p?sourcescheme=x"},
        // Ignore list.
        NormCase{"http", "h", 80, "/p?token=abc&v=1", {"token"}, "http://h/p?v=1"},
        NormCase{"http", "h", 80, "/p?v=1&token=abc&cb=2&w=3", {"token", "cb"}, "http://h/p?v=1&w=3"},
        NormCase{"http", "h", 80, "/p?token", {"token"}, "http://h/p"},
        // Empty queries and empty params: bytes of kept params are exact.
        NormCase{"http", "h", 80, "/p?", {}, "http://h/p"},
        NormCase{"http", "h", 80, "/p?a=1&&b=2", {}, "http://h/p?a=1&&b=2"},
        NormCase{"http", "h", 80, "/p?a=%41+b&c==d", {}, "http://h/p?a=%41+b&c==d"},
        NormCase{"http", "h", 80, "/p?a=1&source=s&", {}, "http://h/p?a=1&"},
        NormCase{"http", "h", 80, "/?source=s", {}, "http://h/"}));

TEST(StripQueryParams, UpstreamTargetKeepsIgnoredNamesWhenNotListed) {
  EXPECT_EQ(stripQueryParams("/p?source=s&token=1", {}), "/p?token=1");
  EXPECT_EQ(stripQueryParams("/p", {}), "/p");
  EXPECT_EQ(stripQueryParams("/p?a", {"a"}), "/p");
  EXPECT_EQ(stripQueryParams("", {}), "");
}

TEST(HashKey, StableKnownValue) {
  // XXH3-128 of the empty input, from the xxHash reference test vectors.
  Hash128 empty = hashKey("");
  EXPECT_EQ(empty.hi, 0x99aa06d3014798d8ull);
  EXPECT_EQ(empty.lo, 0x6001c324468d497full);
  EXPECT_EQ(empty.hex(), "99aa06d3014798d86001c324468d497f");
}

TEST(HashKey, DeterministicAndDistinct) {
  EXPECT_EQ(hashKey("http://h/a"), hashKey("http://h/a"));
  EXPECT_FALSE(hashKey("http://h/a") == hashKey("http://h/b"));
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(hashKey("http://h/" + std::to_string(i)).hex());
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Hash128, HexIsHiThenLoZeroPadded) {
  Hash128 h{0x1, 0xabcdef};
  EXPECT_EQ(h.hex(), "0000000000000001" "0000000000abcdef");
  Hash128 m{~0ull, 0};
  EXPECT_EQ(m.hex(), "ffffffffffffffff0000000000000000");
  EXPECT_EQ(h.hex().size(), 32u);
}

TEST(CacheKey, FromTextHashesText) {
  CacheKey k = CacheKey::fromText("http://h/x");
  EXPECT_EQ(k.text, "http://h/x");
  EXPECT_EQ(k.hash, hashKey("http://h/x"));
}

// keyHost(): the host a purge by host compares, from every shape of key
// text normaliseKey() writes, and nothing from text that is not a key.
TEST(KeyHost, FromEveryKeyShape) {
  struct Case {
    std::string text;
    std::string host;
  };
  const Case cases[] = {
      {"http://swcdn.apple.com/a.pkg", "swcdn.apple.com"},
      {"http://swcdn.apple.com:8080/a.pkg?x=1", "swcdn.apple.com"},
      {"https://updates.cdn-apple.com/", "updates.cdn-apple.com"},
      {"http://127.0.0.1:19000/gen/1", "127.0.0.1"},
      {"http://[::1]:8080/x", "::1"},
      {"http://[fd00::2]/x", "fd00::2"},
      {"http://h/x\x1f" "accept-encoding=gzip", "h"},  // a Vary variant keeps its URI's host
      {"http://h?q", "h"},
      {"no scheme", ""},
      {"http://[broken/x", ""},
  };
  for (const auto& c : cases) EXPECT_EQ(keyHost(c.text), c.host) << c.text;
  const std::string made = normaliseKey("http", "fd00::2", 8080, "/a", {});
  EXPECT_EQ(keyHost(made), "fd00::2") << made;
}

}  // namespace
}  // namespace orchard::cache
