// Tests for cache/store_health: Ok -> Degraded on a failed write, back to Ok
// on a success or after a quiet interval, reasons relative to the store dir.
#include "cache/store_health.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace orchard::cache {
namespace {

TEST(StoreHealthTest, OkUntilAWriteFails) {
  StoreHealth h;
  auto r = h.report(0);
  EXPECT_FALSE(r.degraded);
  EXPECT_TRUE(r.reason.empty());
  EXPECT_EQ(r.writeErrors, 0u);
}

TEST(StoreHealthTest, FailureDegradesWithTheReasonAndPathRelativeToTheRoot) {
  StoreHealth h;
  h.setRoot("/var/lib/orchard");
  h.writeFailed(Error{Errc::Io, EROFS, "create object file"}, "/var/lib/orchard/objects/ab/ab12.7", 1000);
  auto r = h.report(1001);
  EXPECT_TRUE(r.degraded);
  EXPECT_EQ(r.reason, "store writes failing: create object file: Read-only file system (objects/ab/ab12.7)");
  EXPECT_EQ(r.writeErrors, 1u);
}

TEST(StoreHealthTest, PathOutsideTheRootIsKeptWhole) {
  StoreHealth h;
  h.setRoot("/var/lib/orchard");
  h.writeFailed(Error{Errc::Io, EIO, "fill: write"}, "/var/lib/orchard2/x", 5);
  EXPECT_NE(h.report(5).reason.find("(/var/lib/orchard2/x)"), std::string::npos);
}

TEST(StoreHealthTest, SuccessClearsButTheCountStays) {
  StoreHealth h;
  h.writeFailed(Error{Errc::Io, EACCES, "create temp file"}, "tmp/x", 1000);
  h.writeFailed(Error{Errc::NoSpace, ENOSPC, "fill: write"}, "objects/ab/x", 1500);
  EXPECT_NE(h.report(1500).reason.find("No space left on device"), std::string::npos) << "the latest reason";
  h.writeSucceeded(2000);
  auto r = h.report(2000);
  EXPECT_FALSE(r.degraded);
  EXPECT_TRUE(r.reason.empty());
  EXPECT_EQ(r.writeErrors, 2u);
}

TEST(StoreHealthTest, SuccessStartedBeforeTheLastFailureDoesNotClear) {
  StoreHealth h;
  h.writeFailed(Error{Errc::Io, EIO, "fill: sync"}, "objects/ab/x", 2000);
  h.writeSucceeded(1999);
  EXPECT_TRUE(h.report(2001).degraded);
}

TEST(StoreHealthTest, QuietIntervalClears) {
  StoreHealth h;
  h.writeFailed(Error{Errc::Io, EIO, "fill: write"}, "objects/ab/x", 1000);
  EXPECT_TRUE(h.report(1000 + StoreHealth::kQuietMs - 1).degraded);
  EXPECT_FALSE(h.report(1000 + StoreHealth::kQuietMs).degraded);
  h.writeFailed(Error{Errc::Io, EIO, "fill: write"}, "objects/ab/x", 1000 + StoreHealth::kQuietMs + 5);
  EXPECT_TRUE(h.report(1000 + StoreHealth::kQuietMs + 5).degraded) << "a new failure degrades again";
}

}  // namespace
}  // namespace orchard::cache
