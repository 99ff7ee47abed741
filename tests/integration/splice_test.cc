// Splice (server/net/splice.h) over real loopback TCP, on a libuv loop run by
// the test: client c1 <-> s1 [splice] s2 <-> client c2. Checks that bytes
// pass both ways intact, that a reader that stops reading stops the splice
// from reading the other side (backpressure: at most one read queued), that
// a half-close is passed on while the other direction carries on, that the
// tunnel ends (done(0)) once both directions ended, and that close() cuts
// both sides.
#include "server/net/splice.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>

#include "server/net/tcp_stream.h"

namespace orchard::server {
namespace {

struct End final : StreamReader {
  TcpStream* s = nullptr;
  std::string got;
  bool eof = false;
  int error = 0;
  void onStreamData(const char* d, size_t n) override { got.append(d, n); }
  void onStreamEnd() override { eof = true; }
  void onStreamError(int status) override { error = status; }
};

class SpliceTest : public ::testing::Test {
 protected:
  struct Listener {
    uv_tcp_t tcp;
    TcpStream* accepted = nullptr;
    sockaddr_in addr{};
  };

  void SetUp() override {
    uv_loop_init(&loop_);
    uv_timer_init(&loop_, &tick_);  // wakes the loop so runUntil() sees its deadline
    uv_timer_start(&tick_, [](uv_timer_t*) {}, 5, 5);
    for (Listener* l : {&l1_, &l2_}) {
      uv_tcp_init(&loop_, &l->tcp);
      l->tcp.data = l;
      uv_ip4_addr("127.0.0.1", 0, &l->addr);
      ASSERT_EQ(uv_tcp_bind(&l->tcp, reinterpret_cast<sockaddr*>(&l->addr), 0), 0);
      int len = sizeof l->addr;
      uv_tcp_getsockname(&l->tcp, reinterpret_cast<sockaddr*>(&l->addr), &len);
      ASSERT_EQ(uv_listen(reinterpret_cast<uv_stream_t*>(&l->tcp), 8,
                          [](uv_stream_t* server, int) {
                            auto* self = static_cast<Listener*>(server->data);
                            self->accepted = TcpStream::create(server->loop);
                            ASSERT_EQ(self->accepted->accept(server), 0);
                          }),
                0);
    }
    for (auto [end, l] : {std::pair{&c1_, &l1_}, std::pair{&c2_, &l2_}}) {
      end->s = TcpStream::create(&loop_);
      ASSERT_EQ(end->s->connect(reinterpret_cast<sockaddr*>(&l->addr), Completion{}), 0);
    }
    ASSERT_TRUE(runUntil([&] { return l1_.accepted && l2_.accepted; }));
    splice_ = Splice::start(l1_.accepted, l2_.accepted, Completion::to<&SpliceTest::onDone>(this));
  }

  void TearDown() override {
    for (End* e : {&c1_, &c2_}) e->s->close(Completion{});
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
    for (Listener* l : {&l1_, &l2_}) uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp), nullptr);
    if (!done_) splice_->close();
    for (int i = 0; i < 1000 && uv_loop_close(&loop_) == UV_EBUSY; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
    EXPECT_TRUE(done_);
  }

  bool runUntil(const std::function<bool()>& pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      uv_run(&loop_, UV_RUN_ONCE);
    }
    return true;
  }
  void runFor(std::chrono::milliseconds d) {
    runUntil([] { return false; }, d);
  }
  void onDone(int status) {
    done_ = true;
    status_ = status;
  }

  uv_loop_t loop_;
  uv_timer_t tick_;
  Listener l1_, l2_;
  End c1_, c2_;
  Splice* splice_ = nullptr;
  bool done_ = false;
  int status_ = 1;
};

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return s;
}

TEST_F(SpliceTest, BothWaysWithBackpressureAndHalfClose) {
  Stream* s2 = l2_.accepted;
  const std::string big = pattern(16 << 20);
  ASSERT_EQ(c1_.s->writeOwned(big, Completion{}), 0);
  ASSERT_EQ(c1_.s->startReading(&c1_), 0);
  // c2 does not read yet: the splice must stop reading s1, holding one read.
  runFor(std::chrono::milliseconds(300));
  EXPECT_LT(splice_->bytesAtoB(), big.size()) << "the splice read everything although its reader was stalled";
  EXPECT_LE(s2->queuedBytes(), 64u * 1024) << "more than one read queued towards the stalled side";
  EXPECT_FALSE(l1_.accepted->reading()) << "still reading the fast side while the slow side is full";

  ASSERT_EQ(c2_.s->startReading(&c2_), 0);
  ASSERT_TRUE(runUntil([&] { return c2_.got.size() >= big.size(); }));
  EXPECT_TRUE(c2_.got == big) << "bytes changed on the way";

  ASSERT_EQ(c2_.s->writeOwned("pong", Completion{}), 0);
  ASSERT_TRUE(runUntil([&] { return c1_.got == "pong"; }));

  // c1 half-closes: c2 sees the end, and may still talk to c1.
  ASSERT_EQ(c1_.s->shutdown(Completion{}), 0);
  ASSERT_TRUE(runUntil([&] { return c2_.eof; }));
  EXPECT_FALSE(done_);
  ASSERT_EQ(c2_.s->writeOwned("after", Completion{}), 0);
  ASSERT_TRUE(runUntil([&] { return c1_.got == "pongafter"; }));

  // Both directions ended: the tunnel is done.
  ASSERT_EQ(c2_.s->shutdown(Completion{}), 0);
  ASSERT_TRUE(runUntil([&] { return done_ && c1_.eof; }));
  EXPECT_EQ(status_, 0);
}

TEST_F(SpliceTest, CloseCutsBothSides) {
  ASSERT_EQ(c1_.s->startReading(&c1_), 0);
  ASSERT_EQ(c2_.s->startReading(&c2_), 0);
  ASSERT_EQ(c1_.s->writeOwned("hello", Completion{}), 0);
  ASSERT_TRUE(runUntil([&] { return c2_.got == "hello"; }));
  splice_->close();
  ASSERT_TRUE(runUntil([&] { return done_ && (c1_.eof || c1_.error) && (c2_.eof || c2_.error); }));
  EXPECT_EQ(status_, UV_ECANCELED);
}

}  // namespace
}  // namespace orchard::server
