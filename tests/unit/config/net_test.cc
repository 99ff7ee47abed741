// Tests for config/net.h: listen addresses, CIDR ranges and their matching of
// socket addresses (v4, v6, v4-mapped), host patterns and HostMatcher.
#include "config/net.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

namespace orchard::config {
namespace {

// A socket address from a numeric string, as libuv would hand it over.
sockaddr_storage sockaddrOf(const char* ip) {
  sockaddr_storage ss;
  std::memset(&ss, 0, sizeof ss);
  if (std::strchr(ip, ':')) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    EXPECT_EQ(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1) << ip;
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    EXPECT_EQ(inet_pton(AF_INET, ip, &sin->sin_addr), 1) << ip;
  }
  return ss;
}

TEST(ListenAddress, ParsesGoodAddresses) {
  struct Case {
    const char* text;
    const char* host;
    uint16_t port;
    bool v6;
  } cases[] = {
      {"127.0.0.1:8080", "127.0.0.1", 8080, false},
      {"0.0.0.0:1", "0.0.0.0", 1, false},
      {"[::1]:8080", "::1", 8080, true},
      {"[::]:65535", "::", 65535, true},
      {"[::ffff:10.0.0.1]:443", "::ffff:10.0.0.1", 443, true},
  };
  for (const Case& c : cases) {
    Result<ListenAddress> a = ListenAddress::parse(c.text);
    ASSERT_TRUE(a.ok()) << c.text;
    EXPECT_EQ(a->host, c.host);
    EXPECT_EQ(a->port, c.port);
    EXPECT_EQ(a->v6, c.v6);
    EXPECT_EQ(a->text, c.text);
  }
}

TEST(ListenAddress, RejectsBadAddresses) {
  const char* bad[] = {"",
                       "127.0.0.1",
                       "127.0.0.1:",
                       "127.0.0.1:0",
                       "127.0.0.1:65536",
                       "127.0.0.1:99999999",
                       "127.0.0.1:-1",
                       "127.0.0.1:+80",
                       "127.0.0.1:80x",
                       "localhost:8080",
                       "256.0.0.1:80",
                       "::1:8080",
                       "[::1]8080",
                       "[::1]:",
                       "[127.0.0.1]:80",
                       "[::1:80",
                       "[fe80::1%eth0]:80",
                       ":8080",
                       " 127.0.0.1:80"};
  for (const char* s : bad) {
    Result<ListenAddress> a = ListenAddress::parse(s);
    EXPECT_FALSE(a.ok()) << s;
    if (!a.ok()) {
      EXPECT_EQ(a.error().code, Errc::Invalid);
      EXPECT_STRNE(a.error().context, "") << s;
    }
  }
}

TEST(Cidr, Parses) {
  struct Case {
    const char* text;
    bool v6;
    int prefix;
  } cases[] = {
      {"10.0.0.0/8", false, 8},      {"0.0.0.0/0", false, 0},  {"192.168.1.10", false, 32},
      {"192.168.1.10/32", false, 32}, {"::1/128", true, 128},  {"::1", true, 128},
      {"fc00::/7", true, 7},          {"::/0", true, 0},        {"::ffff:10.0.0.0/104", true, 104},
  };
  for (const Case& c : cases) {
    Result<Cidr> r = Cidr::parse(c.text);
    ASSERT_TRUE(r.ok()) << c.text;
    EXPECT_EQ(r->v6, c.v6) << c.text;
    EXPECT_EQ(r->prefix, c.prefix) << c.text;
    EXPECT_EQ(r->text, c.text);
  }
}

TEST(Cidr, RejectsBad) {
  const char* bad[] = {"",           "10.0.0.0/",   "10.0.0.0/33",  "10.0.0.0/-1", "10.0.0.0/8x", "::/129",
                       "10.0.0.1/8", "fc00::1/7",   "10.0.0/8",     "host/8",      "10.0.0.0 /8", "/8",
                       "10.0.0.0/08/8"};
  for (const char* s : bad) EXPECT_FALSE(Cidr::parse(s).ok()) << s;
}

TEST(Cidr, Contains) {
  struct Case {
    const char* range;
    const char* addr;
    bool in;
  } cases[] = {
      {"10.0.0.0/8", "10.1.2.3", true},
      {"10.0.0.0/8", "11.0.0.0", false},
      {"10.0.0.0/8", "9.255.255.255", false},
      {"172.16.0.0/12", "172.31.255.255", true},
      {"172.16.0.0/12", "172.32.0.0", false},
      {"192.168.1.10", "192.168.1.10", true},
      {"192.168.1.10", "192.168.1.11", false},
      {"0.0.0.0/0", "8.8.8.8", true},
      {"0.0.0.0/0", "::1", false},
      {"::1/128", "::1", true},
      {"::1/128", "::2", false},
      {"::1/128", "127.0.0.1", false},
      {"fc00::/7", "fd12:3456::1", true},
      {"fc00::/7", "fe00::1", false},
      {"fe80::/10", "fe80::abcd", true},
      {"fe80::/10", "febf::1", true},
      {"fe80::/10", "fec0::1", false},
      // v4-mapped v6 clients (a dual-stack listener) match v4 ranges...
      {"10.0.0.0/8", "::ffff:10.9.8.7", true},
      {"10.0.0.0/8", "::ffff:11.9.8.7", false},
      {"127.0.0.0/8", "::ffff:127.0.0.1", true},
      // ...but other v6 addresses whose last bytes look alike do not.
      {"10.0.0.0/8", "::10.9.8.7", false},
      {"10.0.0.0/8", "64:ff9b::a09:807", false},
      // And a v4 client matches a range written in mapped form.
      {"::ffff:10.0.0.0/104", "10.1.2.3", true},
      {"::ffff:10.0.0.0/104", "11.1.2.3", false},
      {"::/0", "10.1.2.3", true},
  };
  for (const Case& c : cases) {
    Result<Cidr> r = Cidr::parse(c.range);
    ASSERT_TRUE(r.ok()) << c.range;
    sockaddr_storage ss = sockaddrOf(c.addr);
    EXPECT_EQ(r->contains(reinterpret_cast<const sockaddr*>(&ss)), c.in) << c.range << " vs " << c.addr;
  }
}

TEST(Cidr, OtherFamiliesAndNullNeverMatch) {
  Result<Cidr> all = Cidr::parse("0.0.0.0/0");
  ASSERT_TRUE(all.ok());
  EXPECT_FALSE(all->contains(nullptr));
  sockaddr_un un;
  std::memset(&un, 0, sizeof un);
  un.sun_family = AF_UNIX;
  EXPECT_FALSE(all->contains(reinterpret_cast<const sockaddr*>(&un)));
}

TEST(IsLoopback, OnlyTheBoxItself) {
  const struct {
    const char* ip;
    bool loopback;
  } cases[] = {
      {"127.0.0.1", true},       {"127.255.255.254", true}, {"::1", true},       {"::ffff:127.0.0.1", true},
      {"128.0.0.1", false},      {"10.0.0.1", false},       {"192.0.2.2", false}, {"::2", false},
      {"::ffff:10.0.0.1", false}, {"::", false},            {"0.0.0.0", false},   {"fe80::1", false},
  };
  for (const auto& c : cases) {
    sockaddr_storage ss = sockaddrOf(c.ip);
    EXPECT_EQ(isLoopback(reinterpret_cast<const sockaddr*>(&ss)), c.loopback) << c.ip;
  }
  EXPECT_FALSE(isLoopback(nullptr));
}

TEST(Cidr, AnyContains) {
  std::vector<Cidr> ranges = {*Cidr::parse("10.0.0.0/8"), *Cidr::parse("::1/128")};
  sockaddr_storage in4 = sockaddrOf("10.2.3.4"), in6 = sockaddrOf("::1"), out = sockaddrOf("8.8.8.8");
  EXPECT_TRUE(anyContains(ranges, reinterpret_cast<const sockaddr*>(&in4)));
  EXPECT_TRUE(anyContains(ranges, reinterpret_cast<const sockaddr*>(&in6)));
  EXPECT_FALSE(anyContains(ranges, reinterpret_cast<const sockaddr*>(&out)));
  EXPECT_FALSE(anyContains({}, reinterpret_cast<const sockaddr*>(&in4)));
}

TEST(HostPattern, Normalizes) {
  struct Case {
    const char* in;
    const char* out;
  } cases[] = {
      {"swcdn.apple.com", "swcdn.apple.com"},
      {"SWCDN.Apple.COM", "swcdn.apple.com"},
      {"*.cdn-apple.com", "*.cdn-apple.com"},
      {"*.CDN-Apple.com.", "*.cdn-apple.com"},
      {"localhost", "localhost"},
      {"127.0.0.1", "127.0.0.1"},
      {"under_score.example", "under_score.example"},
  };
  for (const Case& c : cases) {
    Result<std::string> r = normalizeHostPattern(c.in);
    ASSERT_TRUE(r.ok()) << c.in;
    EXPECT_EQ(*r, c.out);
  }
}

TEST(HostPattern, RejectsBad) {
  const char* bad[] = {"",        "*",           ".",         "a..b",         ".apple.com", "apple.com..",
                       "a b.com", "apple.com:80", "*.",       "**.apple.com", "a.*.com",    "*apple.com",
                       "apple.*", "[::1]",       "http://a.b"};
  for (const char* s : bad) EXPECT_FALSE(normalizeHostPattern(s).ok()) << "'" << s << "'";
  EXPECT_FALSE(normalizeHostPattern(std::string(64, 'a') + ".com").ok());  // label over 63
  EXPECT_TRUE(normalizeHostPattern(std::string(63, 'a') + ".com").ok());
  EXPECT_FALSE(normalizeHostName("*.apple.com").ok());
  EXPECT_EQ(*normalizeHostName("SWCDN.apple.com."), "swcdn.apple.com");
}

TEST(HostMatcher, Matches) {
  HostMatcher m({"swcdn.apple.com", "*.cdn-apple.com", "MESU.apple.com"});
  struct Case {
    const char* host;
    bool match;
  } cases[] = {
      {"swcdn.apple.com", true},
      {"SWCDN.APPLE.COM", true},
      {"swcdn.apple.com.", true},
      {"mesu.apple.com", true},
      {"updates.cdn-apple.com", true},
      {"a.b.cdn-apple.com", true},
      {"Updates.CDN-Apple.com.", true},
      {"cdn-apple.com", false},
      {"cdn-apple.com.", false},
      {"xcdn-apple.com", false},
      {".cdn-apple.com", false},
      {"a..cdn-apple.com", false},
      {"evil.com.cdn-apple.com.evil", false},
      {"swcdn.apple.com:80", false},
      {"a:80.cdn-apple.com", false},
      {"www.swcdn.apple.com", false},
      {"apple.com", false},
      {"", false},
      {".", false},
      {"swcdn.apple.com..", false},
  };
  for (const Case& c : cases) EXPECT_EQ(m.matches(c.host), c.match) << "'" << c.host << "'";
  EXPECT_FALSE(m.empty());
}

TEST(HostMatcher, EmptyMatchesNothing) {
  HostMatcher m;
  EXPECT_TRUE(m.empty());
  EXPECT_FALSE(m.matches("swcdn.apple.com"));
  HostMatcher invalidOnly({"*", "a b"});
  EXPECT_TRUE(invalidOnly.empty());
}

}  // namespace
}  // namespace orchard::config
