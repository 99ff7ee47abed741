// Parents and peers (server/proxy/cache_nodes.h, issue 15): which nodes a
// miss tries, in which order, under each policy and with nodes down; and
// the content-cache form a node is asked in (upstream_template.h).
#include "server/proxy/cache_nodes.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "config/config.h"
#include "server/proxy/upstream_template.h"

namespace orchard::server {
namespace {

config::Config withNodes(std::vector<std::string> parents, std::string policy, std::vector<std::string> peers = {},
                         std::string self = "") {
  config::Config c = config::defaults();
  c.parentPolicy = std::move(policy);
  for (const auto& p : parents) c.parentNodes.push_back(*config::CacheNode::parse(p));
  for (const auto& p : peers) c.peerNodes.push_back(*config::CacheNode::parse(p));
  c.peerSelf = std::move(self);
  c.peerPolicy = "url-path-hash";
  return c;
}

std::vector<std::string> ids(const CacheNodes::Plan& p) {
  std::vector<std::string> out;
  for (int i = 0; i < p.n; ++i) out.push_back(p.nodes[static_cast<size_t>(i)]->id);
  return out;
}

const std::vector<std::string> kThree = {"p1.example:8080", "p2.example:8080", "p3.example:8080"};

TEST(CacheNodes, FirstAvailableGoesDownTheListSkippingTheDown) {
  CacheNodes n(withNodes(kThree, "first-available"));
  EXPECT_EQ(ids(n.plan("k", "origin.example:80", false)), kThree);
  n.failed(n.parents()[0].get(), "refused", 0, 1000, 0);
  EXPECT_EQ(ids(n.plan("k", "origin.example:80", false)),
            (std::vector<std::string>{"p2.example:8080", "p3.example:8080"}));
  for (const auto& p : n.parents()) n.failed(p.get(), "refused", 0, 1000, 0);
  EXPECT_EQ(n.plan("k", "origin.example:80", false).n, 0) << "all down: straight to the origin";
  n.recovered(n.parents()[2].get());
  EXPECT_EQ(ids(n.plan("k", "origin.example:80", false)), std::vector<std::string>{"p3.example:8080"});
}

TEST(CacheNodes, RoundRobinTakesTurns) {
  CacheNodes n(withNodes(kThree, "round-robin"));
  std::map<std::string, int> firsts;
  for (int i = 0; i < 30; ++i) ++firsts[ids(n.plan("k", "o:80", false)).front()];
  for (const auto& id : kThree) EXPECT_EQ(firsts[id], 10) << id;
  EXPECT_EQ(n.plan("k", "o:80", false).n, 3) << "the others follow as fail-over";
}

TEST(CacheNodes, RandomUsesEveryParent) {
  CacheNodes n(withNodes(kThree, "random"));
  std::set<std::string> firsts;
  for (int i = 0; i < 200; ++i) firsts.insert(ids(n.plan("k", "o:80", false)).front());
  EXPECT_EQ(firsts.size(), 3u);
}

TEST(CacheNodes, StickyStaysUntilItsParentFails) {
  CacheNodes n(withNodes(kThree, "sticky-available"));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(ids(n.plan("k", "o:80", false)).front(), "p1.example:8080");
  n.failed(n.parents()[0].get(), "5xx", 0, 1000, 0);
  EXPECT_EQ(ids(n.plan("k", "o:80", false)).front(), "p2.example:8080");
  n.recovered(n.parents()[0].get());
  EXPECT_EQ(ids(n.plan("k", "o:80", false)).front(), "p2.example:8080") << "sticks to the one it moved to";
}

TEST(CacheNodes, UrlPathHashGivesEachKeyOneParentAndFailsOverInItsOrder) {
  CacheNodes n(withNodes(kThree, "url-path-hash"));
  std::map<std::string, int> owners;
  for (int i = 0; i < 3000; ++i) {
    const std::string key = "http://swcdn.apple.com/content/" + std::to_string(i);
    auto a = ids(n.plan(key, "o:80", false));
    EXPECT_EQ(a, ids(n.plan(key, "o:80", false))) << "the same key, the same order";
    ++owners[a.front()];
  }
  for (const auto& id : kThree) {
    EXPECT_GT(owners[id], 900) << id;
    EXPECT_LT(owners[id], 1100) << id;
  }
  const std::string key = "http://swcdn.apple.com/content/7";
  auto order = ids(n.plan(key, "o:80", false));
  for (const auto& p : n.parents())
    if (p->id == order.front()) n.failed(p.get(), "down", 0, 1000, 0);
  EXPECT_EQ(ids(n.plan(key, "o:80", false)).front(), order[1]);
}

TEST(CacheNodes, ANodeThatIsTheOriginIsNeverAsked) {
  CacheNodes n(withNodes(kThree, "first-available"));
  EXPECT_EQ(n.plan("k", "p2.example:8080", false).n, 0) << "the request names a parent itself";
}

TEST(CacheNodes, PeersOwnKeysByRendezvousAndPeersRequestsStayHere) {
  const std::vector<std::string> peers = {"10.0.0.2:80", "10.0.0.3:80"};
  CacheNodes n(withNodes({}, "round-robin", peers, "10.0.0.1:80"));
  EXPECT_FALSE(n.empty());
  int mine = 0, toPeer = 0;
  for (int i = 0; i < 300; ++i) {
    const std::string key = "http://swcdn.apple.com/o/" + std::to_string(i);
    auto p = n.plan(key, "o:80", false);
    ASSERT_LE(p.n, 2);  // the owner, and the next in line when this box is third
    (p.n == 0 ? mine : toPeer)++;
    EXPECT_EQ(n.plan(key, "o:80", true).n, 0) << "a peer's request is never sent on to a peer";
  }
  EXPECT_GT(mine, 70);  // about a third each
  EXPECT_GT(toPeer, 140);
  // Every box with the same three names agrees on every owner.
  CacheNodes other(withNodes({}, "round-robin", {"10.0.0.1:80", "10.0.0.3:80"}, "10.0.0.2:80"));
  for (int i = 0; i < 300; ++i) {
    const std::string key = "http://swcdn.apple.com/o/" + std::to_string(i);
    auto a = n.plan(key, "o:80", false), b = other.plan(key, "o:80", false);
    const std::string ownerA = a.n ? a.nodes[0]->id : "10.0.0.1:80";
    const std::string ownerB = b.n ? b.nodes[0]->id : "10.0.0.2:80";
    EXPECT_EQ(ownerA, ownerB) << key;
  }
}

TEST(CacheNodes, APeerOwnerDownIsSkippedForTheNextInTheKeysOrder) {
  CacheNodes n(withNodes({"hub.example:80"}, "first-available", {"10.0.0.2:80"}, "10.0.0.1:80"));
  std::string key;
  for (int i = 0; i < 100 && key.empty(); ++i) {
    std::string k = "http://h/" + std::to_string(i);
    if (n.plan(k, "o:80", false).n == 2) key = k;  // owned by the peer: peer, then the parent
  }
  ASSERT_FALSE(key.empty());
  EXPECT_EQ(ids(n.plan(key, "o:80", false)), (std::vector<std::string>{"10.0.0.2:80", "hub.example:80"}));
  n.failed(n.peers()[0].get(), "refused", 0, 1000, 0);
  EXPECT_EQ(ids(n.plan(key, "o:80", false)), std::vector<std::string>{"hub.example:80"})
      << "this box is next in line: it fetches the key itself";
}

TEST(CacheNodes, DownNodesAreProbedOnceTheirTimeComes) {
  CacheNodes n(withNodes(kThree, "first-available"));
  n.failed(n.parents()[1].get(), "refused", 1000, 500, 0);
  EXPECT_TRUE(n.dueForProbe(1400).empty());
  auto due = n.dueForProbe(1500);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0]->id, "p2.example:8080");
  EXPECT_TRUE(n.dueForProbe(1600).empty()) << "one probe in flight at a time";
  EXPECT_EQ(n.parents()[1]->failures.load(), 1u);
}

TEST(ContentCacheTarget, AddsSourceAndScheme) {
  EXPECT_EQ(contentCacheTarget("/a/b.pkg", "http", "swcdn.apple.com", 80), "/a/b.pkg?source=swcdn.apple.com");
  EXPECT_EQ(contentCacheTarget("/a?x=1", "https", "h.example", 443), "/a?x=1&source=h.example&sourceScheme=https");
  EXPECT_EQ(contentCacheTarget("/a", "http", "127.0.0.1", 8080), "/a?source=127.0.0.1:8080");
  EXPECT_EQ(contentCacheTarget("/a", "https", "::1", 8443), "/a?source=[::1]:8443&sourceScheme=https");
}

TEST(ContentCacheTarget, TheTemplateAsksANodeWithTheClientsHeaders) {
  RequestHead req;
  req.method = "GET";
  req.target = "/a";
  req.headers = {{"Host", "swcdn.apple.com"}, {"User-Agent", "t"}};
  Route route;
  route.scheme = "http";
  route.host = "swcdn.apple.com";
  route.port = 80;
  route.hostHeader = "swcdn.apple.com";
  route.upstreamTarget = "/a";
  route.keyText = "http://swcdn.apple.com/a";
  auto t = makeUpstreamTemplate(req, route, route.keyText, "orchard-test", true, true, false);
  EXPECT_TRUE(t->viaNodes);
  EXPECT_EQ(t->originId, "swcdn.apple.com:80");
  EXPECT_EQ(t->nodeTarget, "/a?source=swcdn.apple.com");
  EXPECT_EQ(t->headPrefix.substr(t->headersAt), "User-Agent: t\r\nVia: 1.1 orchard-test\r\n");
  req.method = "POST";
  EXPECT_FALSE(makeUpstreamTemplate(req, route, route.keyText, "orchard-test", false, true, false)->viaNodes)
      << "only GET and HEAD go through parents";
}

}  // namespace
}  // namespace orchard::server
