// TestClient implementation; see test_client.h.
#include "tests/integration/test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace orchard::itest {

std::optional<std::string> Response::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  return std::nullopt;
}

std::string Response::describe() const {
  std::string s = version + " " + std::to_string(status) + " " + reason + "\n";
  for (const auto& [k, v] : headers) s += k + ": " + v + "\n";
  s += "bodyLength=" + std::to_string(bodyLength) + " complete=" + (complete ? "1" : "0") +
       " eof=" + (eof ? "1" : "0") + " timedOut=" + (timedOut ? "1" : "0") +
       " disconnected=" + (disconnected ? "1" : "0");
  if (mismatchAt) s += " mismatchAt=" + std::to_string(*mismatchAt);
  if (!error.empty()) s += " error=" + error;
  if (!body.empty() && body.size() < 512) s += "\nbody: " + body;
  return s;
}

TestClient::TestClient(uint16_t port, int rcvbuf) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

TestClient::~TestClient() { close(); }

void TestClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool TestClient::send(std::string_view raw) {
  if (fd_ < 0) return false;
  while (!raw.empty()) {
    ssize_t w = ::send(fd_, raw.data(), raw.size(), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    raw.remove_prefix(static_cast<size_t>(w));
  }
  return true;
}

TestClient::Got TestClient::more(std::chrono::steady_clock::time_point deadline, size_t max) {
  if (fd_ < 0) return Got::Eof;
  while (true) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return Got::Timeout;
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()) + 1;
    pollfd p{fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) continue;  // re-check the deadline
    char tmp[256 * 1024];
    ssize_t n = ::recv(fd_, tmp, std::min(max, sizeof tmp), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Got::Eof;  // EOF or reset
    buf_.append(tmp, static_cast<size_t>(n));
    return Got::Data;
  }
}

bool TestClient::readLine(std::string* line, std::chrono::steady_clock::time_point deadline, Response* r) {
  while (true) {
    auto pos = buf_.find("\r\n");
    if (pos != std::string::npos) {
      *line = buf_.substr(0, pos);
      buf_.erase(0, pos + 2);
      return true;
    }
    Got g = more(deadline, 64 * 1024);
    if (g == Got::Eof) r->eof = true;
    if (g == Got::Timeout) r->timedOut = true;
    if (g != Got::Data) return false;
  }
}

void TestClient::body(Response* r, const ReadOptions& opts, const char* data, size_t n) {
  if (opts.expectSeed && !r->mismatchAt) {
    char ref[64 * 1024];
    for (size_t off = 0; off < n && !r->mismatchAt; off += sizeof ref) {
      size_t k = std::min(sizeof ref, n - off);
      genBytes(*opts.expectSeed, r->bodyLength + off, ref, k);
      if (std::memcmp(ref, data + off, k) != 0) {
        for (size_t i = 0; i < k; ++i)
          if (ref[i] != data[off + i]) {
            r->mismatchAt = r->bodyLength + off + i;
            break;
          }
      }
    }
  }
  r->bodyHash = fnv(r->bodyHash, data, n);
  if (r->body.size() < opts.keepBodyLimit) r->body.append(data, std::min(n, opts.keepBodyLimit - r->body.size()));
  r->bodyLength += n;
  if (opts.progress) opts.progress->store(r->bodyLength);
}

Response TestClient::read(const ReadOptions& opts) {
  Response r;
  const auto deadline = std::chrono::steady_clock::now() + opts.timeout;
  // ---- head ----
  std::string line;
  while (true) {
    if (!readLine(&line, deadline, &r)) return r;
    if (line.empty()) continue;  // tolerate stray CRLF
    auto sp1 = line.find(' ');
    if (sp1 == std::string::npos) {
      r.error = "bad status line: " + line;
      return r;
    }
    r.version = line.substr(0, sp1);
    r.status = std::atoi(line.c_str() + sp1 + 1);
    auto sp2 = line.find(' ', sp1 + 1);
    r.reason = sp2 == std::string::npos ? "" : line.substr(sp2 + 1);
    r.headers.clear();
    while (true) {
      if (!readLine(&line, deadline, &r)) return r;
      if (line.empty()) break;
      auto colon = line.find(':');
      if (colon == std::string::npos) {
        r.error = "bad header line: " + line;
        return r;
      }
      std::string v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
      r.headers.emplace_back(line.substr(0, colon), v);
    }
    if (r.status >= 200 || r.status == 101) break;  // skip 1xx interim answers
  }
  r.headComplete = true;

  // ---- body ----
  const bool noBody = opts.headRequest || r.status == 204 || r.status == 304;
  if (noBody) {
    r.complete = true;
    return r;
  }
  size_t readSize = std::max<size_t>(1, opts.readSize);
  uint64_t limit = opts.stopAfter.value_or(UINT64_MAX);
  auto stopNow = [&] {
    if (r.bodyLength >= limit) {
      r.disconnected = true;
      close();
      return true;
    }
    return false;
  };
  // Consumes up to `want` bytes already in buf_ as body.
  auto take = [&](uint64_t want) -> uint64_t {
    uint64_t n = std::min<uint64_t>({want, buf_.size(), limit - r.bodyLength});
    body(&r, opts, buf_.data(), static_cast<size_t>(n));
    buf_.erase(0, static_cast<size_t>(n));
    return n;
  };
  auto pull = [&]() -> bool {
    if (opts.delayMsPerRead > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opts.delayMsPerRead));
    Got g = more(deadline, readSize);
    if (g == Got::Eof) r.eof = true;
    if (g == Got::Timeout) r.timedOut = true;
    return g == Got::Data;
  };

  auto te = r.header("Transfer-Encoding");
  auto cl = r.header("Content-Length");
  if (te && strcasestr(te->c_str(), "chunked")) {
    while (true) {
      if (!readLine(&line, deadline, &r)) return r;
      uint64_t size = std::strtoull(line.c_str(), nullptr, 16);
      if (size == 0) {
        // Trailers up to the blank line.
        while (true) {
          if (!readLine(&line, deadline, &r)) return r;
          if (line.empty()) break;
        }
        r.complete = true;
        return r;
      }
      uint64_t left = size;
      while (left > 0) {
        left -= take(left);
        if (stopNow()) return r;
        if (left > 0 && !pull()) return r;
      }
      while (buf_.size() < 2)
        if (!pull()) return r;
      if (buf_.compare(0, 2, "\r\n") != 0) {
        r.error = "chunk not followed by CRLF";
        return r;
      }
      buf_.erase(0, 2);
    }
  }
  if (cl) {
    uint64_t left = std::strtoull(cl->c_str(), nullptr, 10);
    while (true) {
      left -= take(left);
      if (left == 0) break;
      if (stopNow()) return r;
      if (!pull()) return r;
    }
    r.complete = true;
    return r;
  }
  // Until close.
  r.closeDelimited = true;
  while (true) {
    take(UINT64_MAX);
    if (stopNow()) return r;
    if (!pull()) break;
  }
  r.complete = r.eof;
  return r;
}

bool TestClient::waitClosed(std::chrono::milliseconds timeout, std::string* extra) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    Got g = more(deadline, 64 * 1024);
    if (g == Got::Eof) {
      if (extra) *extra += buf_;
      buf_.clear();
      return true;
    }
    if (g == Got::Timeout) return false;
  }
}

std::string request(std::string_view method, std::string_view target, std::string_view host,
                    std::string_view extraHeaders) {
  std::string s;
  s += method;
  s += ' ';
  s += target;
  s += " HTTP/1.1\r\n";
  if (!host.empty()) {
    s += "Host: ";
    s += host;
    s += "\r\n";
  }
  s += extraHeaders;
  s += "\r\n";
  return s;
}

Response fetch(uint16_t port, const std::string& raw, const ReadOptions& opts) {
  TestClient c(port);
  if (!c.connected()) {
    Response r;
    r.error = "connect failed";
    return r;
  }
  if (!c.send(raw)) {
    Response r;
    r.error = "send failed";
    return r;
  }
  return c.read(opts);
}

}  // namespace orchard::itest
