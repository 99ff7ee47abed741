// Clock: wall time for HTTP dates and ages, monotonic time for timeouts.
// Code under test takes a Clock& so tests can use FakeClock.
#pragma once

#include <atomic>
#include <cstdint>

namespace orchard {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil): no time zone, no locale, no libc state. Shared by the
// HTTP date parser (cache/policy.cc) and RFC 3339 times (common/history.cc).
constexpr int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}
static_assert(daysFromCivil(1970, 1, 1) == 0 && daysFromCivil(2000, 3, 1) == 11017);

class Clock {
 public:
  virtual ~Clock() = default;
  // Seconds since the Unix epoch (HTTP dates have one-second resolution).
  virtual int64_t nowSeconds() const = 0;
  // Monotonic milliseconds, for deadlines.
  virtual int64_t monotonicMs() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t nowSeconds() const override;
  int64_t monotonicMs() const override;
  static SystemClock& instance();
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now = 1'700'000'000) : now_(now) {}
  int64_t nowSeconds() const override { return now_.load(); }
  int64_t monotonicMs() const override { return now_.load() * 1000 + ms_.load(); }
  void advance(int64_t seconds) { now_ += seconds; }
  void advanceMs(int64_t ms) { ms_ += ms; }

 private:
  std::atomic<int64_t> now_;
  std::atomic<int64_t> ms_{0};
};

}  // namespace orchard
