// Network values found in the config: listen/connect addresses, client
// address ranges (CIDR) and upstream host patterns. Pure parsing and
// matching: nothing here opens a socket or resolves a name. This is the only
// config/ file that uses the socket headers (inet_pton, sockaddr layouts),
// and only in net.cc; callers pass a `const sockaddr*` they got from libuv.
//
// All types are plain values, safe to copy between threads once built.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/result.h"

struct sockaddr;

namespace orchard::config {

// A numeric "addr:port" or "[v6]:port". Used for listeners and for
// upstream.resolve targets. Host names are not accepted: a listener binds an
// address and resolve exists to bypass DNS.
struct ListenAddress {
  std::string host;   // numeric address without brackets: "127.0.0.1", "::1"
  uint16_t port = 0;  // 1..65535
  bool v6 = false;    // host is an IPv6 literal
  std::string text;   // as written in the config, for logs and messages

  // Errors are Errc::Invalid with a context fit for "<context>, got \"x\"".
  static Result<ListenAddress> parse(std::string_view s);
  bool operator==(const ListenAddress&) const = default;
};

// A parent or peer cache (upstream.parents, upstream.peers, catalog.follow's
// host): "host:port" (plain HTTP), "http://host[:port]" or
// "https://host[:port]" (default ports 80 and 443; one trailing "/" is
// allowed, nothing else after the authority). host is a name, an IPv4
// address or a bracketed IPv6 one.
struct CacheNode {
  bool tls = false;
  std::string host;   // lower-case name or numeric address, without brackets
  uint16_t port = 0;
  std::string text;   // as written
  // "host:port" ("[v6]:port"): the node's name in rendezvous hashing, logs,
  // /api/v1/status and metrics labels (the same on every box that lists it).
  std::string id() const;
  static Result<CacheNode> parse(std::string_view s);
  bool operator==(const CacheNode&) const = default;
};

// An address range: "10.0.0.0/8", "::1/128", or a bare address (/32, /128).
// Bits beyond the prefix must be zero ("10.0.0.1/8" is rejected as a likely
// typo).
struct Cidr {
  bool v6 = false;
  uint8_t prefix = 0;               // 0..32 for v4, 0..128 for v6
  std::array<uint8_t, 16> bytes{};  // network order; a v4 range uses the first 4
  std::string text;                 // as written

  static Result<Cidr> parse(std::string_view s);
  // True when the socket address (AF_INET or AF_INET6) lies in the range.
  // A v4-mapped v6 address (::ffff:a.b.c.d) is matched as a.b.c.d against v4
  // ranges, and a v4 address as ::ffff:a.b.c.d against v6 ranges. Null or any
  // other family: false.
  bool contains(const struct sockaddr* addr) const;
  bool operator==(const Cidr&) const = default;
};

// True when any range contains addr (the access.allow_clients check).
bool anyContains(const std::vector<Cidr>& ranges, const struct sockaddr* addr);
// True for a loopback address: 127.0.0.0/8, ::1, and ::ffff:127.0.0.0/104
// (a client on the box itself). Null or another family: false.
bool isLoopback(const struct sockaddr* addr);

// Validates and lower-cases an upstream host pattern: an exact name
// ("swcdn.apple.com") or a leading wildcard label ("*.cdn-apple.com"). One
// trailing dot is dropped. Rejects empty labels, spaces, ports, "*" alone and
// wildcards anywhere but the first label.
Result<std::string> normalizeHostPattern(std::string_view pattern);
// The same for an exact name (no wildcard), e.g. an upstream.resolve key.
Result<std::string> normalizeHostName(std::string_view name);

// Matches request hosts against upstream.allow. Exact patterns match the
// same name; "*.example.com" matches any name with at least one more label
// ("a.example.com", "a.b.example.com") but not "example.com" itself.
// Case-insensitive; one trailing dot on the host is ignored. The host must
// not carry a port (strip it first): "swcdn.apple.com:80" never matches.
class HostMatcher {
 public:
  HostMatcher() = default;
  // Patterns are expected to be normalized already (as Config holds them);
  // they are lower-cased again here, and invalid ones are ignored.
  explicit HostMatcher(const std::vector<std::string>& patterns);
  bool matches(std::string_view host) const;
  bool empty() const { return exact_.empty() && suffixes_.empty(); }

 private:
  std::unordered_set<std::string> exact_;  // "swcdn.apple.com"
  std::vector<std::string> suffixes_;      // ".cdn-apple.com" for "*.cdn-apple.com"
};

}  // namespace orchard::config
