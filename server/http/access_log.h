// The access log (server.access_log): one line per request, written by the
// connection when the response ends (server/http/client_conn.cc), and one
// per CONNECT tunnel when it closes (server/proxy/tunnel.cc).
//
// Line format (README, "Access log"): space-separated fields, the last two
// quoted:
//   time client method target status bytes result ttfb_ms duration_ms form "host" "detail"
//   2026-12-03T16:40:01.123Z 10.0.0.7 GET /content/x.pkg?accessKey=*** 200 4096 hit 0.214 0.388 intercept "swcdn.apple.com" "orchard; hit"
// time: when the response ended, RFC 3339 UTC with milliseconds; target: as
// the client sent it, the values of secret query parameters
// (server.access_log_mask) replaced by ***, bytes outside printable ASCII
// and `"` percent-encoded; bytes: what was written to the client, head and
// body; ttfb_ms: "-" when no byte was written (the client left first).
//
// Writing: a loop never waits for the log. Each loop appends its lines to
// its own AccessLogBuffer, which writes them with one write() per loop turn
// (a flush posted by the first line of the turn), or at once past
// kFlushBytes; nothing is ever fsync'ed. A line that cannot be written is
// dropped and counted (access_log_dropped).
//
// Ownership: an AccessLogSink is shared by the snapshots that name the same
// target (server/context.h) and by the buffers that hold its lines. The
// Server opens it (start, reload) and reopens it on SIGUSR1: the path is
// opened again and dup2()'d over the same descriptor, so loops writing at
// that moment need no lock (each write() goes wholly to the old file or to
// the new one).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/metrics.h"

struct sockaddr;

namespace orchard::server {

class Worker;

class AccessLogSink {
 public:
  // `target`: "stderr" or an absolute file path (opened append-only,
  // created 0640 when missing). Null with *error when it cannot be opened.
  static std::shared_ptr<AccessLogSink> open(const std::string& target, std::string* error);
  ~AccessLogSink();
  AccessLogSink(const AccessLogSink&) = delete;
  AccessLogSink& operator=(const AccessLogSink&) = delete;

  const std::string& target() const { return target_; }
  int fd() const { return fd_; }
  // A file: opens its path again (logrotate moved it away) and puts the new
  // file under fd(). False with *error when it cannot (the old file stays).
  // stderr: nothing to do. Control thread.
  bool reopen(std::string* error);

 private:
  AccessLogSink(std::string target, int fd, bool owned) : target_(std::move(target)), fd_(fd), owned_(owned) {}
  std::string target_;
  int fd_;
  bool owned_;  // a file we opened (closed with the sink); stderr is not ours
};

// One line's fields (views into the caller's strings).
struct AccessEntry {
  int64_t unixMs = 0;              // when the response ended
  const struct sockaddr* peer = nullptr;
  std::string_view method;
  std::string_view target;         // masked already (appendMaskedTarget)
  std::string_view host;           // the Host header ("" when none)
  int status = 0;                  // 0: no status line was written
  uint64_t bytes = 0;
  RequestResult result = RequestResult::Local;
  RequestForm form = RequestForm::Local;
  int64_t ttfbUs = -1;             // -1: no byte written
  int64_t durationUs = 0;
  std::string_view detail;
};

// Appends one line, ending in '\n'.
void formatAccessLine(std::string* out, const AccessEntry& e);
// Appends `target` with the value of every query parameter whose name is
// in `names` (ASCII case-insensitive) replaced by "***"; bytes outside
// printable ASCII, spaces and '"' percent-encoded.
void appendMaskedTarget(std::string* out, std::string_view target, const std::vector<std::string>& names);

// A loop's pending lines. Loop thread only.
class AccessLogBuffer {
 public:
  static constexpr size_t kFlushBytes = 256 * 1024;  // written at once past this (a busy turn)
  AccessLogBuffer(Worker* worker, Counters* counters) : worker_(worker), counters_(counters) {}
  ~AccessLogBuffer();  // writes what is left
  AccessLogBuffer(const AccessLogBuffer&) = delete;
  AccessLogBuffer& operator=(const AccessLogBuffer&) = delete;

  // Appends one line for `sink` (lines for another sink are written first).
  void append(const std::shared_ptr<AccessLogSink>& sink, const AccessEntry& e);
  void flush();

 private:
  Worker* worker_;  // null in tests: no posted flush, flush() by hand
  Counters* counters_;
  std::shared_ptr<AccessLogSink> sink_;  // the sink buf_ holds lines for
  std::string buf_;
  uint64_t lines_ = 0;  // lines in buf_
  bool posted_ = false;
};

}  // namespace orchard::server
