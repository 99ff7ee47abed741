#include "common/time_window.h"

#include <ctime>

namespace orchard {

namespace {

std::optional<int> parseClock(std::string_view t) noexcept {
  if (t.size() != 5 || t[2] != ':') return std::nullopt;
  for (size_t i : {0u, 1u, 3u, 4u})
    if (t[i] < '0' || t[i] > '9') return std::nullopt;
  const int h = (t[0] - '0') * 10 + (t[1] - '0');
  const int m = (t[3] - '0') * 10 + (t[4] - '0');
  if (h > 23 || m > 59) return std::nullopt;
  return h * 60 + m;
}

constexpr int kDay = 24 * 60;

int forward(int from, int to) noexcept { return ((to - from) % kDay + kDay) % kDay; }

}  // namespace

std::optional<TimeWindow> TimeWindow::parse(std::string_view text) noexcept {
  const size_t dash = text.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto a = parseClock(text.substr(0, dash));
  auto b = parseClock(text.substr(dash + 1));
  if (!a || !b || *a == *b) return std::nullopt;
  return TimeWindow{*a, *b};
}

bool TimeWindow::contains(int minute) const noexcept {
  if (startMinute < endMinute) return minute >= startMinute && minute < endMinute;
  return minute >= startMinute || minute < endMinute;  // crosses midnight
}

int TimeWindow::minutesUntilOpen(int minute) const noexcept {
  return contains(minute) ? 0 : forward(minute, startMinute);
}

int TimeWindow::minutesUntilClose(int minute) const noexcept {
  if (contains(minute)) return forward(minute, endMinute);
  return forward(minute, startMinute) + forward(startMinute, endMinute);
}

int localMinuteOfDay(int64_t unixSeconds) noexcept {
  std::time_t t = static_cast<std::time_t>(unixSeconds);
  std::tm tm{};
  if (!::localtime_r(&t, &tm)) return 0;
  return tm.tm_hour * 60 + tm.tm_min;
}

}  // namespace orchard
