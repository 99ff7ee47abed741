// The box's release and addresses for /api/v1/status: see status_info.h.
#include "server/admin/status_info.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>

#ifndef ORCHARD_VERSION
#error "ORCHARD_VERSION comes from CMakeLists.txt (project VERSION)"
#endif

namespace orchard::server {
namespace {

bool privateV4(uint32_t a) {  // host order
  return (a >> 24) == 10 || (a >> 20) == 0xAC1 || (a >> 16) == 0xC0A8;
}

bool wildcard(const std::string& host) { return host == "0.0.0.0" || host == "::"; }

struct Found {
  std::string text;
  int rank;  // 0 private v4, 1 other v4, 2 global v6
};

std::vector<Found> interfaceAddresses() {
  std::vector<Found> out;
  struct ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (struct ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    char buf[INET6_ADDRSTRLEN] = "";
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      const uint32_t host = ntohl(a->sin_addr.s_addr);
      if ((host >> 24) == 127 || (host >> 16) == 0xA9FE) continue;  // loopback, link-local
      inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
      out.push_back({buf, privateV4(host) ? 0 : 1});
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr) || IN6_IS_ADDR_LOOPBACK(&a->sin6_addr)) continue;
      inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
      out.push_back({buf, 2});
    }
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace

const char* orchardVersion() { return ORCHARD_VERSION; }

std::string primaryLanAddress() {
  std::vector<std::string> all = lanAddresses();
  return all.empty() ? std::string() : all.front();
}

std::vector<std::string> lanAddresses() {
  std::vector<Found> found = interfaceAddresses();
  std::stable_sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.rank < b.rank; });
  std::vector<std::string> out;
  for (const auto& f : found)
    if (std::find(out.begin(), out.end(), f.text) == out.end()) out.push_back(f.text);
  return out;
}

void listenerAddresses(const std::vector<BoundListener>& listeners, std::string* first,
                       std::vector<std::string>* all) {
  first->clear();
  all->clear();
  auto add = [&](const std::string& a) {
    if (std::find(all->begin(), all->end(), a) == all->end()) all->push_back(a);
  };
  std::vector<std::string> lan;
  bool lanRead = false;
  auto lanOf = [&]() -> const std::vector<std::string>& {
    if (!lanRead) lan = lanAddresses();
    lanRead = true;
    return lan;
  };
  // Plain listeners first: Apple's Port and PrivateAddress name the one
  // Macs fetch from.
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& l : listeners) {
      if (l.tls != (pass == 1)) continue;
      if (!wildcard(l.host)) {
        if (first->empty()) *first = l.host;
        add(l.host);
        continue;
      }
      const std::vector<std::string>& mine = lanOf();
      const bool v6 = l.host == "::";
      std::string primary;
      for (const auto& a : mine) {
        if ((a.find(':') != std::string::npos) != v6) continue;
        if (primary.empty()) primary = a;
        add(a);
      }
      if (primary.empty()) primary = mine.empty() ? l.host : mine.front();
      if (first->empty()) *first = primary;
      if (mine.empty()) add(l.host);
    }
  }
}

}  // namespace orchard::server
