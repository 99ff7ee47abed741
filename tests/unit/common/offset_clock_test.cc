// Tests for common/offset_clock.h: wall time is the base's plus the offset
// (which advance() grows or shrinks), monotonic time is the base's, unmoved.
#include "common/offset_clock.h"

#include <gtest/gtest.h>

namespace orchard {
namespace {

TEST(OffsetClock, MovesWallTimeOnly) {
  FakeClock base(1'700'000'000);
  OffsetClock c(base, 3600);
  EXPECT_EQ(c.nowSeconds(), 1'700'003'600);
  EXPECT_EQ(c.monotonicMs(), base.monotonicMs());
  EXPECT_EQ(c.advance(2 * 86400), 3600 + 2 * 86400);
  EXPECT_EQ(c.nowSeconds(), 1'700'000'000 + 3600 + 2 * 86400);
  EXPECT_EQ(c.monotonicMs(), base.monotonicMs());
  base.advance(10);
  EXPECT_EQ(c.nowSeconds(), 1'700'000'010 + 3600 + 2 * 86400);
  EXPECT_EQ(c.advance(-3600 - 2 * 86400), 0);
  EXPECT_EQ(c.nowSeconds(), base.nowSeconds());
}

}  // namespace
}  // namespace orchard
