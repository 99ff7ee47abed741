// Tests for server/http/access_log: the line format field by field, secret
// masking in query strings, escaping of hostile bytes (a line stays one
// line), and the buffer's one write per flush into a real file, with its
// reopen after a rename (what logrotate does before SIGUSR1).
#include "server/http/access_log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace orchard::server {
namespace {

const std::vector<std::string> kMask = {"accessKey", "token", "signature", "sig", "X-Amz-Signature"};

std::string masked(std::string_view target, const std::vector<std::string>& names = kMask) {
  std::string out;
  appendMaskedTarget(&out, target, names);
  return out;
}

TEST(AccessLogMask, SecretsInTheQuery) {
  struct Case {
    const char* in;
    const char* out;
  } cases[] = {
      {"/a.pkg", "/a.pkg"},
      {"/a.pkg?", "/a.pkg?"},
      {"/a.pkg?accessKey=abc", "/a.pkg?accessKey=***"},
      {"/a.pkg?x=1&accessKey=abc&y=2", "/a.pkg?x=1&accessKey=***&y=2"},
      {"/a.pkg?ACCESSKEY=abc", "/a.pkg?ACCESSKEY=***"},
      {"/a?X-Amz-Signature=ff&X-Amz-Date=1", "/a?X-Amz-Signature=***&X-Amz-Date=1"},
      {"/a?sig=1&sig=2", "/a?sig=***&sig=***"},
      {"/a?signatures=1", "/a?signatures=1"},
      {"/a?token", "/a?token"},
      {"/a?token=", "/a?token=***"},
      {"/a?&&token=x&", "/a?&&token=***&"},
      {"http://swcdn.apple.com/a?accessKey=k", "http://swcdn.apple.com/a?accessKey=***"},
      {"/accessKey=x", "/accessKey=x"},  // not in the query
  };
  for (const auto& c : cases) EXPECT_EQ(masked(c.in), c.out) << c.in;
  EXPECT_EQ(masked("/a?accessKey=x", {}), "/a?accessKey=x");
  EXPECT_EQ(masked("/a?Policy=x", {"policy"}), "/a?Policy=***");
}

TEST(AccessLogMask, HostileBytesAreEncoded) {
  EXPECT_EQ(masked("/a b\"c\n"), "/a%20b%22c%0A");
  EXPECT_EQ(masked("/\xff?token=\x01"), "/%FF?token=***");
  EXPECT_EQ(masked("/a?q=\x7f"), "/a?q=%7F");
}

AccessEntry sample(const sockaddr_in& sa) {
  AccessEntry e;
  e.unixMs = 1'796'316'001'123;  // 2026-12-03T16:40:01.123Z
  e.peer = reinterpret_cast<const sockaddr*>(&sa);
  e.method = "GET";
  e.target = "/content/x.pkg?accessKey=***";
  e.host = "swcdn.apple.com";
  e.status = 200;
  e.bytes = 4096;
  e.result = RequestResult::Hit;
  e.form = RequestForm::Intercept;
  e.ttfbUs = 214;
  e.durationUs = 1388;
  e.detail = "orchard; hit";
  return e;
}

sockaddr_in v4(const char* a) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, a, &sa.sin_addr);
  return sa;
}

TEST(AccessLogLine, Fields) {
  const sockaddr_in sa = v4("10.0.0.7");
  std::string out;
  formatAccessLine(&out, sample(sa));
  EXPECT_EQ(out,
            "2026-12-03T16:40:01.123Z 10.0.0.7 GET /content/x.pkg?accessKey=*** 200 4096 hit 0.214 1.388 intercept "
            "\"swcdn.apple.com\" \"orchard; hit\"\n");
}

TEST(AccessLogLine, NoByteWrittenNoPeerNoHeadV6) {
  const sockaddr_in sa = v4("10.0.0.7");
  AccessEntry e = sample(sa);
  e.ttfbUs = -1;
  e.status = 0;
  e.host = "";
  e.detail = "a\"b\\c\nd";
  e.durationUs = 61'000'005;
  e.result = RequestResult::Error;
  e.form = RequestForm::Forward;
  sockaddr_in6 s6{};
  s6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "fd00::1", &s6.sin6_addr);
  e.peer = reinterpret_cast<const sockaddr*>(&s6);
  std::string out;
  formatAccessLine(&out, e);
  EXPECT_EQ(out,
            "2026-12-03T16:40:01.123Z fd00::1 GET /content/x.pkg?accessKey=*** 0 4096 error - 61000.005 forward \"\" "
            "\"a\\x22b\\x5Cc\\x0Ad\"\n");
  e.peer = nullptr;
  e.method = "";
  e.target = "";
  out.clear();
  formatAccessLine(&out, e);
  EXPECT_EQ(out.substr(0, 33), "2026-12-03T16:40:01.123Z - - - 0 ");
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(AccessLogBuffer, WritesOnFlushAndFollowsARename) {
  char dir[] = "/tmp/orchard-al-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/access.log";
  std::string error;
  auto sink = AccessLogSink::open(path, &error);
  ASSERT_TRUE(sink) << error;
  Counters counters;
  const sockaddr_in sa = v4("10.0.0.7");
  {
    AccessLogBuffer buf(nullptr, &counters);
    buf.append(sink, sample(sa));
    buf.append(sink, sample(sa));
    EXPECT_EQ(slurp(path), "") << "nothing is written before the flush";
    buf.flush();
    EXPECT_EQ(counters.access_log_lines.load(), 2u);
    std::string text = slurp(path);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
    // logrotate: rename, then SIGUSR1 (reopen): new lines go to a new file.
    ASSERT_EQ(::rename(path.c_str(), (path + ".1").c_str()), 0);
    ASSERT_TRUE(sink->reopen(&error)) << error;
    buf.append(sink, sample(sa));
  }  // the destructor flushes
  std::string fresh = slurp(path);
  EXPECT_EQ(std::count(fresh.begin(), fresh.end(), '\n'), 1);
  std::string old = slurp(path + ".1");
  EXPECT_EQ(std::count(old.begin(), old.end(), '\n'), 2);
  EXPECT_EQ(counters.access_log_lines.load(), 3u);
  EXPECT_EQ(counters.access_log_dropped.load(), 0u);
  ::unlink((path + ".1").c_str());
  ::unlink(path.c_str());
  ::rmdir(dir);
}

TEST(AccessLogSink, UnopenableFileIsAnError) {
  std::string error;
  EXPECT_FALSE(AccessLogSink::open("/nonexistent-dir/access.log", &error));
  EXPECT_NE(error.find("server.access_log /nonexistent-dir/access.log"), std::string::npos) << error;
  auto s = AccessLogSink::open("stderr", &error);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->fd(), 2);
  EXPECT_TRUE(s->reopen(&error));
}

}  // namespace
}  // namespace orchard::server
