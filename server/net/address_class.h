// Address classes: which addresses an origin name may resolve to before the
// box refuses to dial it (never an SSRF pivot into the branch network, the
// box itself or its loopback services).
//
// classifyAddress() is pure: the range an IPv4 or IPv6 address falls in, by
// the table below. Addresses that carry an IPv4 address inside an IPv6 one
// are classed by that IPv4 address: v4-mapped (::ffff:127.0.0.1 is
// loopback), v4-compatible (::a.b.c.d, deprecated), NAT64 (64:ff9b::/96:
// the gateway would connect to the embedded address) and 6to4 (2002::/16).
// With a list of the box's own addresses, a public address that is one of
// them is Own.
//
// ownAddresses() reads the box's interface addresses (uv_interface_addresses),
// kept per thread for kOwnRefreshMs so a new origin connection costs no
// system call; call it on a loop thread.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <span>
#include <vector>

namespace orchard::server {

// X(name, text): the classes, their names in logs and refusals. Public is
// the only class the box dials without upstream.resolve or
// upstream.allow_private naming it.
#define ORCHARD_ADDRESS_CLASSES(X)                                                    \
  X(Public, "public")                                                                 \
  X(Unspecified, "unspecified (0.0.0.0/8, ::)")                                       \
  X(Loopback, "loopback (127.0.0.0/8, ::1)")                                          \
  X(LinkLocal, "link-local (169.254.0.0/16, fe80::/10)")                              \
  X(Private, "private (10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10)")            \
  X(SharedCgnat, "shared address space (100.64.0.0/10, CGNAT)")                       \
  X(Multicast, "multicast (224.0.0.0/4, ff00::/8)")                                   \
  X(Reserved, "reserved (240.0.0.0/4, broadcast)")                                    \
  X(Own, "one of the box's own addresses")                                            \
  X(Invalid, "not an IPv4 or IPv6 address")

enum class AddressClass : uint8_t {
#define ORCHARD_ADDRESS_ENUM(name, text) name,
  ORCHARD_ADDRESS_CLASSES(ORCHARD_ADDRESS_ENUM)
#undef ORCHARD_ADDRESS_ENUM
};

const char* addressClassName(AddressClass c) noexcept;

// The class of an AF_INET or AF_INET6 socket address (Invalid for null or
// any other family). Never Own.
AddressClass classifyAddress(const struct sockaddr* addr) noexcept;
// The same, and Own for a public address equal to one of `own` (compared
// without port; v4-mapped addresses compare as their IPv4 address).
AddressClass classifyAddress(const struct sockaddr* addr, std::span<const struct sockaddr_storage> own) noexcept;

// Whether two socket addresses name the same IP address (ports ignored;
// ::ffff:a.b.c.d equals a.b.c.d).
bool sameAddress(const struct sockaddr* a, const struct sockaddr* b) noexcept;

constexpr uint64_t kOwnRefreshMs = 10'000;
// The box's interface addresses (every interface, up or not), refreshed at
// most every kOwnRefreshMs per thread. Empty when they cannot be read.
const std::vector<struct sockaddr_storage>& ownAddresses();

}  // namespace orchard::server
