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
std::shared_ptr<const UpstreamTemplate> makeUpstreamTemplate(const RequestHead& req, const Route& route,
                                                             const std::string& primaryKey,
                                                             const std::string& viaName, bool shared);

}  // namespace orchard::server
