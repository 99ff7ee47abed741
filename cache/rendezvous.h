// Rendezvous (highest-random-weight) hashing: which of N nodes owns a
// cache key. Each (node, key) pair gets a pseudo-random weight; the key
// belongs to the usable node with the highest one. Adding a node moves
// only the keys the new node now wins (about 1/(N+1) of them); removing
// one moves only the keys it owned. Used by upstream.parent_policy =
// "url-path-hash" and peer_policy = "url-path-hash" (issue 15): every box
// that knows the same node names picks the same owner, with no state
// shared between them. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace orchard::cache {

// The weight of `node` for `key` (XXH3-64 of the node name seeded with the
// key's hash, so every key orders the nodes differently).
uint64_t rendezvousWeight(std::string_view node, std::string_view key) noexcept;

// The index of the node owning `key` among those `usable` accepts (all
// when `usable` is empty); nullopt when none is usable. Ties (never seen
// with 64-bit weights) go to the lower index.
std::optional<size_t> rendezvousOwner(std::string_view key, std::span<const std::string> nodes,
                                      const std::function<bool(size_t)>& usable = {});

// Every node in the order a key tries them: the owner first, then the
// next-highest weights (the fail-over order when the owner is down).
std::vector<size_t> rendezvousOrder(std::string_view key, std::span<const std::string> nodes);

}  // namespace orchard::cache
