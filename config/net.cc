// Parsing and matching of the config's network values (see net.h). The
// socket headers are used for inet_pton and the sockaddr layouts only.
#include "config/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace orchard::config {
namespace {

Error invalid(const char* context) { return Error{Errc::Invalid, 0, context}; }

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Parses a decimal number made of digits only, at most `max`.
bool parseSmallUint(std::string_view s, unsigned max, unsigned* out) {
  if (!allDigits(s) || s.size() > 6) return false;
  unsigned v = 0;
  for (char c : s) v = v * 10 + static_cast<unsigned>(c - '0');
  if (v > max) return false;
  *out = v;
  return true;
}

// inet_pton into 16 bytes; v4 fills the first 4. The input needs a NUL.
bool parseIp(std::string_view s, bool* v6, std::array<uint8_t, 16>* bytes) {
  if (s.empty() || s.size() > INET6_ADDRSTRLEN) return false;
  std::string z(s);
  bytes->fill(0);
  if (z.find(':') != std::string::npos) {
    *v6 = true;
    return inet_pton(AF_INET6, z.c_str(), bytes->data()) == 1;
  }
  *v6 = false;
  return inet_pton(AF_INET, z.c_str(), bytes->data()) == 1;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

// Checks a host name (no wildcard), already lower-cased, without trailing dot.
const char* checkName(std::string_view name) {
  if (name.empty()) return "expected a host name like \"swcdn.apple.com\"";
  if (name.size() > 253) return "host name longer than 253 characters";
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string_view label = name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) return "host name has an empty label";
    if (label.size() > 63) return "host name label longer than 63 characters";
    for (char c : label) {
      bool okChar = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
      if (!okChar) {
        if (c == '*') return "a wildcard is only allowed as the whole first label (\"*.example.com\")";
        if (c == ':') return "host names take no port";
        return "host name has a character other than letters, digits, '-', '_' and '.'";
      }
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return nullptr;
}

std::string_view dropTrailingDot(std::string_view s) {
  if (s.size() > 1 && s.back() == '.') s.remove_suffix(1);
  return s;
}

}  // namespace

Result<ListenAddress> ListenAddress::parse(std::string_view s) {
  static const char* kShape = "expected an address like \"127.0.0.1:8080\" or \"[::1]:8080\"";
  ListenAddress a;
  a.text = std::string(s);
  std::string_view host, port;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') return invalid(kShape);
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    if (host.find(':') == std::string_view::npos) return invalid("brackets are for IPv6 addresses only");
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string_view::npos) return invalid(kShape);
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return invalid("IPv6 addresses need brackets, like \"[::1]:8080\"");
  }
  unsigned p = 0;
  if (!parseSmallUint(port, 65535, &p) || p == 0) return invalid("port must be between 1 and 65535");
  std::array<uint8_t, 16> bytes;
  bool v6 = false;
  if (!parseIp(host, &v6, &bytes)) return invalid("expected a numeric IPv4 or IPv6 address before the port");
  a.host = std::string(host);
  a.port = static_cast<uint16_t>(p);
  a.v6 = v6;
  return a;
}

std::string CacheNode::id() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<CacheNode> CacheNode::parse(std::string_view s) {
  CacheNode n;
  n.text = std::string(s);
  std::string_view rest = s;
  bool scheme = false;
  if (rest.substr(0, 7) == "http://") {
    rest.remove_prefix(7);
    scheme = true;
  } else if (rest.substr(0, 8) == "https://") {
    rest.remove_prefix(8);
    n.tls = true;
    scheme = true;
  } else if (rest.find("://") != std::string_view::npos) {
    return invalid("expected \"host:port\", \"http://host[:port]\" or \"https://host[:port]\"");
  }
  if (scheme && !rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@ ") != std::string_view::npos)
    return invalid("a parent or peer is a host and port only (no path, query, user or spaces)");
  std::string_view host = rest, port;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return invalid("no closing ']' after an IPv6 address");
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return invalid("expected ':' and a port after ']'");
      port = after.substr(1);
      if (port.empty()) return invalid("port must be between 1 and 65535");
    }
    std::array<uint8_t, 16> bytes;
    bool v6 = false;
    if (!parseIp(host, &v6, &bytes) || !v6) return invalid("brackets are for IPv6 addresses only");
    n.host = std::string(host);
  } else {
    size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos) {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
      if (port.empty()) return invalid("port must be between 1 and 65535");
    }
    if (host.find(':') != std::string_view::npos) return invalid("IPv6 addresses need brackets, like \"[::1]:8080\"");
    auto name = normalizeHostName(host);
    if (!name) return invalid("the host is not a valid name or address");
    n.host = std::move(*name);
  }
  if (port.empty()) {
    if (!scheme) return invalid("expected \"host:port\" (or a URL: \"http://host\", \"https://host\")");
    n.port = n.tls ? 443 : 80;
  } else {
    unsigned p = 0;
    if (!parseSmallUint(port, 65535, &p) || p == 0) return invalid("port must be between 1 and 65535");
    n.port = static_cast<uint16_t>(p);
  }
  return n;
}

Result<Cidr> Cidr::parse(std::string_view s) {
  Cidr c;
  c.text = std::string(s);
  std::string_view addr = s;
  std::string_view len;
  size_t slash = s.find('/');
  if (slash != std::string_view::npos) {
    addr = s.substr(0, slash);
    len = s.substr(slash + 1);
  }
  bool v6 = false;
  if (!parseIp(addr, &v6, &c.bytes)) return invalid("expected an address range like \"10.0.0.0/8\" or \"::1/128\"");
  c.v6 = v6;
  unsigned maxLen = v6 ? 128 : 32;
  unsigned prefix = maxLen;
  if (slash != std::string_view::npos && !parseSmallUint(len, maxLen, &prefix)) {
    return invalid(v6 ? "prefix length must be between 0 and 128" : "prefix length must be between 0 and 32");
  }
  c.prefix = static_cast<uint8_t>(prefix);
  for (unsigned bit = prefix; bit < maxLen; ++bit) {
    if (c.bytes[bit / 8] & (0x80u >> (bit % 8))) return invalid("address has bits set beyond the prefix length");
  }
  return c;
}

namespace {

// Compares the first `prefix` bits.
bool prefixEqual(const uint8_t* a, const uint8_t* b, unsigned prefix) {
  unsigned full = prefix / 8;
  if (std::memcmp(a, b, full) != 0) return false;
  unsigned rest = prefix % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xFFu << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

const uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};

}  // namespace

bool Cidr::contains(const struct sockaddr* addr) const {
  if (addr == nullptr) return false;
  uint8_t v4[4];
  uint8_t v6bytes[16];
  bool haveV4 = false, haveV6 = false;
  if (addr->sa_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(addr);
    std::memcpy(v4, &sin->sin_addr, 4);
    haveV4 = true;
    std::memcpy(v6bytes, kMappedPrefix, 12);
    std::memcpy(v6bytes + 12, v4, 4);
    haveV6 = true;
  } else if (addr->sa_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(addr);
    std::memcpy(v6bytes, &sin6->sin6_addr, 16);
    haveV6 = true;
    if (std::memcmp(v6bytes, kMappedPrefix, 12) == 0) {
      std::memcpy(v4, v6bytes + 12, 4);
      haveV4 = true;
    }
  } else {
    return false;
  }
  if (v6) return haveV6 && prefixEqual(bytes.data(), v6bytes, prefix);
  return haveV4 && prefixEqual(bytes.data(), v4, prefix);
}

bool isLoopback(const struct sockaddr* addr) {
  if (addr == nullptr) return false;
  if (addr->sa_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(addr);
    return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
  }
  if (addr->sa_family != AF_INET6) return false;
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(addr);
  const uint8_t* b = sin6->sin6_addr.s6_addr;
  if (std::memcmp(b, kMappedPrefix, 12) == 0) return b[12] == 127;  // ::ffff:127.x.y.z
  static const uint8_t kOne[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return std::memcmp(b, kOne, 16) == 0;
}

bool anyContains(const std::vector<Cidr>& ranges, const struct sockaddr* addr) {
  for (const Cidr& c : ranges) {
    if (c.contains(addr)) return true;
  }
  return false;
}

Result<std::string> normalizeHostName(std::string_view name) {
  std::string n = lowerCopy(dropTrailingDot(name));
  if (const char* why = checkName(n)) return invalid(why);
  return n;
}

Result<std::string> normalizeHostPattern(std::string_view pattern) {
  std::string n = lowerCopy(dropTrailingDot(pattern));
  if (n == "*") return invalid("a bare \"*\" would allow every host; use \"*.example.com\"");
  std::string_view rest = n;
  if (rest.size() >= 2 && rest[0] == '*' && rest[1] == '.') rest.remove_prefix(2);
  if (const char* why = checkName(rest)) return invalid(why);
  return n;
}

HostMatcher::HostMatcher(const std::vector<std::string>& patterns) {
  for (const std::string& p : patterns) {
    Result<std::string> n = normalizeHostPattern(p);
    if (!n.ok()) continue;
    if (n->size() > 2 && (*n)[0] == '*') {
      suffixes_.push_back(n->substr(1));  // keeps the dot: ".cdn-apple.com"
    } else {
      exact_.insert(std::move(*n));
    }
  }
}

bool HostMatcher::matches(std::string_view host) const {
  std::string h = lowerCopy(dropTrailingDot(host));
  // Anything that is not a plain host name (a port, a slash, an empty label,
  // a '*') never matches, so "a:1.cdn-apple.com" cannot slip through a suffix.
  if (checkName(h) != nullptr) return false;
  if (exact_.count(h) != 0) return true;
  for (const std::string& suffix : suffixes_) {
    // Longer than the suffix: at least one label before ".cdn-apple.com".
    if (h.size() > suffix.size() && h.compare(h.size() - suffix.size(), suffix.size(), suffix) == 0) return true;
  }
  return false;
}

}  // namespace orchard::config
