// The access log's line format, secret masking and per-loop buffer; see
// access_log.h. The hard parts: a target is attacker-chosen bytes (escaped
// so a line stays one line and its fields stay apart), and a log on a slow
// or full disk must cost the loop one write() per turn at most and never
// grow without bound.
#include "server/http/access_log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "common/ascii.h"
#include "server/net/loop.h"

namespace orchard::server {
namespace {

constexpr char kHex[] = "0123456789ABCDEF";

bool nameIn(std::string_view name, const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    if (n.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < n.size() && same; ++i)
      same = asciiLower(static_cast<unsigned char>(n[i])) == asciiLower(static_cast<unsigned char>(name[i]));
    if (same) return true;
  }
  return false;
}

// Printable ASCII except space and '"' as is, the rest %XX.
void appendEscaped(std::string* out, std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c > 0x20 && c < 0x7f && c != '"') {
      out->push_back(ch);
    } else {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    }
  }
}

// A quoted field: '"', '\' and bytes outside printable ASCII as \xHH.
void appendQuoted(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out->push_back(ch);
    } else {
      out->append("\\x");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    }
  }
  out->push_back('"');
}

void appendMs(std::string* out, int64_t us) {
  char b[32];
  int n = std::snprintf(b, sizeof b, "%lld.%03lld", static_cast<long long>(us / 1000),
                        static_cast<long long>(us % 1000));
  out->append(b, static_cast<size_t>(n));
}

void appendPeer(std::string* out, const struct sockaddr* sa) {
  char b[INET6_ADDRSTRLEN] = "-";
  if (sa && sa->sa_family == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, b, sizeof b);
  else if (sa && sa->sa_family == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, b, sizeof b);
  out->append(b);
}

}  // namespace

// ---- the sink ----

std::shared_ptr<AccessLogSink> AccessLogSink::open(const std::string& target, std::string* error) {
  if (target == "stderr") return std::shared_ptr<AccessLogSink>(new AccessLogSink(target, 2, false));
  int fd = ::open(target.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    *error = "server.access_log " + target + ": " + std::strerror(errno);
    return nullptr;
  }
  return std::shared_ptr<AccessLogSink>(new AccessLogSink(target, fd, true));
}

AccessLogSink::~AccessLogSink() {
  if (owned_) ::close(fd_);
}

bool AccessLogSink::reopen(std::string* error) {
  if (!owned_) return true;
  int fd = ::open(target_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    *error = "server.access_log " + target_ + ": " + std::strerror(errno);
    return false;
  }
  // dup3 keeps O_CLOEXEC on fd_; it replaces the old file atomically.
  if (::dup3(fd, fd_, O_CLOEXEC) < 0) {
    *error = "server.access_log " + target_ + ": dup3: " + std::strerror(errno);
    ::close(fd);
    return false;
  }
  ::close(fd);
  return true;
}

// ---- the line ----

void appendMaskedTarget(std::string* out, std::string_view target, const std::vector<std::string>& names) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos || names.empty()) {
    appendEscaped(out, target);
    return;
  }
  appendEscaped(out, target.substr(0, q + 1));
  std::string_view query = target.substr(q + 1);
  while (true) {
    const size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    const size_t eq = param.find('=');
    if (eq != std::string_view::npos && nameIn(param.substr(0, eq), names)) {
      appendEscaped(out, param.substr(0, eq + 1));
      out->append("***");
    } else {
      appendEscaped(out, param);
    }
    if (amp == std::string_view::npos) break;
    out->push_back('&');
    query.remove_prefix(amp + 1);
  }
}

void formatAccessLine(std::string* out, const AccessEntry& e) {
  const time_t secs = static_cast<time_t>(e.unixMs / 1000);
  struct tm tm;
  ::gmtime_r(&secs, &tm);
  char t[40];
  int n = std::snprintf(t, sizeof t, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(e.unixMs % 1000));
  out->append(t, static_cast<size_t>(n));
  appendPeer(out, e.peer);
  out->push_back(' ');
  if (e.method.empty()) out->push_back('-');
  else appendEscaped(out, e.method);
  out->push_back(' ');
  if (e.target.empty()) out->push_back('-');
  else out->append(e.target);
  char b[64];
  n = std::snprintf(b, sizeof b, " %d %llu %s ", e.status, static_cast<unsigned long long>(e.bytes),
                    resultLabel(e.result));
  out->append(b, static_cast<size_t>(n));
  if (e.ttfbUs < 0) out->push_back('-');
  else appendMs(out, e.ttfbUs);
  out->push_back(' ');
  appendMs(out, e.durationUs);
  out->push_back(' ');
  out->append(formLabel(e.form));
  out->push_back(' ');
  appendQuoted(out, e.host);
  out->push_back(' ');
  appendQuoted(out, e.detail);
  out->push_back('\n');
}

// ---- the loop's buffer ----

AccessLogBuffer::~AccessLogBuffer() { flush(); }

void AccessLogBuffer::append(const std::shared_ptr<AccessLogSink>& sink, const AccessEntry& e) {
  if (sink_ != sink) {
    flush();
    sink_ = sink;
  }
  formatAccessLine(&buf_, e);
  ++lines_;
  if (buf_.size() >= kFlushBytes) {
    flush();
    return;
  }
  if (!posted_ && worker_) {
    posted_ = true;
    worker_->post([this] {
      posted_ = false;
      flush();
    });
  }
}

void AccessLogBuffer::flush() {
  if (buf_.empty()) return;
  const int fd = sink_ ? sink_->fd() : -1;
  size_t off = 0;
  while (fd >= 0 && off < buf_.size()) {
    ssize_t w = ::write(fd, buf_.data() + off, buf_.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;  // full disk, closed pipe, non-blocking and full: the rest is dropped
    off += static_cast<size_t>(w);
  }
  if (counters_) {
    if (off == buf_.size()) {
      counters_->add(counters_->access_log_lines, lines_);
    } else {
      // Lines wholly written before the failure count as written.
      uint64_t written = 0;
      for (size_t i = 0; i < off; ++i) written += buf_[i] == '\n';
      counters_->add(counters_->access_log_lines, written);
      counters_->add(counters_->access_log_dropped, lines_ - written);
    }
  }
  buf_.clear();  // keeps its capacity: no allocation per turn
  lines_ = 0;
}

}  // namespace orchard::server
