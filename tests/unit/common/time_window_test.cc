#include "common/time_window.h"

#include <gtest/gtest.h>

namespace orchard {
namespace {

TEST(TimeWindow, ParsesAndRejects) {
  auto w = TimeWindow::parse("22:00-06:00");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->startMinute, 22 * 60);
  EXPECT_EQ(w->endMinute, 6 * 60);
  for (const char* bad : {"", "22:00", "22:00-22:00", "24:00-01:00", "2:00-03:00", "22:60-01:00", "22:00-06:00 ",
                          "ab:cd-01:00", "22:00_06:00", "-", "22:00-"}) {
    EXPECT_FALSE(TimeWindow::parse(bad)) << bad;
  }
}

TEST(TimeWindow, ContainsAcrossMidnight) {
  auto w = *TimeWindow::parse("22:00-06:00");
  struct Row { int minute; bool in; int untilOpen; int untilClose; };
  const Row rows[] = {
      {22 * 60, true, 0, 8 * 60},       {23 * 60 + 59, true, 0, 6 * 60 + 1}, {0, true, 0, 6 * 60},
      {6 * 60 - 1, true, 0, 1},         {6 * 60, false, 16 * 60, 24 * 60},  {12 * 60, false, 10 * 60, 18 * 60},
      {22 * 60 - 1, false, 1, 8 * 60 + 1},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(w.contains(r.minute), r.in) << r.minute;
    EXPECT_EQ(w.minutesUntilOpen(r.minute), r.untilOpen) << r.minute;
    EXPECT_EQ(w.minutesUntilClose(r.minute), r.untilClose) << r.minute;
  }
}

TEST(TimeWindow, ContainsSameDay) {
  auto w = *TimeWindow::parse("09:30-17:00");
  EXPECT_FALSE(w.contains(9 * 60 + 29));
  EXPECT_TRUE(w.contains(9 * 60 + 30));
  EXPECT_TRUE(w.contains(16 * 60 + 59));
  EXPECT_FALSE(w.contains(17 * 60));
  EXPECT_EQ(w.minutesUntilOpen(17 * 60), 16 * 60 + 30);
}

}  // namespace
}  // namespace orchard
