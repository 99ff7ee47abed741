// Tests for server/net/address_class and the dial rule of
// server/http/origin_resolve (dialAllowed): which addresses an origin name
// may resolve to. Tables over IPv4, IPv6 and every IPv6 spelling of an IPv4
// address (a v4-mapped ::ffff:127.0.0.1 is loopback, not a public IPv6
// address), the box's own addresses, and upstream.allow_private.
#include "server/net/address_class.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <uv.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "config/net.h"
#include "server/http/origin_resolve.h"
#include "server/http/upstream.h"
#include "server/net/loop.h"

namespace orchard::server {
namespace {

using C = AddressClass;

sockaddr_storage addr(const std::string& text) {
  sockaddr_storage ss;
  std::memset(&ss, 0, sizeof ss);
  if (text.find(':') != std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(443);
    EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), &a->sin6_addr), 1) << text;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(443);
    EXPECT_EQ(inet_pton(AF_INET, text.c_str(), &a->sin_addr), 1) << text;
  }
  return ss;
}

const sockaddr* sa(const sockaddr_storage& ss) { return reinterpret_cast<const sockaddr*>(&ss); }

struct ClassCase {
  const char* address;
  AddressClass want;
};

TEST(AddressClass, Table) {
  const ClassCase cases[] = {
      // IPv4 public
      {"17.253.144.10", C::Public},  // Apple
      {"8.8.8.8", C::Public},
      {"1.1.1.1", C::Public},
      {"100.63.255.255", C::Public},   // just below 100.64/10
      {"100.128.0.0", C::Public},      // just above it
      {"172.15.255.255", C::Public},   // just below 172.16/12
      {"172.32.0.0", C::Public},       // just above it
      {"192.167.255.255", C::Public},
      {"192.169.0.0", C::Public},
      {"169.253.255.255", C::Public},
      {"223.255.255.255", C::Public},  // just below multicast
      {"126.255.255.255", C::Public},
      {"128.0.0.1", C::Public},
      // IPv4 unspecified / "this network" (0.0.0.0 dials the loopback on Linux)
      {"0.0.0.0", C::Unspecified},
      {"0.1.2.3", C::Unspecified},
      // IPv4 loopback, the whole /8
      {"127.0.0.1", C::Loopback},
      {"127.255.255.254", C::Loopback},
      {"127.1.2.3", C::Loopback},
      // RFC 1918
      {"10.0.0.1", C::Private},
      {"10.255.255.255", C::Private},
      {"172.16.0.1", C::Private},
      {"172.31.255.255", C::Private},
      {"192.168.0.1", C::Private},
      {"192.168.255.255", C::Private},
      // CGNAT 100.64/10
      {"100.64.0.1", C::SharedCgnat},
      {"100.127.255.255", C::SharedCgnat},
      // link-local (cloud metadata lives here)
      {"169.254.169.254", C::LinkLocal},
      {"169.254.0.1", C::LinkLocal},
      // multicast, reserved, broadcast
      {"224.0.0.1", C::Multicast},
      {"239.255.255.250", C::Multicast},
      {"240.0.0.1", C::Reserved},
      {"255.255.255.255", C::Reserved},
      // IPv6 public
      {"2620:149:a44::10", C::Public},  // Apple
      {"2001:4860:4860::8888", C::Public},
      {"2a00:1450::1", C::Public},
      // IPv6 unspecified, loopback
      {"::", C::Unspecified},
      {"::1", C::Loopback},
      // v4-mapped: classed by their IPv4 address
      {"::ffff:127.0.0.1", C::Loopback},
      {"::ffff:7f00:1", C::Loopback},
      {"::ffff:10.1.2.3", C::Private},
      {"::ffff:192.168.1.1", C::Private},
      {"::ffff:169.254.169.254", C::LinkLocal},
      {"::ffff:100.64.0.1", C::SharedCgnat},
      {"::ffff:0.0.0.0", C::Unspecified},
      {"::ffff:8.8.8.8", C::Public},
      // v4-compatible (deprecated), NAT64 and 6to4 carry an IPv4 address too
      {"::127.0.0.1", C::Loopback},
      {"::10.0.0.1", C::Private},
      {"64:ff9b::7f00:1", C::Loopback},
      {"64:ff9b::a00:1", C::Private},
      {"64:ff9b::808:808", C::Public},
      {"2002:7f00:1::1", C::Loopback},
      {"2002:c0a8:101::1", C::Private},
      {"2002:808:808::1", C::Public},
      // link-local, ULA, site-local, multicast
      {"fe80::1", C::LinkLocal},
      {"febf:ffff::1", C::LinkLocal},
      {"fc00::1", C::Private},
      {"fd12:3456:789a::1", C::Private},
      {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", C::Private},
      {"fec0::1", C::Private},
      {"ff02::1", C::Multicast},
      {"ff05::1:3", C::Multicast},
      {"fb00::1", C::Public},  // just below fc00::/7
      {"fe00::1", C::Public},  // between fc00::/7 and fe80::/10
  };
  for (const ClassCase& c : cases) {
    sockaddr_storage ss = addr(c.address);
    EXPECT_EQ(classifyAddress(sa(ss)), c.want)
        << c.address << ": " << addressClassName(classifyAddress(sa(ss))) << ", want " << addressClassName(c.want);
  }
}

TEST(AddressClass, NullAndOtherFamilies) {
  EXPECT_EQ(classifyAddress(nullptr), C::Invalid);
  sockaddr_storage ss;
  std::memset(&ss, 0, sizeof ss);
  ss.ss_family = AF_UNIX;
  EXPECT_EQ(classifyAddress(sa(ss)), C::Invalid);
}

TEST(AddressClass, OwnAddresses) {
  const std::vector<sockaddr_storage> own = {addr("203.0.113.7"), addr("2001:db8::7")};
  EXPECT_EQ(classifyAddress(sa(addr("203.0.113.7")), own), C::Own);
  EXPECT_EQ(classifyAddress(sa(addr("::ffff:203.0.113.7")), own), C::Own) << "a mapped spelling of our own address";
  EXPECT_EQ(classifyAddress(sa(addr("2001:db8::7")), own), C::Own);
  EXPECT_EQ(classifyAddress(sa(addr("203.0.113.8")), own), C::Public);
  // A non-public class stays what it is (it is refused either way).
  const std::vector<sockaddr_storage> ownLoop = {addr("127.0.0.1")};
  EXPECT_EQ(classifyAddress(sa(addr("127.0.0.1")), ownLoop), C::Loopback);
}

TEST(AddressClass, SameAddressIgnoresPortAndMapping) {
  sockaddr_storage a = addr("192.0.2.1"), b = addr("::ffff:192.0.2.1");
  reinterpret_cast<sockaddr_in*>(&a)->sin_port = htons(80);
  EXPECT_TRUE(sameAddress(sa(a), sa(b)));
  EXPECT_FALSE(sameAddress(sa(a), sa(addr("192.0.2.2"))));
  EXPECT_FALSE(sameAddress(sa(a), nullptr));
}

TEST(AddressClass, EveryClassHasANameAndARefusal) {
#define ORCHARD_CHECK_NAME(name, text)                                                     \
  EXPECT_STREQ(addressClassName(C::name), text);                                           \
  EXPECT_NE(std::string(refusalContext(C::name)).find(text), std::string::npos) << #name;
  ORCHARD_ADDRESS_CLASSES(ORCHARD_CHECK_NAME)
#undef ORCHARD_CHECK_NAME
}

std::vector<config::Cidr> cidrs(std::initializer_list<const char*> list) {
  std::vector<config::Cidr> out;
  for (const char* s : list) out.push_back(config::Cidr::parse(s).value());
  return out;
}

struct DialCase {
  const char* address;
  std::vector<config::Cidr> allowPrivate;
  bool allowed;
};

TEST(DialAllowed, PublicOrAllowPrivate) {
  const DialCase cases[] = {
      {"17.253.144.10", {}, true},
      {"2620:149:a44::10", {}, true},
      {"127.0.0.1", {}, false},
      {"::1", {}, false},
      {"::ffff:127.0.0.1", {}, false},
      {"10.1.2.3", {}, false},
      {"169.254.169.254", {}, false},
      {"100.64.0.1", {}, false},
      {"fd00::1", {}, false},
      {"0.0.0.0", {}, false},
      {"224.0.0.1", {}, false},
      // upstream.allow_private: a hub box on the company network.
      {"10.1.2.3", cidrs({"10.1.0.0/16"}), true},
      {"10.2.2.3", cidrs({"10.1.0.0/16"}), false},
      {"::ffff:10.1.2.3", cidrs({"10.1.0.0/16"}), true},
      {"127.0.0.1", cidrs({"127.0.0.1/32"}), true},
      {"fd00::1", cidrs({"fd00::/8"}), true},
      {"192.168.1.1", cidrs({"10.0.0.0/8", "::1/128"}), false},
  };
  for (const DialCase& c : cases) {
    sockaddr_storage ss = addr(c.address);
    AddressClass cls;
    EXPECT_EQ(dialAllowed(sa(ss), c.allowPrivate, &cls), c.allowed) << c.address;
  }
}

// resolveOrigin on a loop this thread runs: whether an address literal
// (no DNS server involved) is handed out or refused.
bool resolves(Worker& w, const std::string& host, uint16_t port, const UpstreamOptions& o, bool anyAddress = false) {
  std::optional<bool> ok;
  resolveOrigin(&w, host, port, o, anyAddress, [&](Result<ResolvedOrigin> r, AddressClass) { ok = r.ok(); });
  for (int i = 0; !ok && i < 10'000; ++i) uv_run(w.loop(), UV_RUN_ONCE);
  EXPECT_TRUE(ok.has_value()) << host << ":" << port;
  return ok.value_or(false);
}

TEST(ResolveOrigin, TheFollowedHubIsDialledOnItsOwnPortOnly) {
  Worker w{0};
  UpstreamOptions o;
  EXPECT_FALSE(resolves(w, "127.0.0.1", 8443, o));
  EXPECT_TRUE(resolves(w, "127.0.0.1", 8443, o, /*anyAddress=*/true));  // a parent or peer
  o.namedHost = "127.0.0.1";  // catalog.follow = "https://127.0.0.1:8443"
  o.namedPort = 8443;
  EXPECT_TRUE(resolves(w, "127.0.0.1", 8443, o));
  EXPECT_FALSE(resolves(w, "127.0.0.1", 8444, o));  // another port of the hub's host
  EXPECT_FALSE(resolves(w, "127.0.0.2", 8443, o));  // another host on the hub's port
  EXPECT_FALSE(resolves(w, "10.1.2.3", 8443, o));
}

}  // namespace
}  // namespace orchard::server
