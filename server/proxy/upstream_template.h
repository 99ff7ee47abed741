// The request template of a proxied request's fills; see upstream_template.cc.
#pragma once

#include <memory>
#include <string>

#include "server/http/message.h"
#include "server/proxy/fill_driver.h"
#include "server/proxy/router.h"

namespace orchard::server {

// `primaryKey`: the URI's cache key (before any Vary variant). `shared`:
// the template is for a shared fill (client ranges and conditionals dropped).
// `nodes`: the box has parents or peers (the content-cache form target is
// made for them); `fromPeer`: the client is a peer box.
std::shared_ptr<const UpstreamTemplate> makeUpstreamTemplate(const RequestHead& req, const Route& route,
                                                             const std::string& primaryKey,
                                                             const std::string& viaName, bool shared,
                                                             bool nodes = false, bool fromPeer = false);

// Apple's content-cache form of an origin-form target: `target` with
// `source=host[:port]` (the port when not the scheme's default) and, for
// https, `sourceScheme=https` added to its query. Pure.
std::string contentCacheTarget(std::string_view target, std::string_view scheme, std::string_view host,
                               uint16_t port);

}  // namespace orchard::server
