// What the status page (/api/v1/status) says about the box itself beyond
// its counters: the release it runs (CMake's project version) and the
// addresses its listeners are reached at. Read on the worker pool (the
// status document is rendered off the loops): getifaddrs() is a netlink
// round trip, cheap but not free, and never on a loop.
#pragma once

#include <string>
#include <vector>

#include "server/context.h"

namespace orchard::server {

// "0.1.0": the project version in CMakeLists.txt.
const char* orchardVersion();

// The box's primary LAN address: the first IPv4 address of an interface
// that is up and not loopback, preferring private ranges (10/8,
// 172.16/12, 192.168/16); else a global IPv6 address; else "" (only
// loopback, or getifaddrs failed).
std::string primaryLanAddress();

// Every address of interfaces that are up and not loopback: private IPv4
// first, then other IPv4, then global IPv6 (interface order within each),
// without duplicates. primaryLanAddress() is the first.
std::vector<std::string> lanAddresses();

// Where clients reach the box, from its listeners: a listener's address,
// or for a wildcard one (0.0.0.0, ::) the box's LAN addresses. `first`
// gets the one Apple's PrivateAddress names (the first plain listener's,
// else the first TLS one's); `all` every distinct one (PrivateAddresses).
// A wildcard listener on a box with no LAN address names its own host.
void listenerAddresses(const std::vector<BoundListener>& listeners, std::string* first,
                       std::vector<std::string>* all);

}  // namespace orchard::server
