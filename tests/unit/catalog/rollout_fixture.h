// Shared fixtures for the rollout tests: a simulated fleet of 10,000 Macs
// (serials generated here, every 20th in group "it": 5 %), the issue's
// rings canary (group it) -> early (20 %) -> broad (100 %), and a finder
// for a device whose stage bucket falls in a given range.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "catalog/fleet.h"
#include "catalog/rollout.h"

namespace orchard::catalog {

inline constexpr int64_t kDay = 86400;
inline constexpr int64_t kT0 = 1'750'000'000;  // the publish time of the tests' versions

inline const std::vector<Device>& fleet() {
  static const std::vector<Device> devices = [] {
    std::vector<Device> out;
    for (int i = 0; i < 10000; ++i) {
      char serial[16];
      std::snprintf(serial, sizeof serial, "C02X%06d", i);
      Device d;
      d.serial = serial;
      d.arch = "arm64";
      d.osVersion = "14.5";
      if (i % 20 == 0) d.groups = {"it"};
      out.push_back(std::move(d));
    }
    return out;
  }();
  return devices;
}

inline std::vector<Ring> threeRings() {
  return {{"canary", {"it"}, {}, {}}, {"early", {}, 20.0, {}}, {"broad", {}, 100.0, {}}};
}

// The first fleet serial whose bucket for `scope` is in [lo, hi], as a
// device with the given groups.
inline Device deviceWithBucket(std::string_view scope, uint32_t lo, uint32_t hi,
                               std::vector<std::string> groups) {
  for (const auto& d : fleet()) {
    uint32_t b = stageBucket(d.serial, scope);
    if (b >= lo && b <= hi) {
      Device out = d;
      out.groups = std::move(groups);
      return out;
    }
  }
  return {};
}

}  // namespace orchard::catalog
