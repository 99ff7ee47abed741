// Internal requests: the box's own requests through its proxy path (Apple
// catalog, mirror and prewarm jobs: server/apple/box_fetch.h). One is a
// request from a loopback peer (127.0.0.0/8, ::1, or ::ffff:127.x) carrying
//
//   X-Orchard-Internal: <ServerContext::internalSecret>
//   X-Orchard-Internal: <ServerContext::internalSecret>; capped
//
// The secret is 32 lower-case hex characters made at each start from the
// CSPRNG (Server::start), never logged, in no file; it is compared in
// constant time. What it grants: access.allow_clients does not refuse the
// request (routes.cc), and with `capped` the fill it creates is a mirror fill
// (cache::Fill::setCapped, held to apple.mirror_rate). The header is never
// sent upstream, valid or not (upstream_template.cc).
//
// Cost: nothing on a hit. The header is looked at only when a request would
// be refused by access.allow_clients, or when it creates or joins a fill
// whose cap it may set or lift (transaction.cc).
//
// Anything else than exactly one well-formed header with the right secret
// from a loopback peer is None: a wrong secret, two headers, an unknown
// parameter, an empty secret in the context (no secret made: nothing is
// internal), a peer elsewhere.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "server/http/message.h"

namespace orchard::server {

inline constexpr std::string_view kInternalHeader = "X-Orchard-Internal";
inline constexpr size_t kInternalSecretChars = 32;

enum class InternalKind : uint8_t {
  None,      // an ordinary client
  Internal,  // the box itself
  Capped,    // the box itself, and the fill it starts is a mirror fill
};

// Pure: what one X-Orchard-Internal value says given the secret (the peer
// is not looked at).
InternalKind judgeInternalValue(std::string_view secret, std::string_view value) noexcept;

// The request's kind: the peer must be loopback and the request must carry
// exactly one X-Orchard-Internal header that judgeInternalValue() accepts.
InternalKind internalKind(std::string_view secret, const RequestHead& req, const struct sockaddr* peer) noexcept;

// A fresh secret: kInternalSecretChars lower-case hex characters from
// OpenSSL's CSPRNG; empty when it has no random bytes to give.
std::string makeInternalSecret();

// Whether `s` has the shape of a secret (kInternalSecretChars lower-case
// hex characters): ORCHARD_TEST_INTERNAL_SECRET is checked with it.
bool validInternalSecret(std::string_view s) noexcept;

}  // namespace orchard::server
