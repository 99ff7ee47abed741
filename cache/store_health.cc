// StoreHealth: see store_health.h for the states. Counts failed store
// writes and keeps the store "degraded" (misses pass through uncached) until
// a write provably succeeds or a quiet interval passes, logging one line
// per interval however many writes fail in it.
#include "cache/store_health.h"

#include <cstring>

#include "common/log.h"

namespace orchard::cache {

void StoreHealth::writeFailed(const Error& e, std::string_view path, int64_t nowMs) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  if (!root_.empty() && path.size() > root_.size() + 1 && path.substr(0, root_.size()) == root_ &&
      path[root_.size()] == '/')
    path.remove_prefix(root_.size() + 1);
  std::string reason = "store writes failing: ";
  reason += e.context;
  reason += ": ";
  reason += e.sys ? std::strerror(e.sys) : errcName(e.code);
  if (!path.empty()) {
    reason += " (";
    reason += path;
    reason += ')';
  }
  bool log = false;
  uint64_t count = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    reason_ = std::move(reason);
    lastFailureMs_ = nowMs;
    ++unlogged_;
    if (!logged_ || nowMs - lastLogMs_ >= kLogIntervalMs) {
      log = true;
      logged_ = true;
      lastLogMs_ = nowMs;
      count = unlogged_;
      unlogged_ = 0;
      reason = reason_;
    }
  }
  degraded_.store(true, std::memory_order_release);
  if (log)
    OLOG_WARN("%s: passing fills through uncached (%llu failure%s since the last report)", reason.c_str(),
              static_cast<unsigned long long>(count), count == 1 ? "" : "s");
}

void StoreHealth::writeSucceeded(int64_t nowMs) {
  if (!degraded_.load(std::memory_order_acquire)) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (nowMs < lastFailureMs_) return;  // a failure reported after this write began wins
    reason_.clear();
  }
  degraded_.store(false, std::memory_order_release);
  OLOG_INFO("store writes succeed again: objects are stored again");
}

StoreHealth::Report StoreHealth::report(int64_t nowMs) const {
  Report r;
  r.writeErrors = errors_.load(std::memory_order_relaxed);
  if (!degraded_.load(std::memory_order_acquire)) return r;
  std::lock_guard<std::mutex> lock(mu_);
  if (reason_.empty() || nowMs - lastFailureMs_ >= kQuietMs) return r;
  r.degraded = true;
  r.reason = reason_;
  return r;
}

}  // namespace orchard::cache
