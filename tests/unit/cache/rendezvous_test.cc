#include "cache/rendezvous.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace orchard::cache {
namespace {

std::string keyOf(int i) { return "http://swcdn.apple.com/content/downloads/" + std::to_string(i) + "/pkg.pkg"; }

TEST(Rendezvous, ThreeParentsShareThreeThousandKeysEvenly) {
  const std::vector<std::string> parents = {"hub-a.example:8080", "hub-b.example:8080", "hub-c.example:8080"};
  std::map<size_t, int> owned;
  for (int i = 0; i < 3000; ++i) ++owned[*rendezvousOwner(keyOf(i), parents)];
  for (size_t p = 0; p < parents.size(); ++p) {
    EXPECT_GE(owned[p], 900) << parents[p];  // within 10 % of 1000
    EXPECT_LE(owned[p], 1100) << parents[p];
  }
}

TEST(Rendezvous, AddingAFourthMovesOnlyWhatItWins) {
  std::vector<std::string> parents = {"hub-a.example:8080", "hub-b.example:8080", "hub-c.example:8080"};
  std::vector<size_t> before;
  for (int i = 0; i < 3000; ++i) before.push_back(*rendezvousOwner(keyOf(i), parents));
  parents.push_back("hub-d.example:8080");
  int moved = 0;
  for (int i = 0; i < 3000; ++i) {
    const size_t now = *rendezvousOwner(keyOf(i), parents);
    if (now != before[i]) {
      ++moved;
      EXPECT_EQ(now, 3u) << "a key moved between two old parents";
    }
  }
  EXPECT_GE(moved, 600);  // 20-30 % of 3000
  EXPECT_LE(moved, 900);
}

TEST(Rendezvous, AParentThatIsDownGivesItsKeysToTheNextInOrder) {
  const std::vector<std::string> parents = {"a", "b", "c"};
  for (int i = 0; i < 500; ++i) {
    auto order = rendezvousOrder(keyOf(i), parents);
    ASSERT_EQ(order.size(), 3u);
    EXPECT_EQ(order[0], *rendezvousOwner(keyOf(i), parents));
    auto without = rendezvousOwner(keyOf(i), parents, [&](size_t p) { return p != order[0]; });
    EXPECT_EQ(*without, order[1]);
  }
  EXPECT_FALSE(rendezvousOwner("k", parents, [](size_t) { return false; }));
  EXPECT_FALSE(rendezvousOwner("k", std::span<const std::string>{}));
}

TEST(Rendezvous, EveryBoxPicksTheSameOwner) {
  // Same names, any order of the list: the same node wins.
  const std::vector<std::string> a = {"peer-1:80", "peer-2:80", "peer-3:80"};
  const std::vector<std::string> b = {"peer-3:80", "peer-1:80", "peer-2:80"};
  for (int i = 0; i < 300; ++i) EXPECT_EQ(a[*rendezvousOwner(keyOf(i), a)], b[*rendezvousOwner(keyOf(i), b)]);
}

}  // namespace
}  // namespace orchard::cache
