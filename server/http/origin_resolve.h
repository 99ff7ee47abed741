// resolveOrigin(): the one address the box dials for an origin host, for
// proxy fetches (UpstreamConn) and CONNECT tunnels (server/proxy/tunnel.h)
// alike, so both obey the same rule:
//   - a host upstream.resolve names is dialled at the address it names, no
//     questions asked (the admin said so: local test origins, a hub box);
//   - otherwise DNS (uv_getaddrinfo) answers, and the first address that is
//     public (server/net/address_class.h), or lies in upstream.allow_private,
//     is the one dialled. When DNS returns none such (an allowed name that
//     resolves to loopback, link-local, private, CGNAT, unspecified,
//     multicast or the box's own addresses), the origin is refused: the box
//     is never a pivot into the network it sits in.
//
// Threading and lifetime: call on the worker's loop thread; `done` runs
// exactly once on that thread, never inside this call (STYLE rule 5), even
// when the caller has meanwhile closed: callers keep themselves alive (a
// reference) until it runs, and check their own state first.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <string>

#include "common/result.h"
#include "server/http/upstream.h"
#include "server/net/address_class.h"
#include "server/net/loop.h"

namespace orchard::server {

struct ResolvedOrigin {
  struct sockaddr_storage addr;  // with the port to dial
  bool named = false;            // upstream.resolve named it (no address check)
};

// refused: Public when the outcome is an address or a DNS/resolve error;
// otherwise the class of the first address DNS gave, every one of which was
// refused (the error's context then says why, for the client's error body).
using ResolveDone = std::function<void(Result<ResolvedOrigin> origin, AddressClass refused)>;

// `anyAddress`: no address is refused (a parent or peer of upstream.parents
// / upstream.peers: the admin named it, as with upstream.resolve). The same
// holds for options.namedHost on options.namedPort (catalog.follow's hub).
void resolveOrigin(Worker* worker, const std::string& host, uint16_t port, const UpstreamOptions& options,
                   bool anyAddress, ResolveDone done);

// Whether DNS may hand out `addr` for an origin: public, or in allowPrivate.
// Pure but for ownAddresses(); the class it falls in goes to *cls.
bool dialAllowed(const struct sockaddr* addr, const std::vector<config::Cidr>& allowPrivate, AddressClass* cls);

// The static error context of a refusal of class `c` ("origin address
// refused: loopback (127.0.0.0/8, ::1); ...").
const char* refusalContext(AddressClass c) noexcept;

}  // namespace orchard::server
