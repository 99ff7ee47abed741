// PeerCounts: how many client connections each address has open, across
// every worker loop (server.max_connections_per_client). Touched only when
// a connection is accepted and when it is freed, never per request.
//
// Thread safety: any thread. The table is split into shards by a hash of
// the address, each a mutex and a map, so loops accepting from different
// clients rarely meet on one lock; an address's entry is erased when its
// last connection goes, so the table holds only addresses connected now.
// An IPv4 address and its v4-mapped IPv6 form (::ffff:a.b.c.d) are the
// same client.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

struct sockaddr;

namespace orchard::server {

class PeerCounts {
 public:
  // Counts one more connection from `addr`; returns the count with it.
  // Null or a family other than AF_INET/AF_INET6 counts under one key.
  uint32_t add(const struct sockaddr* addr);
  // Counts one connection from `addr` less (one add() per remove(); a
  // remove() without its add() is a programming error).
  void remove(const struct sockaddr* addr);
  // The connections `addr` has open now (tests, metrics).
  uint32_t count(const struct sockaddr* addr) const;
  // Addresses with a connection open now.
  size_t addresses() const;

 private:
  struct Key {
    std::array<uint8_t, 16> bytes{};  // IPv6, or v4-mapped IPv4
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<Key, uint32_t, KeyHash> counts;
  };
  static constexpr size_t kShards = 16;
  static Key keyOf(const struct sockaddr* addr);
  Shard& shardOf(const Key& k) const { return shards_[KeyHash{}(k) % kShards]; }

  mutable std::array<Shard, kShards> shards_;
};

}  // namespace orchard::server
