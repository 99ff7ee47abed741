// CONNECT tunnels (server/proxy/tunnel.h) on the real server in process, so
// the sanitizer builds run the hand-over from ClientConn to Splice and every
// way a tunnel ends: bytes both ways with the ones sent behind the CONNECT
// head first, a half-close passed on, the idle timeout, a client that leaves
// while the origin is being dialled, the connect timeout, a name that
// resolves to loopback, and a server stopped with tunnels open (TearDown).
//
// The origin is a TCP echo server on its own thread (EchoOrigin), reached
// as echo.test through upstream.resolve.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

namespace orchard::itest {
namespace {

// Echoes every byte; at end of stream shuts its side and closes.
class EchoOrigin {
 public:
  EchoOrigin() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~EchoOrigin() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    for (auto& t : conns_) t.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      accepted_++;
      conns_.emplace_back([this, c] {
        char buf[65536];
        while (!stop_) {
          pollfd q{c, POLLIN, 0};
          if (::poll(&q, 1, 50) <= 0) continue;
          ssize_t n = ::recv(c, buf, sizeof buf, 0);
          if (n <= 0) break;
          for (ssize_t off = 0; off < n;) {
            ssize_t w = ::send(c, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
            if (w <= 0) break;
            off += w;
          }
        }
        ::shutdown(c, SHUT_WR);
        ::close(c);
      });
    }
  }
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
  std::vector<std::thread> conns_;
};

int dial(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool sendAll(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    s.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until `pred(buffer)` holds, the peer closes (*eof) or the deadline.
template <class Pred>
std::string readUntil(int fd, Pred pred, bool* eof = nullptr, std::chrono::milliseconds limit = 10s) {
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  if (eof) *eof = false;
  while (!pred(got)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (eof) *eof = true;
      break;
    }
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

std::string headOf(const std::string& s) { return s.substr(0, s.find("\r\n\r\n")); }
bool hasHead(const std::string& s) { return s.find("\r\n\r\n") != std::string::npos; }
std::string afterHead(const std::string& s) { return s.substr(s.find("\r\n\r\n") + 4); }

std::string connectHead(std::string_view target) {
  return "CONNECT " + std::string(target) + " HTTP/1.1\r\nHost: " + std::string(target) + "\r\n\r\n";
}

class Connect : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    restartServer([this](config::Config& c) { tweak(c); });
  }
  void tweak(config::Config& c) {
    c.upstreamAllow.push_back("echo.test");
    c.upstreamAllow.push_back("localhost");
    c.upstreamResolve["echo.test"] =
        config::ListenAddress::parse("127.0.0.1:" + std::to_string(echo.port())).value();
    c.tunnelIdleTimeoutMs = 60'000;
  }
  EchoOrigin echo;
};

TEST_F(Connect, RelaysBothWaysEarlyBytesFirstAndHalfClose) {
  int fd = dial(port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(sendAll(fd, connectHead("echo.test:443") + "early;"));
  std::string got = readUntil(fd, [](const std::string& s) { return hasHead(s) && afterHead(s).size() >= 6; });
  ASSERT_TRUE(hasHead(got)) << got;
  EXPECT_EQ(headOf(got), "HTTP/1.1 200 Connection Established");
  EXPECT_EQ(afterHead(got), "early;");
  // 4 MiB up while reading the echo: backpressure both ways, nothing lost.
  std::string big(4 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 31 + i / 7919) % 26);
  std::thread writer([&] { sendAll(fd, big); });
  std::string echoed = readUntil(fd, [&](const std::string& s) { return s.size() >= big.size(); }, nullptr, 30s);
  writer.join();
  EXPECT_TRUE(echoed == big) << "got " << echoed.size() << " bytes";
  EXPECT_EQ(counters().tunnels_opened, 1u);
  ::shutdown(fd, SHUT_WR);
  bool eof = false;
  std::string rest = readUntil(fd, [](const std::string&) { return false; }, &eof);
  EXPECT_TRUE(eof) << "the origin's end of stream did not come through";
  EXPECT_EQ(rest, "");
  ::close(fd);
  EXPECT_TRUE(waitFor([&] { return counters().tunnel_bytes_up >= big.size() + 6; }));
  EXPECT_TRUE(waitFor([&] { return counters().tunnel_bytes_down >= big.size() + 6; }));
  EXPECT_TRUE(waitFor([&] { return counters().open_connections == 0; }));
}

TEST_F(Connect, RefusalsAreAnsweredAndCounted) {
  struct Case {
    const char* target;
    const char* status;
  } cases[] = {
      {"echo.test:8443", "HTTP/1.1 403 "},
      {"elsewhere.test:443", "HTTP/1.1 403 "},
      {"echo.test", "HTTP/1.1 400 "},
      {"localhost:443", "HTTP/1.1 403 "},  // allowed, no resolve entry: DNS says loopback
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.target);
    int fd = dial(port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(sendAll(fd, connectHead(c.target) + "\x16\x03\x01 not http"));
    bool eof = false;
    std::string got = readUntil(fd, [](const std::string&) { return false; }, &eof);
    EXPECT_EQ(got.rfind(c.status, 0), 0u) << got;
    EXPECT_TRUE(eof) << "the connection stays open after a refused CONNECT";
    ::close(fd);
  }
  server::CounterTotals t = counters();
  EXPECT_EQ(t.tunnels_refused_port, 1u);
  EXPECT_EQ(t.tunnels_refused_host, 1u);
  EXPECT_EQ(t.tunnels_refused_target, 1u);
  EXPECT_EQ(t.tunnels_refused_address, 1u);
  EXPECT_EQ(t.upstream_address_refusals, 1u);
  EXPECT_EQ(t.tunnels_opened, 0u);
  EXPECT_EQ(echo.accepted(), 0);
}

TEST_F(Connect, IdleTunnelClosesAtItsTimeout) {
  restartServer([this](config::Config& c) {
    tweak(c);
    c.tunnelIdleTimeoutMs = 1000;
  });
  int fd = dial(port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(sendAll(fd, connectHead("echo.test:443")));
  std::string got = readUntil(fd, hasHead);
  ASSERT_EQ(headOf(got), "HTTP/1.1 200 Connection Established");
  const auto start = std::chrono::steady_clock::now();
  bool eof = false;
  readUntil(fd, [](const std::string&) { return false; }, &eof, 5s);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(eof);
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 3s);
  ::close(fd);
  EXPECT_TRUE(waitFor([&] { return counters().tunnel_idle_timeouts == 1; }));
  EXPECT_TRUE(waitFor([&] { return counters().open_connections == 0; }));
}

// A listener that never accepts, its accept queue filled: further SYNs are
// dropped, so a connect to it hangs (until the caller's timeout).
class Blackhole {
 public:
  Blackhole() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    for (int i = 0; i < 4; ++i) {
      int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
      fillers_.push_back(c);
    }
    std::this_thread::sleep_for(100ms);  // the handshakes that fit complete; the rest wait
  }
  ~Blackhole() {
    for (int c : fillers_) ::close(c);
    ::close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::vector<int> fillers_;
};

TEST_F(Connect, ClientLeavingWhileTheOriginIsDialledAndTheConnectTimeout) {
  Blackhole hole;
  restartServer([&](config::Config& c) {
    tweak(c);
    c.upstreamAllow.push_back("blackhole.test");
    c.upstreamResolve["blackhole.test"] =
        config::ListenAddress::parse("127.0.0.1:" + std::to_string(hole.port())).value();
    c.connectTimeoutMs = 400;
  });
  for (int i = 0; i < 20; ++i) {
    int fd = dial(port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(sendAll(fd, connectHead(i % 2 ? "blackhole.test:443" : "echo.test:443")));
    ::close(fd);  // gone before (or just as) the origin answers
  }
  int fd = dial(port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(sendAll(fd, connectHead("blackhole.test:443")));
  bool eof = false;
  std::string got = readUntil(fd, [](const std::string&) { return false; }, &eof, 5s);
  EXPECT_EQ(got.rfind("HTTP/1.1 504 ", 0), 0u) << got;
  EXPECT_TRUE(eof);
  ::close(fd);
  EXPECT_TRUE(waitFor([&] { return counters().open_connections == 0; }));
}

TEST_F(Connect, StopWithTunnelsOpen) {
  std::vector<int> fds;
  for (int i = 0; i < 4; ++i) {
    int fd = dial(port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(sendAll(fd, connectHead("echo.test:443") + "x"));
    std::string got = readUntil(fd, [](const std::string& s) { return hasHead(s) && !afterHead(s).empty(); });
    ASSERT_EQ(headOf(got), "HTTP/1.1 200 Connection Established");
    fds.push_back(fd);
  }
  EXPECT_TRUE(waitFor([&] { return counters().open_connections == 4; }));
  stopServer();  // drain (idle tunnels close within 250 ms), then stop; leaks show under ASan
  for (int fd : fds) {
    bool eof = false;
    readUntil(fd, [](const std::string&) { return false; }, &eof, 2s);
    EXPECT_TRUE(eof);
    ::close(fd);
  }
}

}  // namespace
}  // namespace orchard::itest
