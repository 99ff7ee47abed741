// FuzzServer: a real orchard Server in-process for the fuzz targets that
// drive it over sockets (http_server, upstream), set up the same way:
// one worker on 127.0.0.1:0, a fresh mkdtemp storage dir, upstream.allow =
// origin.test (and "origin.test.", which a "Host: origin.test.." reaches the
// upstream as) resolved to the target's own origin, so no input ever waits
// on DNS, errors-only logging. A target adjusts the config in `tweak`
// (timeouts, cache size) before the server starts.
//
// Lifecycle: start() once per process (FUZZ_CHECK on failure); stop() drains,
// stops and removes the dir, so leak checking sees a clean shutdown.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/log.h"
#include "config/config.h"
#include "server/server.h"
#include "tests/fuzz/fuzz_util.h"

namespace orchard::fuzz {

// "HTTP/1.1 NNN " with a status from 100 to 599.
inline bool statusLineOk(std::string_view s) {
  if (s.size() < 13 || s.substr(0, 9) != "HTTP/1.1 ") return false;
  for (size_t i = 9; i < 12; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return s[9] >= '1' && s[9] <= '5' && s[12] == ' ';
}

// FNV-1a of an input: picks how the input is sent, deterministically.
inline uint64_t fnv(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

struct FuzzServer {
  std::unique_ptr<server::Server> server;
  std::string dir;
  uint16_t port = 0;

  void start(uint16_t originPort, const std::function<void(config::Config&)>& tweak) {
    config::Config c = config::defaults();
    config::ListenAddress any;  // parse() rejects port 0; bind it directly
    any.host = "127.0.0.1";
    any.port = 0;
    any.text = "127.0.0.1:0";
    c.listen = {any};
    c.workers = 1;
    char tmpl[] = "/tmp/orchard-fuzz-XXXXXX";
    char* d = ::mkdtemp(tmpl);
    FUZZ_CHECK(d != nullptr, "mkdtemp failed");
    dir = d;
    c.storageDir = dir;
    c.upstreamAllow = {"origin.test"};
    const auto originAddr = config::ListenAddress::parse("127.0.0.1:" + std::to_string(originPort)).value();
    c.upstreamResolve["origin.test"] = originAddr;
    c.upstreamResolve["origin.test."] = originAddr;
    c.logLevel = log::Level::Error;
    c.appleOsFeedUrl = "";  // no fetch of Apple's OS-version feed from a test
    tweak(c);
    server = std::make_unique<server::Server>(std::move(c));
    auto r = server->start();
    FUZZ_CHECK(r.ok(), "server failed to start: %s", r.ok() ? "" : r.error().message().c_str());
    port = server->boundPort(0);
    FUZZ_CHECK(port != 0, "server bound no port");
  }

  void stop() {
    if (!server) return;
    server->drain(500);
    server->stop();
    server.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  // A blocking client socket connected to the server (TCP_NODELAY).
  int connect() const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0, "socket: %s", std::strerror(errno));
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    FUZZ_CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "connect to the server: %s",
               std::strerror(errno));
    return fd;
  }
};

}  // namespace orchard::fuzz
