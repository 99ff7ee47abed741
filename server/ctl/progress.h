// Progress: how far an upload (or a job the box runs) has got, drawn on stderr.
//
// Two forms, chosen once by whether the output is a terminal:
//  - Bar: one line redrawn in place with '\r' (bytes done/total, a bar,
//    percent, average rate, ETA), at most every kBarIntervalMs; finish()
//    draws the last state and ends the line.
//  - Lines: a plain line at most every kLineIntervalMs (logs and CI keep
//    them readable), and one closing line from finish() with the total time.
// update() may be called as often as the transfer likes; it decides whether
// to draw from the Clock, so tests can drive it with a FakeClock.
//
// A transfer this process does not run itself (`apple mirror` following a
// mirror job on the box) passes what the box reports (Reported): its
// percent, rate and ETA replace the ones computed from this process's
// clock, and `note` (the file being fetched) ends the report.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "common/clock.h"

namespace orchard::ctl {

inline constexpr int64_t kBarIntervalMs = 100;
inline constexpr int64_t kLineIntervalMs = 5000;

// "512 B", "1.5 KiB", "12.3 MiB", "15.00 GiB".
std::string formatBytes(uint64_t bytes);
// "42s", "2m13s", "1h02m".
std::string formatDuration(int64_t seconds);

// What the box says about a transfer it runs; each field left empty falls
// back to what Progress computes from done, total and its own clock.
struct Reported {
  std::optional<int> percent;          // 0..100
  std::optional<uint64_t> rate;        // bytes per second
  std::optional<int64_t> etaSeconds;
  std::string note;                    // shown last ("InstallAssistant.pkg")
};

class Progress {
 public:
  // `label` starts each report ("upload", "sha256").
  Progress(std::FILE* out, bool terminal, const Clock& clock, std::string label);

  void update(uint64_t done, uint64_t total, const Reported& reported = {});
  void finish(uint64_t done, uint64_t total, const Reported& reported = {});
  // The transfer stopped short: end a drawn bar's line, say nothing more.
  void abandon();

  // The text of one report (no '\r', no newline); public for tests.
  std::string describe(uint64_t done, uint64_t total, int64_t elapsedMs, bool end,
                       const Reported& reported = {}) const;

 private:
  std::FILE* out_;
  std::string label_;
  bool terminal_;
  const Clock& clock_;
  int64_t startMs_;
  int64_t lastDrawMs_;   // when the last report was drawn (start counts as one for Lines)
  size_t lastWidth_ = 0;  // Bar: how much of the line to blank on a shorter redraw
  bool drawn_ = false;    // Bar: something is on the line
};

}  // namespace orchard::ctl
