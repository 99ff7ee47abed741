// DeliveryCounters (see delivery.h). The one hard part is the bound: a
// version's map never grows past kMaxNetworks entries, however many client
// addresses download it; later networks share the "other" entry.
#include "catalog/delivery.h"

namespace orchard::catalog {

DeliveryCount& DeliveryCounters::slot(std::string_view name, std::string_view version, std::string_view network) {
  std::string key(name);
  key += '\0';
  key += version;
  auto& nets = byVersion_[key];
  auto it = nets.find(std::string(network));
  if (it == nets.end()) {
    const std::string net = nets.size() < kMaxNetworks ? std::string(network) : std::string("other");
    it = nets.try_emplace(net).first;
    it->second.network = net;
  }
  return it->second;
}

void DeliveryCounters::started(std::string_view name, std::string_view version, std::string_view network) {
  std::lock_guard lock(mu_);
  slot(name, version, network).started += 1;
}

void DeliveryCounters::served(std::string_view name, std::string_view version, std::string_view network,
                              uint64_t bytes, bool completed) {
  std::lock_guard lock(mu_);
  DeliveryCount& c = slot(name, version, network);
  c.bytes += bytes;
  c.bytesOnBox += bytes;
  if (completed) c.completed += 1;
}

std::vector<DeliveryCount> DeliveryCounters::of(std::string_view name, std::string_view version) const {
  std::string key(name);
  key += '\0';
  key += version;
  std::lock_guard lock(mu_);
  std::vector<DeliveryCount> out;
  auto it = byVersion_.find(key);
  if (it == byVersion_.end()) return out;
  for (const auto& [net, c] : it->second) out.push_back(c);
  return out;
}

}  // namespace orchard::catalog
