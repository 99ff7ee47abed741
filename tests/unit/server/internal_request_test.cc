// The box's own requests (server/proxy/internal_request.h), as tables: which
// X-Orchard-Internal values the secret accepts (and with `capped`), which
// peers may send them, duplicate headers, an empty secret; the secret's
// shape and that two fresh ones differ; and that the header never reaches
// the upstream request (makeUpstreamTemplate).
#include "server/proxy/internal_request.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

#include "server/proxy/upstream_template.h"

namespace orchard::server {
namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef";

TEST(InternalRequest, Values) {
  struct Row {
    std::string value;
    InternalKind want;
  };
  const Row rows[] = {
      {kSecret, InternalKind::Internal},
      {kSecret + "; capped", InternalKind::Capped},
      {kSecret + ";capped", InternalKind::Capped},
      {kSecret + " ;  Capped ", InternalKind::Capped},
      {" " + kSecret + "\t", InternalKind::Internal},
      {kSecret + ";", InternalKind::None},                // an empty parameter
      {kSecret + "; capped=1", InternalKind::None},       // unknown parameter
      {kSecret + "; capped; capped", InternalKind::None},
      {kSecret + "; uncapped", InternalKind::None},
      {kSecret.substr(0, 31), InternalKind::None},        // a prefix
      {kSecret + "0", InternalKind::None},                // longer
      {"0123456789abcdef0123456789abcdee", InternalKind::None},  // last char differs
      {"1123456789abcdef0123456789abcdef", InternalKind::None},  // first char differs
      {"0123456789ABCDEF0123456789ABCDEF", InternalKind::None},  // case matters
      {"", InternalKind::None},
      {"; capped", InternalKind::None},
  };
  for (const Row& r : rows) EXPECT_EQ(judgeInternalValue(kSecret, r.value), r.want) << "'" << r.value << "'";
  // No secret made: nothing is internal, not even an empty header.
  EXPECT_EQ(judgeInternalValue("", ""), InternalKind::None);
  EXPECT_EQ(judgeInternalValue("", "; capped"), InternalKind::None);
}

sockaddr_storage v4(const char* a) {
  sockaddr_storage ss{};
  auto* s = reinterpret_cast<sockaddr_in*>(&ss);
  s->sin_family = AF_INET;
  inet_pton(AF_INET, a, &s->sin_addr);
  return ss;
}

sockaddr_storage v6(const char* a) {
  sockaddr_storage ss{};
  auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
  s->sin6_family = AF_INET6;
  inet_pton(AF_INET6, a, &s->sin6_addr);
  return ss;
}

RequestHead withHeaders(HeaderList h) {
  RequestHead r;
  r.method = "GET";
  r.target = "/a?source=swcdn.apple.com";
  r.headers = std::move(h);
  return r;
}

TEST(InternalRequest, PeersAndHeaders) {
  const RequestHead capped = withHeaders({{"Host", "127.0.0.1:8080"}, {"x-orchard-internal", kSecret + "; capped"}});
  struct Row {
    sockaddr_storage peer;
    InternalKind want;
    const char* why;
  };
  const Row rows[] = {
      {v4("127.0.0.1"), InternalKind::Capped, "loopback"},
      {v4("127.3.2.1"), InternalKind::Capped, "all of 127/8"},
      {v6("::1"), InternalKind::Capped, "::1"},
      {v6("::ffff:127.0.0.1"), InternalKind::Capped, "v4-mapped loopback"},
      {v4("10.0.0.5"), InternalKind::None, "a LAN client with the right secret"},
      {v4("192.168.1.2"), InternalKind::None, "a LAN client"},
      {v6("fe80::1"), InternalKind::None, "link-local"},
      {v6("::ffff:10.0.0.5"), InternalKind::None, "v4-mapped LAN"},
  };
  for (const Row& r : rows)
    EXPECT_EQ(internalKind(kSecret, capped, reinterpret_cast<const sockaddr*>(&r.peer)), r.want) << r.why;
  const auto lo = v4("127.0.0.1");
  const auto* peer = reinterpret_cast<const sockaddr*>(&lo);
  EXPECT_EQ(internalKind(kSecret, capped, nullptr), InternalKind::None);
  EXPECT_EQ(internalKind("", capped, peer), InternalKind::None);
  EXPECT_EQ(internalKind(kSecret, withHeaders({{"Host", "x"}}), peer), InternalKind::None);
  EXPECT_EQ(internalKind(kSecret, withHeaders({{"X-Orchard-Internal", kSecret}}), peer), InternalKind::Internal);
  EXPECT_EQ(internalKind(kSecret, withHeaders({{"X-Orchard-Internal", "wrong"}}), peer), InternalKind::None);
  // Two headers, even both right: refused.
  EXPECT_EQ(internalKind(kSecret, withHeaders({{"X-Orchard-Internal", kSecret}, {"X-Orchard-Internal", kSecret}}), peer),
            InternalKind::None);
  EXPECT_EQ(internalKind(kSecret, withHeaders({{"X-Orchard-Internal", "bogus"}, {"X-Orchard-Internal", kSecret}}), peer),
            InternalKind::None);
}

TEST(InternalRequest, Secrets) {
  const std::string a = makeInternalSecret(), b = makeInternalSecret();
  EXPECT_TRUE(validInternalSecret(a)) << a;
  EXPECT_TRUE(validInternalSecret(b)) << b;
  EXPECT_NE(a, b);
  EXPECT_EQ(judgeInternalValue(a, a), InternalKind::Internal);
  for (const char* bad : {"", "0123456789abcdef0123456789abcde", "0123456789abcdef0123456789abcdef0",
                          "0123456789abcdef0123456789abcdeF", "0123456789abcdef0123456789abcdeg"})
    EXPECT_FALSE(validInternalSecret(bad)) << bad;
}

TEST(InternalRequest, NeverForwardedUpstream) {
  for (bool shared : {true, false}) {
    RequestHead req = withHeaders({{"Host", "swcdn.apple.com"},
                                   {"X-Orchard-Internal", kSecret + "; capped"},
                                   {"User-Agent", "t"},
                                   {"x-ORCHARD-internal", "bogus"}});
    Route route;
    route.host = "swcdn.apple.com";
    route.hostHeader = "swcdn.apple.com";
    route.upstreamTarget = "/a";
    route.keyText = "http://swcdn.apple.com/a";
    auto t = makeUpstreamTemplate(req, route, route.keyText, "orchard-test", shared);
    EXPECT_EQ(t->headPrefix.find(kSecret), std::string::npos) << t->headPrefix;
    EXPECT_EQ(t->headPrefix.find("bogus"), std::string::npos) << t->headPrefix;
    EXPECT_EQ(t->headPrefix.find("nternal"), std::string::npos) << t->headPrefix;
    EXPECT_NE(t->headPrefix.find("User-Agent: t\r\n"), std::string::npos) << t->headPrefix;
  }
}

}  // namespace
}  // namespace orchard::server
