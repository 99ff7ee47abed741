// TestOrigin implementation; see test_origin.h for the contract.
#include "tests/integration/test_origin.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <strings.h>

namespace orchard::itest {

void genBytes(uint64_t seed, uint64_t offset, char* out, size_t n) {
  size_t i = 0;
  // Unaligned head.
  while (i < n && (offset + i) % 8 != 0) {
    out[i] = static_cast<char>(genByte(seed, offset + i));
    ++i;
  }
  // Whole words.
  while (i + 8 <= n) {
    uint64_t w = genWord(seed, (offset + i) / 8);
    for (int b = 0; b < 8; ++b) out[i + b] = static_cast<char>(w >> (8 * b));
    i += 8;
  }
  while (i < n) {
    out[i] = static_cast<char>(genByte(seed, offset + i));
    ++i;
  }
}

std::string genString(uint64_t seed, uint64_t size) {
  std::string s(size, '\0');
  genBytes(seed, 0, s.data(), s.size());
  return s;
}

uint64_t fnv(uint64_t h, const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<uint8_t>(data[i]);
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t genHash(uint64_t seed, uint64_t size) {
  std::vector<char> block(64 * 1024);
  uint64_t h = kFnvInit;
  for (uint64_t off = 0; off < size;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(block.size(), size - off));
    genBytes(seed, off, block.data(), n);
    h = fnv(h, block.data(), n);
    off += n;
  }
  return h;
}

std::optional<std::string> ReceivedRequest::header(const std::string& name) const {
  for (const auto& [k, v] : headers)
    if (strcasecmp(k.c_str(), name.c_str()) == 0) return v;
  return std::nullopt;
}

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\t')) ++b;
  return s.substr(b);
}

bool ieq(const std::string& a, const char* b) { return strcasecmp(a.c_str(), b) == 0; }

// Buffered reads from a blocking socket.
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}
  // Reads up to and including the blank line. False on EOF/error or a head over 1 MiB.
  bool readHead(std::string* head) {
    while (true) {
      auto pos = buf_.find("\r\n\r\n");
      if (pos != std::string::npos) {
        *head = buf_.substr(0, pos + 4);
        buf_.erase(0, pos + 4);
        return true;
      }
      if (buf_.size() > (1 << 20) || !fill()) return false;
    }
  }
  bool readLine(std::string* line) {
    while (true) {
      auto pos = buf_.find("\r\n");
      if (pos != std::string::npos) {
        *line = buf_.substr(0, pos);
        buf_.erase(0, pos + 2);
        return true;
      }
      if (!fill()) return false;
    }
  }
  bool readExact(size_t n, std::string* out) {
    while (buf_.size() < n)
      if (!fill()) {
        out->append(buf_);
        buf_.clear();
        return false;
      }
    out->append(buf_, 0, n);
    buf_.erase(0, n);
    return true;
  }

 private:
  bool fill() {
    char tmp[64 * 1024];
    ssize_t n;
    do n = ::recv(fd_, tmp, sizeof tmp, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_;
  std::string buf_;
};

bool parseHead(const std::string& head, ReceivedRequest* r) {
  auto eol = head.find("\r\n");
  std::string line = head.substr(0, eol);
  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1) return false;
  r->method = line.substr(0, sp1);
  r->target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  r->path = r->target.substr(0, r->target.find('?'));
  r->head = head;
  size_t pos = eol + 2;
  while (pos < head.size()) {
    auto next = head.find("\r\n", pos);
    if (next == std::string::npos || next == pos) break;
    std::string h = head.substr(pos, next - pos);
    auto colon = h.find(':');
    if (colon != std::string::npos) r->headers.emplace_back(trim(h.substr(0, colon)), trim(h.substr(colon + 1)));
    pos = next + 2;
  }
  return true;
}

}  // namespace

bool TestOrigin::start() {
  listenFd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listenFd_ < 0) return false;
  int one = 1;
  ::setsockopt(listenFd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(listenFd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listenFd_, 256) != 0) {
    ::close(listenFd_);
    listenFd_ = -1;
    return false;
  }
  socklen_t len = sizeof a;
  ::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  acceptThread_ = std::thread([this] { acceptLoop(); });
  return true;
}

void TestOrigin::stop() {
  if (stopping_.exchange(true)) return;
  if (listenFd_ >= 0) ::shutdown(listenFd_, SHUT_RDWR);  // wakes accept()
  std::vector<std::shared_ptr<Gate>> gates;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (int fd : openFds_) ::shutdown(fd, SHUT_RDWR);
    gates = gates_;
  }
  stopCv_.notify_all();
  for (auto& g : gates) g->open();
  if (acceptThread_.joinable()) acceptThread_.join();
  if (listenFd_ >= 0) ::close(listenFd_);
  listenFd_ = -1;
  // No new connection threads can appear now.
  std::vector<std::unique_ptr<Conn>> conns;
  {
    std::lock_guard<std::mutex> l(mu_);
    conns.swap(conns_);
  }
  for (auto& c : conns)
    if (c->thread.joinable()) c->thread.join();
}

void TestOrigin::acceptLoop() {
  while (!stopping_) {
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    int index = accepted_.fetch_add(1);
    openFds_.push_back(fd);
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->thread = std::thread([this, fd, index] { serve(fd, index); });
    conns_.push_back(std::move(c));
  }
}

void TestOrigin::script(const std::string& path, Script s) {
  std::lock_guard<std::mutex> l(mu_);
  if (s.beforeHead) gates_.push_back(s.beforeHead);
  if (s.bodyGate) gates_.push_back(s.bodyGate);
  scripts_[path] = std::move(s);
}

std::optional<Script> TestOrigin::scriptFor(const std::string& path) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = scripts_.find(path);
  if (it == scripts_.end()) return std::nullopt;
  return it->second;
}

int TestOrigin::requests(const std::string& path) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = requests_.find(path);
  return it == requests_.end() ? 0 : it->second;
}

int TestOrigin::totalRequests() const {
  std::lock_guard<std::mutex> l(mu_);
  return static_cast<int>(received_.size());
}

int TestOrigin::responsesCompleted(const std::string& path) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = completed_.find(path);
  return it == completed_.end() ? 0 : it->second;
}

std::vector<ReceivedRequest> TestOrigin::received(const std::string& path) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<ReceivedRequest> out;
  for (const auto& r : received_)
    if (r.path == path) out.push_back(r);
  return out;
}

std::vector<ReceivedRequest> TestOrigin::allReceived() const {
  std::lock_guard<std::mutex> l(mu_);
  return received_;
}

bool TestOrigin::waitForRequests(const std::string& path, int n, std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (requests(path) < n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

bool TestOrigin::waitForCompleted(const std::string& path, int n, std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (responsesCompleted(path) < n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

bool TestOrigin::sleepFor(std::chrono::microseconds d) {
  std::unique_lock<std::mutex> l(mu_);
  return !stopCv_.wait_for(l, d, [&] { return stopping_.load(); });
}

bool TestOrigin::sendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void TestOrigin::serve(int fd, int index) {
  Reader rd(fd);
  while (!stopping_) {
    std::string head;
    if (!rd.readHead(&head)) break;
    ReceivedRequest req;
    if (!parseHead(head, &req)) break;
    req.connection = index;
    // Request body.
    auto te = req.header("Transfer-Encoding");
    auto cl = req.header("Content-Length");
    if (te && strcasestr(te->c_str(), "chunked")) {
      req.chunked = true;
      req.bodyComplete = false;
      std::string line;
      while (rd.readLine(&line)) {
        size_t n = std::strtoull(line.c_str(), nullptr, 16);
        if (n == 0) {
          // Trailers up to the blank line.
          while (rd.readLine(&line) && !line.empty()) {
          }
          req.bodyComplete = true;
          break;
        }
        std::string crlf;
        if (!rd.readExact(n, &req.body) || !rd.readExact(2, &crlf)) break;
      }
    } else if (cl) {
      size_t n = std::strtoull(cl->c_str(), nullptr, 10);
      req.bodyComplete = rd.readExact(n, &req.body);
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      requests_[req.path]++;
      received_.push_back(req);
    }
    if (!req.bodyComplete) break;
    auto s = scriptFor(req.path);
    Script script;
    if (s) {
      script = *s;
    } else {
      script = Script::text("no script for " + req.path + "\n");
      script.status = 404;
      script.reason = "Not Found";
    }
    if (script.echoRequestBody) script.literal = req.body;
    bool keep = respond(fd, req, script);
    auto conn = req.header("Connection");
    if (!keep || (conn && ieq(*conn, "close"))) break;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    openFds_.erase(std::remove(openFds_.begin(), openFds_.end(), fd), openFds_.end());
  }
  ::close(fd);
}

bool TestOrigin::respond(int fd, const ReceivedRequest& req, const Script& s) {
  if (s.delayMs > 0 && !sleepFor(std::chrono::milliseconds(s.delayMs))) return false;
  if (s.beforeHead) {
    s.beforeHead->noteArrival();
    s.beforeHead->wait();
  }
  if (stopping_ || s.closeBeforeHead) return false;

  const bool head = req.method == "HEAD";
  const bool noBody = head || s.status == 204 || s.status == 304 || s.status < 200;
  const uint64_t size = s.bodySize();
  std::string out = "HTTP/1.1 " + std::to_string(s.status) + " " + s.reason + "\r\n";
  for (const auto& [k, v] : s.headers) out += k + ": " + v + "\r\n";
  switch (s.framing) {
    case Script::Framing::ContentLength:
      if (s.status != 204 && s.status != 304) out += "Content-Length: " + std::to_string(size) + "\r\n";
      break;
    case Script::Framing::Chunked:
      if (!noBody) out += "Transfer-Encoding: chunked\r\n";
      break;
    case Script::Framing::Close:
      break;
  }
  const bool keep = s.keepAlive && s.framing != Script::Framing::Close && !s.abortAfter;
  if (!keep) out += "Connection: close\r\n";
  out += "\r\n";
  if (!sendAll(fd, out.data(), out.size())) return false;
  if (noBody) {
    std::lock_guard<std::mutex> l(mu_);
    completed_[req.path]++;
    return keep;
  }

  const bool chunked = s.framing == Script::Framing::Chunked;
  size_t piece = chunked ? s.chunkSize : 64 * 1024;
  if (s.bytesPerSecond) piece = std::max<size_t>(1, std::min<uint64_t>(piece, s.bytesPerSecond / 50));
  std::vector<char> block(piece);
  uint64_t sent = 0;
  bool gated = !s.bodyGate;
  const uint64_t end = s.abortAfter ? std::min(*s.abortAfter, size) : size;
  while (sent < end) {
    if (!gated && sent >= s.gateAt) {
      s.bodyGate->noteArrival();
      s.bodyGate->wait();
      gated = true;
      if (stopping_) return false;
    }
    uint64_t n = std::min<uint64_t>(piece, end - sent);
    if (!gated) n = std::min<uint64_t>(n, s.gateAt - sent);
    if (s.literal) std::memcpy(block.data(), s.literal->data() + sent, n);
    else genBytes(s.seed, sent, block.data(), n);
    if (chunked) {
      char len[24];
      int l = std::snprintf(len, sizeof len, "%llx\r\n", static_cast<unsigned long long>(n));
      if (!sendAll(fd, len, static_cast<size_t>(l))) return false;
    }
    if (!sendAll(fd, block.data(), n)) return false;
    if (chunked && !sendAll(fd, "\r\n", 2)) return false;
    sent += n;
    if (s.bytesPerSecond && !sleepFor(std::chrono::microseconds(n * 1'000'000 / s.bytesPerSecond))) return false;
    if (stopping_) return false;
  }
  if (s.abortAfter && *s.abortAfter < size) return false;  // close mid-body
  if (chunked && !sendAll(fd, "0\r\n\r\n", 5)) return false;
  {
    std::lock_guard<std::mutex> l(mu_);
    completed_[req.path]++;
  }
  return keep;
}

}  // namespace orchard::itest
