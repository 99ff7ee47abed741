// Clock: wall time for HTTP dates and ages, monotonic time for timeouts.
// Code under test takes a Clock& so tests can use FakeClock.
#pragma once

#include <atomic>
#include <cstdint>

namespace orchard {

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
