// CacheNodes implementation; see cache_nodes.h.
#include "server/proxy/cache_nodes.h"

#include <algorithm>
#include <random>

#include "cache/rendezvous.h"
#include "common/log.h"

namespace orchard::server {
namespace {

uint64_t randomDraw() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

bool add(CacheNodes::Plan* p, CacheNodes::Node* n, std::string_view originId) {
  if (p->n >= CacheNodes::kMaxPlan || n->id == originId) return false;
  for (int i = 0; i < p->n; ++i)
    if (p->nodes[static_cast<size_t>(i)] == n) return false;
  p->nodes[static_cast<size_t>(p->n++)] = n;
  return true;
}

}  // namespace

CacheNodes::CacheNodes(const config::Config& cfg) : self_(cfg.peerSelf), policy_(cfg.parentPolicy) {
  for (const auto& a : cfg.parentNodes) {
    auto n = std::make_unique<Node>();
    n->kind = Kind::Parent;
    n->addr = a;
    n->id = a.id();
    parentIds_.push_back(n->id);
    parents_.push_back(std::move(n));
  }
  for (const auto& a : cfg.peerNodes) {
    auto n = std::make_unique<Node>();
    n->kind = Kind::Peer;
    n->addr = a;
    n->id = a.id();
    ring_.push_back(n->id);
    ringNodes_.push_back(n.get());
    peers_.push_back(std::move(n));
  }
  peerHash_ = !peers_.empty() && cfg.peerPolicy == "url-path-hash";
  if (!peers_.empty()) {
    ring_.push_back(self_);
    ringNodes_.push_back(nullptr);
  }
}

bool CacheNodes::findSelf(const std::vector<std::string>& own, const config::Config& cfg) {
  if (!self_.empty() || peers_.empty()) return true;
  for (size_t i = 0; i < peers_.size(); ++i) {
    const Node& n = *peers_[i];
    bool onListener = false;
    for (const auto* l : {&cfg.listen, &cfg.tlsListen})
      for (const auto& a : *l) onListener = onListener || a.port == n.addr.port;
    if (!onListener || std::find(own.begin(), own.end(), n.addr.host) == own.end()) continue;
    self_ = n.id;
    peers_.erase(peers_.begin() + static_cast<std::ptrdiff_t>(i));
    ring_.clear();
    ringNodes_.clear();
    for (const auto& p : peers_) {
      ring_.push_back(p->id);
      ringNodes_.push_back(p.get());
    }
    ring_.push_back(self_);
    ringNodes_.push_back(nullptr);
    peerHash_ = !peers_.empty() && cfg.peerPolicy == "url-path-hash";
    return true;
  }
  return false;
}

CacheNodes::Plan CacheNodes::plan(std::string_view key, std::string_view originId, bool fromPeer) {
  Plan p;
  if (peerHash_ && !fromPeer) {
    for (size_t i : cache::rendezvousOrder(key, ring_)) {
      Node* n = ringNodes_[i];
      if (!n) break;  // this box owns the key (or is next in line for it)
      // Every peer before this box in the key's order, those up: the owner,
      // then (should it fail now) whoever is next in line on every box.
      if (n->up.load(std::memory_order_relaxed) && n->id != originId) add(&p, n, originId);
    }
  }
  if (!parents_.empty()) planParents(key, originId, &p);
  return p;
}

void CacheNodes::planParents(std::string_view key, std::string_view originId, Plan* p) {
  const size_t n = parents_.size();
  auto usable = [&](size_t i) { return parents_[i]->up.load(std::memory_order_relaxed) && parents_[i]->id != originId; };
  // A node that is the origin means the request names the parent itself:
  // none of the parents is asked for it.
  for (const auto& node : parents_)
    if (node->id == originId) return;
  if (policy_ == "url-path-hash") {
    for (size_t i : cache::rendezvousOrder(key, parentIds_))
      if (usable(i)) add(p, parents_[i].get(), originId);
    return;
  }
  size_t first = 0;
  if (policy_ == "round-robin") {
    first = static_cast<size_t>(roundRobin_.fetch_add(1, std::memory_order_relaxed) % n);
  } else if (policy_ == "random") {
    first = static_cast<size_t>(randomDraw() % n);
  } else if (policy_ == "sticky-available") {
    first = static_cast<size_t>(sticky_.load(std::memory_order_relaxed)) % n;
    // Stay on the last one used while it is up; else move on and stick there.
    for (size_t k = 0; k < n; ++k) {
      size_t i = (first + k) % n;
      if (usable(i)) {
        if (k != 0) sticky_.store(static_cast<int>(i), std::memory_order_relaxed);
        first = i;
        break;
      }
    }
  }  // first-available: from the top of the list
  for (size_t k = 0; k < n; ++k) {
    size_t i = (first + k) % n;
    if (usable(i)) add(p, parents_[i].get(), originId);
  }
}

void CacheNodes::failed(Node* node, std::string_view why, int64_t nowMs, int64_t downMs, int64_t wallSeconds) {
  const bool wasUp = node->up.exchange(false, std::memory_order_relaxed);
  node->retryAtMs.store(nowMs + downMs, std::memory_order_relaxed);
  if (wasUp) node->failures.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(node->mu);
    node->lastError.assign(why);
    if (wasUp) node->downSince = wallSeconds;
  }
  if (wasUp)
    OLOG_WARN("%s %s is down (%.*s): skipped for %lld ms, then probed",
         node->kind == Kind::Parent ? "parent" : "peer", node->id.c_str(), static_cast<int>(why.size()), why.data(),
         static_cast<long long>(downMs));
}

void CacheNodes::recovered(Node* node) {
  if (!node->up.exchange(true, std::memory_order_relaxed))
    OLOG_INFO("%s %s answers again", node->kind == Kind::Parent ? "parent" : "peer", node->id.c_str());
}

std::vector<CacheNodes::Node*> CacheNodes::dueForProbe(int64_t nowMs) {
  std::vector<Node*> due;
  for (auto* list : {&parents_, &peers_})
    for (const auto& n : *list) {
      if (n->up.load(std::memory_order_relaxed) || n->retryAtMs.load(std::memory_order_relaxed) > nowMs) continue;
      bool expected = false;
      if (n->probing.compare_exchange_strong(expected, true)) due.push_back(n.get());
    }
  return due;
}

}  // namespace orchard::server
