// A handler registered by a test alone (no edit to the proxy or the
// connection code) is reached through the route table, gets its path
// parameters, and receives an upload body as a stream it can pause: the
// connection stops reading while the handler holds it paused, so the body
// never piles up in memory however large it is.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "integration/harness.h"
#include "server/context.h"
#include "server/http/local_handler.h"

namespace orchard::itest {
namespace {

constexpr uint64_t kPauseEvery = 1 << 20;  // the handler pauses the body after each MiB

// Counts and checksums an upload; pauses reading after every MiB and
// resumes on a later loop turn, recording the most bytes that arrived
// between a pause and the next resume.
class UploadSink final : public server::LocalHandler {
 public:
  UploadSink(server::HandlerRequest&& r)
      : LocalHandler(r.writer, std::move(r.head)), wc_(r.writer->wc()), name_(r.params.get("name")) {}
  ~UploadSink() override { *alive_ = false; }
  void start() override {}
  void onRequestBody(const char* data, size_t n) override {
    for (size_t i = 0; i < n; ++i) sum_ = sum_ * 31 + static_cast<unsigned char>(data[i]);
    bytes_ += n;
    sincePause_ += n;
    if (paused_) maxWhilePaused_ = std::max(maxWhilePaused_, sincePause_ - kPauseEvery);
    if (!paused_ && sincePause_ >= kPauseEvery && w_) {
      paused_ = true;
      ++pauses_;
      w_->pauseReading();
      std::weak_ptr<bool> alive = alive_;
      wc_->worker->post([this, alive] {
        if (auto a = alive.lock(); !a || !*a || !w_) return;
        paused_ = false;
        sincePause_ = 0;
        w_->resumeReading();
      });
    }
  }
  void onRequestComplete() override {
    LocalHandler::onRequestComplete();
    nlohmann::json j;
    j["name"] = name_;
    j["bytes"] = bytes_;
    j["sum"] = sum_;
    j["pauses"] = pauses_;
    j["max_while_paused"] = maxWhilePaused_;
    answer(201, "application/json", j.dump());
  }

 private:
  server::WorkerContext* wc_;
  std::string name_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  uint64_t bytes_ = 0, sum_ = 0, pauses_ = 0, sincePause_ = 0, maxWhilePaused_ = 0;
  bool paused_ = false;
};

class HandlerTest : public ServerTest {
 protected:
  void SetUp() override {
    beforeStart = [](server::Server& s) {
      s.context().routes.add("PUT", "/test/uploads/{name}",
                             [](server::HandlerRequest&& r) -> server::RequestHandler* { return new UploadSink(std::move(r)); });
    };
    ServerTest::SetUp();
  }
  std::string self() const { return "127.0.0.1:" + std::to_string(port()); }
};

TEST_F(HandlerTest, ExtraHandlerReceivesAStreamedUploadWithBackpressure) {
  constexpr uint64_t kSize = 24ull << 20;
  std::string chunk(256 * 1024, '\0');
  for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>((i * 7 + 3) & 0xff);
  uint64_t expected = 0;
  for (uint64_t sent = 0; sent < kSize; sent += chunk.size())
    for (char c : chunk) expected = expected * 31 + static_cast<unsigned char>(c);

  TestClient c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(request("PUT", "/test/uploads/my%20pkg", self(),
                             "Content-Length: " + std::to_string(kSize) + "\r\n")));
  for (uint64_t sent = 0; sent < kSize; sent += chunk.size()) ASSERT_TRUE(c.send(chunk));
  Response r = c.read();
  ASSERT_EQ(r.status, 201) << r.describe();
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["name"], "my pkg");  // the path parameter, percent-decoded
  EXPECT_EQ(j["bytes"], kSize);
  EXPECT_EQ(j["sum"], expected);
  EXPECT_GE(j["pauses"].get<uint64_t>(), kSize / kPauseEvery / 2);
  // While paused, at most what was already read from the socket (one read
  // buffer, 64 KiB) reaches the handler: the connection stopped reading.
  EXPECT_LE(j["max_while_paused"].get<uint64_t>(), 64u * 1024);
  EXPECT_EQ(counters().local, 1u);
  EXPECT_EQ(origin.requests("/test/uploads/my%20pkg"), 0u);
}

TEST_F(HandlerTest, AnotherMethodOnTheRouteIs405WithAllow) {
  TestClient c(port());
  ASSERT_TRUE(c.send(request("GET", "/test/uploads/x", self(), "")));
  Response r = c.read();
  EXPECT_EQ(r.status, 405) << r.describe();
  EXPECT_EQ(r.header("Allow").value_or(""), "PUT");
}

TEST_F(HandlerTest, AdminRoutesStillAnswer) {
  TestClient c(port());
  ASSERT_TRUE(c.send(request("GET", "/api/v1/status", self(), "")));
  Response r = c.read();
  EXPECT_EQ(r.status, 200) << r.describe();
  EXPECT_TRUE(nlohmann::json::parse(r.body).contains("CacheStatus"));
}

}  // namespace
}  // namespace orchard::itest
