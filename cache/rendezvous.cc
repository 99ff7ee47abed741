#include "cache/rendezvous.h"

#include <xxhash.h>

#include <algorithm>
#include <numeric>

namespace orchard::cache {

uint64_t rendezvousWeight(std::string_view node, std::string_view key) noexcept {
  const uint64_t seed = XXH3_64bits(key.data(), key.size());
  return XXH3_64bits_withSeed(node.data(), node.size(), seed);
}

std::optional<size_t> rendezvousOwner(std::string_view key, std::span<const std::string> nodes,
                                      const std::function<bool(size_t)>& usable) {
  std::optional<size_t> best;
  uint64_t bestWeight = 0;
  const uint64_t seed = XXH3_64bits(key.data(), key.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (usable && !usable(i)) continue;
    const uint64_t w = XXH3_64bits_withSeed(nodes[i].data(), nodes[i].size(), seed);
    if (!best || w > bestWeight) {
      best = i;
      bestWeight = w;
    }
  }
  return best;
}

std::vector<size_t> rendezvousOrder(std::string_view key, std::span<const std::string> nodes) {
  std::vector<uint64_t> weights(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) weights[i] = rendezvousWeight(nodes[i], key);
  std::vector<size_t> order(nodes.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return weights[a] > weights[b]; });
  return order;
}

}  // namespace orchard::cache
