// Integration harness: a TestOrigin plus the real Server, in process.
//
// Lifecycle per test: SetUp() starts the origin, then a Server on
// 127.0.0.1:0 with two workers, a fresh mkdtemp storage dir, upstream.allow
// = {"origin.test"} and upstream.resolve["origin.test"] pointed at the
// origin. Tests that need other settings call restartServer(tweak), which
// tears the running server down and starts a new one (new storage dir)
// with `tweak` applied to the config. TearDown() drains (1 s) and stops the
// server, then stops the origin (which opens every gate, so nothing hangs),
// then removes the storage dirs.
//
// Waiting: never a fixed sleep for state; waitFor(pred, timeout) polls a
// predicate every 2 ms until it holds or the deadline passes.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cache/store.h"
#include "common/log.h"
#include "config/config.h"
#include "server/metrics.h"
#include "server/server.h"
#include "tests/integration/test_client.h"
#include "tests/integration/test_origin.h"

namespace orchard::itest {

using namespace std::chrono_literals;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;

// Polls pred every 2 ms until it returns true or timeout passes.
template <class Pred>
bool waitFor(Pred pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // libuv writes with write(2): a peer that hung up raises SIGPIPE, which
    // would kill the test process. orchardd ignores it in main(); so do we.
    ::signal(SIGPIPE, SIG_IGN);
    log::setLevel(log::Level::Error);
    ASSERT_TRUE(origin.start()) << "test origin failed to start";
    startServer();
  }

  void TearDown() override {
    stopServer();
    origin.stop();
    for (const auto& d : dirs_) {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
  }

  config::Config baseConfig() {
    config::Config c = config::defaults();
    // ListenAddress::parse() rejects port 0 (a config file must name a port);
    // tests bind port 0 and read boundPort().
    config::ListenAddress any;
    any.host = "127.0.0.1";
    any.port = 0;
    any.text = "127.0.0.1:0";
    c.listen = {any};
    c.workers = 2;
    char tmpl[] = "/tmp/orchard-it-XXXXXX";
    char* d = ::mkdtemp(tmpl);
    EXPECT_NE(d, nullptr);
    dirs_.push_back(d ? d : "");
    c.storageDir = dirs_.back();
    c.upstreamAllow = {"origin.test"};
    c.upstreamResolve["origin.test"] =
        config::ListenAddress::parse("127.0.0.1:" + std::to_string(origin.port())).value();
    c.logLevel = log::Level::Error;
    c.appleOsFeedUrl = "";  // no fetch of Apple's OS-version feed from a test
    return c;
  }

  void startServer(const std::function<void(config::Config&)>& tweak = {}) {
    config::Config c = baseConfig();
    if (tweak) tweak(c);
    server = std::make_unique<server::Server>(std::move(c));
    if (beforeStart) beforeStart(*server);
    auto r = server->start();
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_NE(server->boundPort(0), 0);
  }

  void restartServer(const std::function<void(config::Config&)>& tweak = {}) {
    stopServer();
    startServer(tweak);
  }

  void stopServer() {
    if (!server) return;
    server->drain(1000);
    server->stop();
    server.reset();
  }

  uint16_t port() const { return server->boundPort(0); }
  server::CounterTotals counters() { return server::sumCounters(server->context().counters); }
  cache::StoreStats storeStats() { return server->context().store->stats(); }
  size_t fillsInFlight() { return server->context().fills->inFlight(); }

  // One GET on a fresh connection.
  Response fetchGet(const std::string& target, ReadOptions opts = {}, const std::string& extra = {}) {
    return fetch(port(), get(target, extra), opts);
  }
  // The same, on its own thread.
  std::future<Response> fetchAsync(const std::string& target, ReadOptions opts = {}, const std::string& extra = {}) {
    uint16_t p = port();
    return std::async(std::launch::async, [p, target, opts, extra] { return fetch(p, get(target, extra), opts); });
  }

  TestOrigin origin;
  std::unique_ptr<server::Server> server;
  // Runs between constructing the Server and start(): tests register
  // routes of their own here (server.context().routes).
  std::function<void(server::Server&)> beforeStart;

 private:
  std::vector<std::string> dirs_;
};

// Bounded wait on a future (so a hung client fails the test instead of the suite).
inline Response await(std::future<Response>& f, std::chrono::milliseconds timeout = 20s) {
  if (f.wait_for(timeout) != std::future_status::ready) {
    ADD_FAILURE() << "client did not finish in time";
    Response r;
    r.timedOut = true;
    return r;
  }
  return f.get();
}

}  // namespace orchard::itest
