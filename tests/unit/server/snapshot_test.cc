// Tests for the per-loop config snapshot (server/context.h): installing a
// new snapshot on a loop, pins taken by requests, and when a loop lets an
// old snapshot go. No loop runs: installSnapshot() is called directly, as
// the loop thread would.
#include <gtest/gtest.h>

#include <memory>

#include "config/reload.h"
#include "server/context.h"

namespace orchard::server {
namespace {

std::shared_ptr<const Snapshot> make(uint64_t generation, int64_t idleMs, int64_t readMs = 60'000) {
  config::Config c = config::defaults();
  c.idleTimeoutMs = idleMs;
  c.readTimeoutMs = readMs;
  auto base = config::buildSnapshot(c, generation);
  EXPECT_TRUE(base.ok());
  auto s = std::make_shared<Snapshot>(std::move(*base.snapshot));
  s->upstream.readTimeoutMs = readMs;
  return s;
}

struct Fixture {
  ServerContext ctx;
  Worker worker{0};
};

TEST(LoopSnapshot, NewRequestsSeeTheInstalledSnapshotPinnedOnesKeepTheirs) {
  Fixture f;
  std::weak_ptr<const Snapshot> one;
  {
    auto s1 = make(1, 1000);
    one = s1;
    WorkerContext wc(&f.ctx, &f.worker, std::move(s1));
    EXPECT_EQ(wc.config().idleTimeoutMs, 1000);
    SnapshotRef pinned = wc.pinSnapshot();
    wc.installSnapshot(make(2, 2000));
    EXPECT_EQ(wc.config().idleTimeoutMs, 2000);
    EXPECT_EQ(wc.snapshot().generation, 2u);
    EXPECT_EQ(pinned->config.idleTimeoutMs, 1000) << "a pinned request keeps the snapshot it started with";
    EXPECT_FALSE(one.expired());
    SnapshotRef moved = std::move(pinned);
    EXPECT_FALSE(pinned);
    EXPECT_FALSE(one.expired());
    moved = SnapshotRef();
    EXPECT_TRUE(one.expired()) << "the loop let the old snapshot go with its last pin";
  }
}

TEST(LoopSnapshot, AnUnpinnedSnapshotGoesAtOnceAndPinsOutliveLaterInstalls) {
  Fixture f;
  auto s1 = make(1, 1000);
  std::weak_ptr<const Snapshot> one = s1, two;
  WorkerContext wc(&f.ctx, &f.worker, std::move(s1));
  auto s2 = make(2, 2000);
  two = s2;
  wc.installSnapshot(std::move(s2));
  EXPECT_TRUE(one.expired()) << "no request used generation 1";
  SnapshotRef a = wc.pinSnapshot();
  SnapshotRef b = wc.pinSnapshot();
  wc.installSnapshot(make(3, 3000));
  wc.installSnapshot(make(4, 4000));
  EXPECT_FALSE(two.expired());
  a = SnapshotRef();
  EXPECT_FALSE(two.expired()) << "still pinned by b";
  EXPECT_EQ(b->generation, 2u);
  b = SnapshotRef();
  EXPECT_TRUE(two.expired());
  EXPECT_EQ(wc.snapshot().generation, 4u);
}

TEST(LoopSnapshot, TheUpstreamPoolTakesChangedOptions) {
  Fixture f;
  WorkerContext wc(&f.ctx, &f.worker, make(1, 1000, 60'000));
  EXPECT_EQ(wc.upstream.options().readTimeoutMs, 60'000);
  wc.installSnapshot(make(2, 1000, 5'000));
  EXPECT_EQ(wc.upstream.options().readTimeoutMs, 5'000);
}

}  // namespace
}  // namespace orchard::server
