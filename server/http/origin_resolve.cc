// resolveOrigin(); see origin_resolve.h for the rule. The hard part is the
// getaddrinfo request's lifetime: it lives in its own heap box with the
// callback and the policy it checks against (copied: a reload may replace
// the options while DNS is out), freed in its own completion.
#include "server/http/origin_resolve.h"

#include <netdb.h>
#include <uv.h>

#include <cstring>

#include "config/net.h"

namespace orchard::server {
namespace {

struct Lookup {
  uv_getaddrinfo_t req;
  ResolveDone done;
  std::vector<config::Cidr> allowPrivate;
  bool anyAddress = false;
};

}  // namespace

const char* refusalContext(AddressClass c) noexcept {
  switch (c) {
#define ORCHARD_REFUSAL(name, text)                                                                       \
  case AddressClass::name:                                                                                \
    return "origin address refused: the name resolves to an address that is " text                       \
           "; name the host in upstream.resolve or its range in upstream.allow_private to allow it";
    ORCHARD_ADDRESS_CLASSES(ORCHARD_REFUSAL)
#undef ORCHARD_REFUSAL
  }
  return "origin address refused";
}

bool dialAllowed(const sockaddr* addr, const std::vector<config::Cidr>& allowPrivate, AddressClass* cls) {
  *cls = classifyAddress(addr, ownAddresses());
  if (*cls == AddressClass::Public) return true;
  if (*cls == AddressClass::Invalid) return false;
  return config::anyContains(allowPrivate, addr);
}

void resolveOrigin(Worker* worker, const std::string& host, uint16_t port, const UpstreamOptions& options,
                   bool anyAddress, ResolveDone done) {
  auto it = options.resolve.find(host);
  if (it != options.resolve.end()) {
    ResolvedOrigin o;
    std::memset(&o.addr, 0, sizeof o.addr);
    o.named = true;
    const auto& [addr, namedPort] = it->second;
    int rc = addr.find(':') != std::string::npos
                 ? uv_ip6_addr(addr.c_str(), namedPort, reinterpret_cast<sockaddr_in6*>(&o.addr))
                 : uv_ip4_addr(addr.c_str(), namedPort, reinterpret_cast<sockaddr_in*>(&o.addr));
    // Answered on the next tick: never inside the call.
    worker->post([done = std::move(done), o, rc] {
      if (rc != 0) done(uvError(rc, "upstream: bad resolve address"), AddressClass::Public);
      else done(o, AddressClass::Public);
    });
    return;
  }
  auto* l = new Lookup{};
  l->done = std::move(done);
  l->allowPrivate = options.allowPrivate;
  l->anyAddress = anyAddress || (!options.namedHost.empty() && host == options.namedHost && port == options.namedPort);
  l->req.data = l;
  struct addrinfo hints;
  std::memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  const std::string service = std::to_string(port);
  int rc = uv_getaddrinfo(
      worker->loop(), &l->req,
      [](uv_getaddrinfo_t* g, int status, struct addrinfo* res) {
        auto* l = static_cast<Lookup*>(g->data);
        ResolveDone done = std::move(l->done);
        if (status != 0 || !res) {
          delete l;
          if (res) uv_freeaddrinfo(res);
          done(uvError(status ? status : UV_EAI_NONAME, "upstream: resolve"), AddressClass::Public);
          return;
        }
        AddressClass first = AddressClass::Invalid;
        const struct addrinfo* pick = nullptr;
        for (const struct addrinfo* a = res; a && !pick; a = a->ai_next) {
          AddressClass cls;
          if (l->anyAddress || dialAllowed(a->ai_addr, l->allowPrivate, &cls)) pick = a;
          else if (a == res) first = cls;
        }
        ResolvedOrigin o;
        std::memset(&o.addr, 0, sizeof o.addr);
        if (pick) std::memcpy(&o.addr, pick->ai_addr, pick->ai_addrlen);
        uv_freeaddrinfo(res);
        delete l;
        if (pick) done(o, AddressClass::Public);
        else done(Error{Errc::Invalid, 0, refusalContext(first)}, first);
      },
      host.c_str(), service.c_str(), &hints);
  if (rc != 0) {
    ResolveDone d = std::move(l->done);
    delete l;
    worker->post([d = std::move(d), rc] { d(uvError(rc, "upstream: resolve"), AddressClass::Public); });
  }
}

}  // namespace orchard::server
