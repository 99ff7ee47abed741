// The system clock behind the Clock interface: wall seconds for HTTP dates
// and freshness, monotonic milliseconds for timeouts and the access log
// (never the wall clock, which jumps). Tests substitute a fake Clock.
#include "common/clock.h"

#include <ctime>

namespace orchard {

int64_t SystemClock::nowSeconds() const {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec;
}

int64_t SystemClock::monotonicMs() const {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1'000'000;
}

SystemClock& SystemClock::instance() {
  static SystemClock c;
  return c;
}

}  // namespace orchard
