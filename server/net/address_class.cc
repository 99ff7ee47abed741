// Address classes (see address_class.h). The hard part is IPv6 spellings of
// IPv4 addresses: ::ffff:127.0.0.1 reaches the loopback as surely as
// 127.0.0.1 does, so every form that embeds an IPv4 address is classed by
// that address, never as a public IPv6 one.
#include "server/net/address_class.h"

#include <netinet/in.h>
#include <uv.h>

#include <cstring>

namespace orchard::server {
namespace {

AddressClass classifyV4(const uint8_t a[4]) noexcept {
  const uint32_t v = (uint32_t{a[0]} << 24) | (uint32_t{a[1]} << 16) | (uint32_t{a[2]} << 8) | a[3];
  auto in = [v](uint32_t net, int prefix) { return (v >> (32 - prefix)) == (net >> (32 - prefix)); };
  if (in(0x00000000, 8)) return AddressClass::Unspecified;  // "this network": 0.0.0.0 dials the loopback on Linux
  if (in(0x7f000000, 8)) return AddressClass::Loopback;
  if (in(0x0a000000, 8) || in(0xac100000, 12) || in(0xc0a80000, 16)) return AddressClass::Private;
  if (in(0x64400000, 10)) return AddressClass::SharedCgnat;
  if (in(0xa9fe0000, 16)) return AddressClass::LinkLocal;
  if (in(0xe0000000, 4)) return AddressClass::Multicast;
  if (in(0xf0000000, 4)) return AddressClass::Reserved;  // 240/4 and 255.255.255.255
  return AddressClass::Public;
}

bool allZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != 0) return false;
  return true;
}

// The IPv4 address an IPv6 address carries (mapped, compatible, NAT64,
// 6to4), or false.
bool embeddedV4(const uint8_t b[16], uint8_t out[4]) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static constexpr uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(b, kMapped, 12) == 0 || std::memcmp(b, kNat64, 12) == 0 || allZero(b, 12)) {
    std::memcpy(out, b + 12, 4);
    return true;
  }
  if (b[0] == 0x20 && b[1] == 0x02) {  // 6to4: 2002:aabb:ccdd::/48
    std::memcpy(out, b + 2, 4);
    return true;
  }
  return false;
}

AddressClass classifyV6(const uint8_t b[16]) noexcept {
  if (allZero(b, 16)) return AddressClass::Unspecified;
  if (allZero(b, 15) && b[15] == 1) return AddressClass::Loopback;
  uint8_t v4[4];
  if (embeddedV4(b, v4)) return classifyV4(v4);
  if (b[0] == 0xff) return AddressClass::Multicast;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return AddressClass::LinkLocal;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return AddressClass::Private;  // site-local (deprecated)
  if ((b[0] & 0xfe) == 0xfc) return AddressClass::Private;                  // unique local
  return AddressClass::Public;
}

// An address as 16 bytes, IPv4 as ::ffff:a.b.c.d, for comparisons.
bool asV6(const sockaddr* a, uint8_t out[16]) {
  if (!a) return false;
  if (a->sa_family == AF_INET) {
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    std::memcpy(out, kMapped, 12);
    std::memcpy(out + 12, &reinterpret_cast<const sockaddr_in*>(a)->sin_addr, 4);
    return true;
  }
  if (a->sa_family == AF_INET6) {
    std::memcpy(out, &reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr, 16);
    return true;
  }
  return false;
}

}  // namespace

const char* addressClassName(AddressClass c) noexcept {
  switch (c) {
#define ORCHARD_ADDRESS_NAME(name, text) \
  case AddressClass::name: return text;
    ORCHARD_ADDRESS_CLASSES(ORCHARD_ADDRESS_NAME)
#undef ORCHARD_ADDRESS_NAME
  }
  return "?";
}

AddressClass classifyAddress(const sockaddr* addr) noexcept {
  if (!addr) return AddressClass::Invalid;
  if (addr->sa_family == AF_INET) {
    uint8_t b[4];
    std::memcpy(b, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, 4);
    return classifyV4(b);
  }
  if (addr->sa_family == AF_INET6) {
    uint8_t b[16];
    std::memcpy(b, &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, 16);
    return classifyV6(b);
  }
  return AddressClass::Invalid;
}

AddressClass classifyAddress(const sockaddr* addr, std::span<const sockaddr_storage> own) noexcept {
  AddressClass c = classifyAddress(addr);
  if (c != AddressClass::Public) return c;
  for (const sockaddr_storage& o : own)
    if (sameAddress(addr, reinterpret_cast<const sockaddr*>(&o))) return AddressClass::Own;
  return c;
}

bool sameAddress(const sockaddr* a, const sockaddr* b) noexcept {
  uint8_t x[16], y[16];
  return asV6(a, x) && asV6(b, y) && std::memcmp(x, y, 16) == 0;
}

const std::vector<sockaddr_storage>& ownAddresses() {
  thread_local std::vector<sockaddr_storage> cached;
  thread_local uint64_t readAtMs = 0;
  thread_local bool read = false;
  const uint64_t now = uv_hrtime() / 1'000'000;
  if (read && now - readAtMs < kOwnRefreshMs) return cached;
  read = true;
  readAtMs = now;
  cached.clear();
  uv_interface_address_t* list = nullptr;
  int n = 0;
  if (uv_interface_addresses(&list, &n) != 0) return cached;
  for (int i = 0; i < n; ++i) {
    sockaddr_storage ss;
    std::memset(&ss, 0, sizeof ss);
    if (list[i].address.address4.sin_family == AF_INET)
      std::memcpy(&ss, &list[i].address.address4, sizeof(sockaddr_in));
    else if (list[i].address.address6.sin6_family == AF_INET6)
      std::memcpy(&ss, &list[i].address.address6, sizeof(sockaddr_in6));
    else
      continue;
    cached.push_back(ss);
  }
  uv_free_interface_addresses(list, n);
  return cached;
}

}  // namespace orchard::server
