// RateLimiter: a token bucket shared by any number of threads, for the
// bandwidth cap on mirror fills (apple.mirror_rate: origin -> box bytes of
// the box's own capped requests, never hits). Pure logic over an injected
// Clock; the caller does the waiting (server/proxy/fill_driver.cc pauses its
// origin exchange and looks again on a loop timer).
//
// The bucket is kept as one number, the time at which every byte taken so
// far is paid for at the rate it was taken at (the "theoretical arrival
// time" of GCRA): take(n) moves it n / rate seconds further, starting from
// now when it lies in the past (an idle bucket does not save up). The
// caller may run ahead of it by `slack` (the bucket's depth: a short burst,
// and fewer pauses of a reader that takes a chunk at a time); beyond that,
// take() and wait() say how long to wait. Bytes are always accounted after
// they were read (a read cannot be undone), so the limiter runs in debt and
// the long-run rate is exact: a 10 MiB object at 2 MiB/s takes 5 s less the
// slack.
//
// A rate change (a reload) applies to the bytes taken after it; the debt
// already run up stays in time units. Thread-safe and lock-free: one atomic
// compare-and-swap per take(), one load per wait().
#pragma once

#include <atomic>
#include <cstdint>

#include "common/clock.h"

namespace orchard {

class RateLimiter {
 public:
  // 20 ms: the caller's timer ticks are at most 50 ms, so a reader paused at
  // the slack's edge resumes long before the bucket runs dry.
  static constexpr int64_t kDefaultSlackMs = 20;

  explicit RateLimiter(const Clock& clock, int64_t slackMs = kDefaultSlackMs);
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Accounts `n` bytes just taken at `bytesPerSecond` (0 = no cap: nothing
  // is accounted). Returns the milliseconds to wait before taking more
  // (0: go on now). Any thread.
  int64_t take(uint64_t n, uint64_t bytesPerSecond);
  // Milliseconds until the bytes taken so far are paid for, less the slack
  // (0: go on now). Any thread.
  int64_t waitMs() const;

 private:
  int64_t nowUs() const { return clock_.monotonicMs() * 1000; }

  const Clock& clock_;
  const int64_t slackUs_;
  // Monotonic microseconds at which the debt is paid; <= now when idle.
  std::atomic<int64_t> paidAtUs_;
};

}  // namespace orchard
