// OffsetClock: another clock's wall time moved by an offset that can grow,
// for black-box tests that must see days pass (orchardd --test-clock-offset
// and POST /api/v1/test/clock, both only with the flag). Monotonic time is
// the base clock's, unmoved: timeouts keep their real length.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/clock.h"

namespace orchard {

class OffsetClock final : public Clock {
 public:
  OffsetClock(const Clock& base, int64_t offsetSecs) : base_(base), offset_(offsetSecs) {}
  int64_t nowSeconds() const override { return base_.nowSeconds() + offset_.load(); }
  int64_t monotonicMs() const override { return base_.monotonicMs(); }
  // Moves wall time by `seconds` (may be negative); returns the new offset.
  int64_t advance(int64_t seconds) { return offset_ += seconds; }
  int64_t offset() const { return offset_.load(); }

 private:
  const Clock& base_;
  std::atomic<int64_t> offset_;
};

}  // namespace orchard
