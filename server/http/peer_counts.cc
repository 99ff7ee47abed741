// PeerCounts; see peer_counts.h.
#include "server/http/peer_counts.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cassert>
#include <cstring>

namespace orchard::server {

size_t PeerCounts::KeyHash::operator()(const Key& k) const noexcept {
  // FNV-1a over the 16 bytes: addresses are not chosen to collide here
  // (a collision only shares a shard and a bucket, never a count).
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : k.bytes) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return static_cast<size_t>(h ^ (h >> 32));
}

PeerCounts::Key PeerCounts::keyOf(const struct sockaddr* addr) {
  Key k;
  if (addr == nullptr) return k;
  if (addr->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    k.bytes[10] = 0xff;
    k.bytes[11] = 0xff;
    std::memcpy(&k.bytes[12], &in->sin_addr, 4);
  } else if (addr->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    std::memcpy(k.bytes.data(), &in6->sin6_addr, 16);
  }
  return k;
}

uint32_t PeerCounts::add(const struct sockaddr* addr) {
  const Key k = keyOf(addr);
  Shard& s = shardOf(k);
  std::lock_guard lock(s.mu);
  return ++s.counts[k];
}

void PeerCounts::remove(const struct sockaddr* addr) {
  const Key k = keyOf(addr);
  Shard& s = shardOf(k);
  std::lock_guard lock(s.mu);
  auto it = s.counts.find(k);
  assert(it != s.counts.end() && it->second > 0 && "PeerCounts::remove without its add");
  if (it == s.counts.end()) return;
  if (--it->second == 0) s.counts.erase(it);
}

uint32_t PeerCounts::count(const struct sockaddr* addr) const {
  const Key k = keyOf(addr);
  Shard& s = shardOf(k);
  std::lock_guard lock(s.mu);
  auto it = s.counts.find(k);
  return it == s.counts.end() ? 0 : it->second;
}

size_t PeerCounts::addresses() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.counts.size();
  }
  return n;
}

}  // namespace orchard::server
