// CacheNodes: this box's parents and peers (upstream.parents,
// upstream.peers), whether each is usable, and which of them a miss tries
// before the origin. One instance per server, shared by every loop: the
// health of a node is a few atomics and a small mutex for its last error,
// so a failure seen by one loop makes every loop skip the node.
//
// The plan for a miss (plan()), at most kMaxPlan nodes, then the origin:
//   1. peers (peer_policy "url-path-hash", and the request is not itself a
//      peer's): the key's owner by rendezvous hashing over the peers and
//      this box (cache/rendezvous.h), the same on every peer. Owned by this
//      box: no peer. After the owner come the peers next in the key's
//      rendezvous order up to this box, so an owner that is down (known or
//      found now) is skipped for the same next one on every box and the
//      site still stores the object once;
//   2. parents, those up, in the order upstream.parent_policy gives:
//      round-robin (a counter shared by the loops), first-available (list
//      order), url-path-hash (the key's rendezvous order), random, or
//      sticky-available (the one last used while it stays up, else the
//      next up in list order);
//   3. a node that is the origin itself (its host:port is the request's
//      origin, e.g. a hub's /pkgs) is never planned: the box goes straight
//      there instead of asking the hub for its own URL in ?source= form.
// With every parent down the plan is empty and the miss goes to the origin.
//
// Health: failed() marks a node down (a refused or timed-out connection, a
// 5xx, a body cut) until probed; the prober (server.cc, one timer on the
// first loop) sends Apple's probe, GET / with Max-Forwards: 0, to every
// down node whose retry time has come and calls recovered() on a 200, or
// failed() again.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace orchard::server {

class CacheNodes {
 public:
  enum class Kind : uint8_t { Parent, Peer };
  struct Node {
    Kind kind = Kind::Parent;
    config::CacheNode addr;
    std::string id;  // addr.id(): "host:port"
    std::atomic<bool> up{true};
    std::atomic<bool> probing{false};        // a probe is in flight
    std::atomic<int64_t> retryAtMs{0};       // monotonic: probe again from then
    std::atomic<uint64_t> failures{0};       // times marked down
    std::atomic<uint64_t> requests{0};       // exchanges sent to it
    std::atomic<uint64_t> bytes{0};          // body bytes received from it
    mutable std::mutex mu;
    std::string lastError;  // under mu
    int64_t downSince = 0;  // wall seconds of the last failure (under mu; 0 = never)
  };
  static constexpr int kMaxPlan = 8;
  struct Plan {
    std::array<Node*, kMaxPlan> nodes{};
    int n = 0;
  };

  explicit CacheNodes(const config::Config& cfg);
  // Peers listed with no self found at load (cfg.peerSelf empty: this box
  // listens on 0.0.0.0 / [::]): the entry whose address is one of `own`
  // (the box's interface addresses, numeric) on a listener's port becomes
  // this box and leaves the peer list. False when none is.
  bool findSelf(const std::vector<std::string>& own, const config::Config& cfg);
  CacheNodes(const CacheNodes&) = delete;
  CacheNodes& operator=(const CacheNodes&) = delete;

  bool empty() const { return parents_.empty() && (peers_.empty() || !peerHash_); }
  const std::vector<std::unique_ptr<Node>>& parents() const { return parents_; }
  const std::vector<std::unique_ptr<Node>>& peers() const { return peers_; }
  const std::string& self() const { return self_; }

  // The nodes a miss for `key` (the cache key text) tries, in order, before
  // the origin `originId` ("host:port"). `fromPeer`: the request came from a
  // peer (it is never sent on to another peer).
  Plan plan(std::string_view key, std::string_view originId, bool fromPeer);

  // `node` failed (why: for /api/v1/status): down until a probe answers,
  // the first probe no sooner than downMs from nowMs.
  void failed(Node* node, std::string_view why, int64_t nowMs, int64_t downMs, int64_t wallSeconds);
  // A probe (or any exchange) got a good answer from a down node.
  void recovered(Node* node);
  // Down nodes whose retry time has come and with no probe in flight; each
  // returned one is marked probing (the prober clears it).
  std::vector<Node*> dueForProbe(int64_t nowMs);

 private:
  void planParents(std::string_view key, std::string_view originId, Plan* p);

  std::vector<std::unique_ptr<Node>> parents_, peers_;
  std::vector<std::string> parentIds_;
  std::vector<std::string> ring_;      // peer ids and this box's, for rendezvous
  std::vector<Node*> ringNodes_;       // the same order; null for this box
  std::string self_;
  std::string policy_;
  bool peerHash_ = false;
  std::atomic<uint64_t> roundRobin_{0};
  std::atomic<int> sticky_{0};
};

}  // namespace orchard::server
