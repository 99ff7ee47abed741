// Log macros: the message is formatted only when its level is enabled.
// Output goes to stderr, one line per call (the journal adds timestamps
// under systemd). Per-request error paths use OLOG_RATE so that a flood of
// bad clients cannot flood the log.
#pragma once

#include <atomic>
#include <cstdint>

namespace orchard::log {

enum class Level : int { Debug = 0, Info = 1, Warn = 2, Error = 3, Off = 4 };

extern std::atomic<int> gLevel;

inline bool enabled(Level l) noexcept { return static_cast<int>(l) >= gLevel.load(std::memory_order_relaxed); }
void setLevel(Level l) noexcept;
bool parseLevel(const char* s, Level* out) noexcept;
void write(Level l, const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));
// True at most `perSecond` times per second per call site state.
bool rateOk(std::atomic<int64_t>* windowStart, std::atomic<int>* count, int perSecond) noexcept;

}  // namespace orchard::log

#define OLOG_AT(lvl, ...)                                               \
  do {                                                                  \
    if (::orchard::log::enabled(lvl)) ::orchard::log::write(lvl, __VA_ARGS__); \
  } while (0)
#define OLOG_DEBUG(...) OLOG_AT(::orchard::log::Level::Debug, __VA_ARGS__)
#define OLOG_INFO(...) OLOG_AT(::orchard::log::Level::Info, __VA_ARGS__)
#define OLOG_WARN(...) OLOG_AT(::orchard::log::Level::Warn, __VA_ARGS__)
#define OLOG_ERROR(...) OLOG_AT(::orchard::log::Level::Error, __VA_ARGS__)
// Rate-limited (10 lines/s per call site) for per-request failures.
#define OLOG_RATE(lvl, ...)                                                        \
  do {                                                                             \
    static std::atomic<int64_t> olog_ws_{0};                                       \
    static std::atomic<int> olog_n_{0};                                            \
    if (::orchard::log::enabled(lvl) && ::orchard::log::rateOk(&olog_ws_, &olog_n_, 10)) \
      ::orchard::log::write(lvl, __VA_ARGS__);                                     \
  } while (0)
