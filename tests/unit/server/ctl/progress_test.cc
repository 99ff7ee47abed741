// Tests for server/ctl/progress (orchardctl's upload progress) on a
// FakeClock: the plain form draws at most once per kLineIntervalMs plus the
// closing line and never writes '\r'; the bar redraws in place at most
// every kBarIntervalMs, draws its first state at once and ends its line on
// finish() or abandon(); what the box reports (Reported) replaces the
// computed percent, rate and ETA; and the byte and duration formats, by table.
#include "server/ctl/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace orchard::ctl {
namespace {

// A FILE* whose text the test can read back.
class Capture {
 public:
  Capture() : file_(std::tmpfile()) {}
  ~Capture() { std::fclose(file_); }
  std::FILE* file() { return file_; }
  std::string text() {
    std::fflush(file_);
    std::string s;
    std::rewind(file_);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) s.append(buf, n);
    std::fseek(file_, 0, SEEK_END);
    return s;
  }

 private:
  std::FILE* file_;
};

size_t count(const std::string& s, char c) {
  size_t n = 0;
  for (char x : s) n += x == c;
  return n;
}

TEST(Progress, LinesAtMostOncePerIntervalPlusTheEnd) {
  FakeClock clock;
  Capture out;
  Progress p(out.file(), false, clock, "upload");
  const uint64_t total = 100ull << 20;
  // 12 s of updates every 10 ms: lines at 5 s and 10 s only.
  for (int ms = 10; ms <= 12000; ms += 10) {
    clock.advanceMs(10);
    p.update(static_cast<uint64_t>(ms) * total / 12000, total);
  }
  EXPECT_EQ(count(out.text(), '\n'), 2u) << out.text();
  p.finish(total, total);
  std::string text = out.text();
  EXPECT_EQ(count(text, '\n'), 3u) << text;
  EXPECT_EQ(count(text, '\r'), 0u) << text;
  EXPECT_NE(text.find("upload: 41.7 MiB of 100.0 MiB (41%), 8.33 MiB/s, ETA 7s\n"), std::string::npos) << text;
  EXPECT_NE(text.find("upload: 100.0 MiB of 100.0 MiB (100%), 8.33 MiB/s, in 12s\n"), std::string::npos) << text;
}

TEST(Progress, BarRedrawsInPlaceAtMostTenTimesASecond) {
  FakeClock clock;
  Capture out;
  Progress p(out.file(), true, clock, "upload");
  p.update(0, 1000);  // the first state is drawn at once
  EXPECT_EQ(count(out.text(), '\r'), 1u);
  for (int i = 1; i <= 100; ++i) {  // 1 s in 10 ms steps
    clock.advanceMs(10);
    p.update(static_cast<uint64_t>(i) * 5, 1000);
  }
  EXPECT_EQ(count(out.text(), '\r'), 11u) << out.text();
  EXPECT_EQ(count(out.text(), '\n'), 0u);
  p.finish(1000, 1000);
  std::string text = out.text();
  EXPECT_EQ(text.back(), '\n');
  EXPECT_NE(text.find("\rupload 1000 B / 1000 B [########################] 100%"), std::string::npos) << text;
}

TEST(Progress, AbandonEndsADrawnBarOnly) {
  FakeClock clock;
  Capture bar, lines;
  Progress b(bar.file(), true, clock, "upload");
  Progress l(lines.file(), false, clock, "upload");
  b.abandon();
  l.abandon();
  EXPECT_EQ(bar.text(), "");
  EXPECT_EQ(lines.text(), "");
  b.update(1, 2);
  b.abandon();
  EXPECT_EQ(bar.text().back(), '\n');
}

TEST(Progress, ReportedValuesReplaceTheComputedOnes) {
  // A job the box runs (apple mirror): its percent, rate, ETA and current
  // file are drawn, through update() and finish() alike.
  FakeClock clock;
  Capture bar, lines;
  Progress b(bar.file(), true, clock, "mirror");
  Progress l(lines.file(), false, clock, "mirror");
  Reported r{30, 2u << 20, 125, "InstallAssistant.pkg"};
  b.update(300, 1000, r);
  clock.advanceMs(kLineIntervalMs);
  l.update(300, 1000, r);
  EXPECT_EQ(bar.text(), "\rmirror 300 B / 1000 B [#######-----------------] 30%  2.00 MiB/s  ETA 2m05s  InstallAssistant.pkg");
  EXPECT_EQ(lines.text(), "mirror: 300 B of 1000 B (30%), 2.00 MiB/s, ETA 2m05s, InstallAssistant.pkg\n");
  l.finish(1000, 1000, Reported{100, 2u << 20, std::nullopt, ""});
  EXPECT_NE(lines.text().find("mirror: 1000 B of 1000 B (100%), 2.00 MiB/s, in 5s\n"), std::string::npos) << lines.text();
}

TEST(Progress, Formats) {
  struct Row {
    uint64_t bytes;
    const char* text;
  } rows[] = {{0, "0 B"}, {1023, "1023 B"}, {1024, "1.00 KiB"}, {1536, "1.50 KiB"}, {10ull << 20, "10.0 MiB"},
              {15ull << 30, "15.0 GiB"}, {(3ull << 30) / 2, "1.50 GiB"}};
  for (const auto& r : rows) EXPECT_EQ(formatBytes(r.bytes), r.text) << r.bytes;
  struct Dur {
    int64_t s;
    const char* text;
  } durs[] = {{-1, "0s"}, {0, "0s"}, {59, "59s"}, {60, "1m00s"}, {133, "2m13s"}, {3600, "1h00m"}, {3720, "1h02m"}};
  for (const auto& d : durs) EXPECT_EQ(formatDuration(d.s), d.text) << d.s;
}

}  // namespace
}  // namespace orchard::ctl
