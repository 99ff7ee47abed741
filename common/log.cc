// The log: one line per call to stderr (the journal under systemd), with
// the level in the prefix; a relaxed atomic level check makes disabled
// levels free. The hard part is OLOG_RATE (log.h): under attack a message
// per request would be its own denial of service, so repeats are capped.
#include "common/log.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <unistd.h>

namespace orchard::log {

std::atomic<int> gLevel{static_cast<int>(Level::Info)};

void setLevel(Level l) noexcept { gLevel.store(static_cast<int>(l), std::memory_order_relaxed); }

bool parseLevel(const char* s, Level* out) noexcept {
  static const struct { const char* n; Level l; } kLevels[] = {
      {"debug", Level::Debug}, {"info", Level::Info}, {"warn", Level::Warn},
      {"error", Level::Error}, {"off", Level::Off}};
  for (const auto& e : kLevels) {
    if (std::strcmp(s, e.n) == 0) {
      *out = e.l;
      return true;
    }
  }
  return false;
}

void write(Level l, const char* fmt, ...) noexcept {
  static const char* kNames[] = {"debug", "info", "warn", "error", "off"};
  char buf[2048];
  int n = std::snprintf(buf, sizeof buf, "orchardd[%s]: ", kNames[static_cast<int>(l)]);
  va_list ap;
  va_start(ap, fmt);
  int m = std::vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
  va_end(ap);
  size_t len = n + (m < 0 ? 0 : (static_cast<size_t>(m) < sizeof buf - n - 1 ? m : sizeof buf - n - 2));
  buf[len++] = '\n';
  ssize_t w = ::write(2, buf, len);
  (void)w;
}

bool rateOk(std::atomic<int64_t>* windowStart, std::atomic<int>* count, int perSecond) noexcept {
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  int64_t ws = windowStart->load(std::memory_order_relaxed);
  if (ws != now && windowStart->compare_exchange_strong(ws, now)) count->store(0);
  return count->fetch_add(1, std::memory_order_relaxed) < perSecond;
}

}  // namespace orchard::log
