// StoreHealth: whether writes into the store (object files, temp files,
// their syncs, index records) are failing, why, and how often.
//
// Every store write that fails reports here (the Store for its own calls, a
// Fill for its writes into the file the Store gave it). A failing write never
// fails a client's answer: the fill becomes a pass-through (see Fill). This
// record is what the operator sees of it: /api/v1/status says DEGRADED with
// the reason, /metrics counts the failures, and the log gets one line per
// kLogIntervalMs however many failures happen in it.
//
// States:
//   Ok ──writeFailed()──▶ Degraded ──writeSucceeded()───────────────▶ Ok
//                            └──── kQuietMs without a failure ──────▶ Ok
// writeSucceeded() is called when bytes provably reached the disk and the
// index again (an object committed, a checkpoint recorded); a quiet interval
// clears it too, so that a box whose traffic is only hits does not report an
// old failure forever.
//
// Thread safety: every method may be called from any thread. Times are
// monotonic milliseconds passed in by the caller (tests pass fake ones).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "common/result.h"

namespace orchard::cache {

class StoreHealth {
 public:
  // Degraded clears after this long without a new failure.
  static constexpr int64_t kQuietMs = 120'000;
  // At most one log line per this interval (it says how many it stands for).
  static constexpr int64_t kLogIntervalMs = 10'000;

  struct Report {
    bool degraded = false;
    std::string reason;       // "store writes failing: <what>: <strerror> (<path>)", empty when not degraded
    uint64_t writeErrors = 0; // failures since start
  };

  // `path` names the file or directory written, relative to the store dir
  // when it lies inside it (pass it as it was used; it is shortened here).
  void writeFailed(const Error& e, std::string_view path, int64_t nowMs);
  void writeSucceeded(int64_t nowMs);
  Report report(int64_t nowMs) const;
  uint64_t writeErrors() const { return errors_.load(std::memory_order_relaxed); }

  // The store dir, so that paths in reasons are shown relative to it.
  void setRoot(std::string root) { root_ = std::move(root); }

 private:
  std::string root_;  // set once before use
  std::atomic<uint64_t> errors_{0};
  std::atomic<bool> degraded_{false};  // fast path for writeSucceeded()

  mutable std::mutex mu_;  // guards the fields below
  std::string reason_;
  int64_t lastFailureMs_ = 0;
  int64_t lastLogMs_ = 0;
  bool logged_ = false;
  uint64_t unlogged_ = 0;  // failures since the last log line
};

}  // namespace orchard::cache
