// DeliveryCounters: how the box delivered each published version, per
// client network (an IPv4 /24 or an IPv6 /64, the branch-office grain):
// downloads started, completed (a clean answer that carried the file's
// last byte), bytes served, and of those bytes how many were on the box
// (all of them today; bytes fetched from a parent box arrive with the
// parents issue). In memory, since start (the persisted per-version total
// is Catalog::downloads()); bounded: at most kMaxNetworks networks per
// version, the rest counted under "other". Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace orchard::catalog {

struct DeliveryCount {
  std::string network;
  uint64_t started = 0;
  uint64_t completed = 0;
  uint64_t bytes = 0;
  uint64_t bytesOnBox = 0;
  uint64_t bytesFromUpstream = 0;
};

class DeliveryCounters {
 public:
  static constexpr size_t kMaxNetworks = 256;
  void started(std::string_view name, std::string_view version, std::string_view network);
  // `bytes` sent by one answer (whole or a range), `completed` when it carried the last byte.
  void served(std::string_view name, std::string_view version, std::string_view network, uint64_t bytes,
              bool completed);
  // Per network (sorted), for one version.
  std::vector<DeliveryCount> of(std::string_view name, std::string_view version) const;

 private:
  DeliveryCount& slot(std::string_view name, std::string_view version, std::string_view network);
  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, DeliveryCount>> byVersion_;  // name \0 version -> network -> count
};

}  // namespace orchard::catalog
