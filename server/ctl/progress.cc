// Progress drawing: see progress.h.
#include "server/ctl/progress.h"

#include <algorithm>
#include <utility>

namespace orchard::ctl {

std::string formatBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, v < 10 ? "%.2f %s" : "%.1f %s", v, kUnits[unit]);
  return buf;
}

std::string formatDuration(int64_t seconds) {
  if (seconds < 0) seconds = 0;
  char buf[32];
  if (seconds < 60) std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(seconds));
  else if (seconds < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(seconds / 60),
                  static_cast<long long>(seconds % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(seconds / 3600),
                  static_cast<long long>(seconds / 60 % 60));
  return buf;
}

Progress::Progress(std::FILE* out, bool terminal, const Clock& clock, std::string label)
    : out_(out), label_(std::move(label)), terminal_(terminal), clock_(clock), startMs_(clock.monotonicMs()), lastDrawMs_(startMs_) {}

std::string Progress::describe(uint64_t done, uint64_t total, int64_t elapsedMs, bool end,
                               const Reported& reported) const {
  int percent = total ? static_cast<int>(done * 100 / total) : 100;
  if (reported.percent) percent = std::clamp(*reported.percent, 0, 100);
  double rate = elapsedMs > 0 ? static_cast<double>(done) * 1000.0 / static_cast<double>(elapsedMs) : 0;
  if (reported.rate) rate = static_cast<double>(*reported.rate);
  std::string rateText = rate > 0 ? formatBytes(static_cast<uint64_t>(rate)) + "/s" : "-";
  std::string eta = "-";
  if (reported.etaSeconds) eta = formatDuration(*reported.etaSeconds);
  else if (rate > 0 && total >= done)
    eta = formatDuration(static_cast<int64_t>(static_cast<double>(total - done) / rate + 0.5));
  std::string amount = formatBytes(done) + (terminal_ ? " / " : " of ") + formatBytes(total);
  std::string s;
  if (terminal_) {
    constexpr int kWidth = 24;
    int filled = std::min(kWidth, percent * kWidth / 100);
    std::string bar;
    bar.append("[").append(filled, '#').append(kWidth - filled, '-').append("]");
    s = label_ + " " + amount + " " + bar + " " + std::to_string(percent) + "%  " + rateText;
    s += end ? "  in " + formatDuration(elapsedMs / 1000) : "  ETA " + eta;
    if (!reported.note.empty()) s += "  " + reported.note;
    return s;
  }
  s = label_ + ": " + amount + " (" + std::to_string(percent) + "%), " + rateText;
  s += end ? ", in " + formatDuration(elapsedMs / 1000) : ", ETA " + eta;
  if (!reported.note.empty()) s += ", " + reported.note;
  return s;
}

void Progress::update(uint64_t done, uint64_t total, const Reported& reported) {
  int64_t now = clock_.monotonicMs();
  int64_t interval = terminal_ ? kBarIntervalMs : kLineIntervalMs;
  if (now - lastDrawMs_ < interval && !(terminal_ && !drawn_)) return;
  lastDrawMs_ = now;
  std::string text = describe(done, total, now - startMs_, false, reported);
  if (terminal_) {
    size_t width = text.size();
    if (width < lastWidth_) text.append(lastWidth_ - width, ' ');
    lastWidth_ = width;
    std::fprintf(out_, "\r%s", text.c_str());
    drawn_ = true;
  } else {
    std::fprintf(out_, "%s\n", text.c_str());
  }
  std::fflush(out_);
}

void Progress::finish(uint64_t done, uint64_t total, const Reported& reported) {
  int64_t now = clock_.monotonicMs();
  std::string text = describe(done, total, now - startMs_, true, reported);
  if (terminal_) {
    if (text.size() < lastWidth_) text.append(lastWidth_ - text.size(), ' ');
    std::fprintf(out_, "\r%s\n", text.c_str());
  } else {
    std::fprintf(out_, "%s\n", text.c_str());
  }
  std::fflush(out_);
}

void Progress::abandon() {
  if (terminal_ && drawn_) std::fputc('\n', out_);
  drawn_ = false;
  std::fflush(out_);
}

}  // namespace orchard::ctl
