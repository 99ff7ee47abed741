// TimeWindow: a daily window of local wall-clock time, "HH:MM-HH:MM", that
// may cross midnight ("22:00-06:00"). Pure: callers give the minute of the
// day (0..1439) they are at, in the box's local time zone.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace orchard {

struct TimeWindow {
  int startMinute = 0;  // 0..1439
  int endMinute = 0;    // 0..1439, != startMinute

  // "HH:MM-HH:MM" (24-hour, two digits each); nullopt when malformed or
  // when start == end (an empty or a full day would be ambiguous: leave the
  // window unset for "any time").
  static std::optional<TimeWindow> parse(std::string_view text) noexcept;

  bool contains(int minuteOfDay) const noexcept;
  // Minutes from minuteOfDay until the window next opens (0 when inside it)
  // and until it next closes (from inside; from outside: until the close
  // after the next opening).
  int minutesUntilOpen(int minuteOfDay) const noexcept;
  int minutesUntilClose(int minuteOfDay) const noexcept;
};

// The local minute of the day (0..1439) at Unix time `unixSeconds`.
int localMinuteOfDay(int64_t unixSeconds) noexcept;

}  // namespace orchard
