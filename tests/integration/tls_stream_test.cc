// TlsStream (server/net/tls_stream.h) over real loopback TCP on a loop run
// by the test, with the box's own CA (server/net/local_ca.h) made in a
// temporary directory: a server TlsStream on the accepted socket, a client
// TlsStream on the connecting one. Checks the handshake, writes made before
// it ended, a large transfer both ways with a reader that stops and starts
// (backpressure), close_notify as the end of stream, session resumption on
// a second connection, and the refusals: an untrusted CA, a wrong name,
// and plain bytes sent to a TLS server.
#include "server/net/tls_stream.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include "server/net/local_ca.h"
#include "server/net/tcp_stream.h"
#include "server/net/tls_context.h"

namespace orchard::server {
namespace {

struct End final : StreamReader {
  Stream* s = nullptr;
  std::string got;
  bool eof = false;
  int error = 0;
  size_t stopAt = 0;  // stop reading once this many bytes arrived (0: never)
  void onStreamData(const char* d, size_t n) override {
    got.append(d, n);
    if (stopAt && got.size() >= stopAt) {
      s->stopReading();
      stopAt = 0;
    }
  }
  void onStreamEnd() override { eof = true; }
  void onStreamError(int status) override { error = status; }
};

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return s;
}

class TlsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-tls-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::string err;
    ASSERT_TRUE(tls::ensureLocalCertificate(dir_, {"localhost", "box.test"}, {"127.0.0.1"}, std::time(nullptr),
                                            &cert_, &err))
        << err;
    serverCtx_ = tls::makeServerContext(cert_.certPath, cert_.keyPath, &err);
    ASSERT_TRUE(serverCtx_) << err;
    client_ = tls::ClientContext::create(cert_.caPath, &err);
    ASSERT_TRUE(client_) << err;

    uv_loop_init(&loop_);
    uv_timer_init(&loop_, &tick_);
    uv_timer_start(&tick_, [](uv_timer_t*) {}, 5, 5);
    uv_tcp_init(&loop_, &listener_);
    listener_.data = this;
    uv_ip4_addr("127.0.0.1", 0, &addr_);
    ASSERT_EQ(uv_tcp_bind(&listener_, reinterpret_cast<sockaddr*>(&addr_), 0), 0);
    int len = sizeof addr_;
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&addr_), &len);
    ASSERT_EQ(uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 8,
                        [](uv_stream_t* server, int) {
                          auto* self = static_cast<TlsStreamTest*>(server->data);
                          auto* tcp = TcpStream::create(server->loop);
                          ASSERT_EQ(tcp->accept(server), 0);
                          self->accepted_ = tcp;
                        }),
              0);
  }

  void TearDown() override {
    for (End* e : {&client_end_, &server_end_})
      if (e->s) e->s->close(Completion{});
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    for (int i = 0; i < 1000 && uv_loop_close(&loop_) == UV_EBUSY; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
    std::filesystem::remove_all(dir_);
  }

  // Connects a client TLS stream for `name` and wraps the accepted side in
  // a server one (when `serverTls`, else the server end is plain TCP).
  void connect(const std::string& name, bool serverTls = true, tls::ClientContext* client = nullptr) {
    accepted_ = nullptr;
    client_end_ = End{};
    server_end_ = End{};
    auto* tcp = TcpStream::create(&loop_);
    ASSERT_EQ(tcp->connect(reinterpret_cast<sockaddr*>(&addr_), Completion{}), 0);
    client_end_.s = TlsStream::create(&loop_, tcp, (client ? client : client_.get())->newSsl(name, 443));
    ASSERT_TRUE(runUntil([&] { return accepted_ != nullptr; }));
    server_end_.s = serverTls ? static_cast<Stream*>(
                                    TlsStream::create(&loop_, accepted_, tls::newServerSsl(serverCtx_.get())))
                              : accepted_;
  }

  bool runUntil(const std::function<bool()>& pred, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      uv_run(&loop_, UV_RUN_ONCE);
    }
    return true;
  }
  void runFor(std::chrono::milliseconds d) { runUntil([] { return false; }, d); }

  TlsStream* clientTls() { return static_cast<TlsStream*>(client_end_.s); }

  std::string dir_;
  tls::LocalCertificate cert_;
  tls::CtxPtr serverCtx_;
  std::shared_ptr<tls::ClientContext> client_;
  uv_loop_t loop_;
  uv_timer_t tick_;
  uv_tcp_t listener_;
  sockaddr_in addr_{};
  TcpStream* accepted_ = nullptr;
  End client_end_, server_end_;
};

TEST_F(TlsStreamTest, WritesBeforeTheHandshakeArriveInOrderAndCloseNotifyEnds) {
  connect("localhost");
  // Written at once, before any handshake record was read.
  int done = 0;
  auto count = Completion{[](void* c, int status) { *static_cast<int*>(c) += status == 0 ? 1 : 100; }, &done};
  ASSERT_EQ(client_end_.s->writeOwned("GET / HTTP/1.1\r\n", count), 0);
  ASSERT_EQ(client_end_.s->writeOwned("\r\n", count), 0);
  ASSERT_EQ(server_end_.s->startReading(&server_end_), 0);
  ASSERT_EQ(client_end_.s->startReading(&client_end_), 0);
  ASSERT_TRUE(runUntil([&] { return server_end_.got.size() >= 18; }));
  EXPECT_EQ(server_end_.got, "GET / HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(runUntil([&] { return done == 2; })) << "each queued write completes once, with 0";
  EXPECT_TRUE(clientTls()->handshakeDone());
  EXPECT_STREQ(clientTls()->version(), "TLSv1.3");

  // The small-answer path: tryWrite takes everything once the handshake is done.
  uv_buf_t b = uv_buf_init(const_cast<char*>("HTTP/1.1 200 OK\r\n\r\n"), 19);
  EXPECT_EQ(server_end_.s->tryWrite(&b, 1), 19);
  ASSERT_TRUE(runUntil([&] { return client_end_.got.size() == 19; }));

  ASSERT_EQ(server_end_.s->shutdown(Completion{}), 0);
  EXPECT_TRUE(runUntil([&] { return client_end_.eof; })) << "close_notify is an end of stream";
  EXPECT_EQ(client_end_.error, 0);
}

TEST_F(TlsStreamTest, LargeTransferBothWaysWithAStalledReader) {
  connect("box.test");
  const std::string up = pattern(8 << 20), down = pattern(6 << 20);
  ASSERT_EQ(client_end_.s->writeOwned(up, Completion{}), 0);
  ASSERT_EQ(server_end_.s->writeOwned(down, Completion{}), 0);
  // The server stops reading at 1 MiB: the rest must wait, not pile up.
  server_end_.stopAt = 1 << 20;
  ASSERT_EQ(server_end_.s->startReading(&server_end_), 0);
  ASSERT_EQ(client_end_.s->startReading(&client_end_), 0);
  ASSERT_TRUE(runUntil([&] { return client_end_.got.size() == down.size(); }));
  runFor(std::chrono::milliseconds(200));
  EXPECT_LT(server_end_.got.size(), up.size()) << "read on although the reader stopped";
  EXPECT_FALSE(server_end_.s->reading());
  ASSERT_EQ(server_end_.s->startReading(&server_end_), 0);
  ASSERT_TRUE(runUntil([&] { return server_end_.got.size() == up.size(); }));
  EXPECT_TRUE(server_end_.got == up);
  EXPECT_TRUE(client_end_.got == down);
}

TEST_F(TlsStreamTest, ASecondConnectionResumesTheSession) {
  connect("localhost");
  ASSERT_EQ(server_end_.s->startReading(&server_end_), 0);
  ASSERT_EQ(client_end_.s->startReading(&client_end_), 0);
  ASSERT_EQ(client_end_.s->writeOwned("ping", Completion{}), 0);
  ASSERT_TRUE(runUntil([&] { return server_end_.got == "ping"; }));
  ASSERT_EQ(server_end_.s->writeOwned("pong", Completion{}), 0);
  // The TLS 1.3 ticket comes after the handshake; reading "pong" reads it.
  ASSERT_TRUE(runUntil([&] { return client_end_.got == "pong" && client_->cachedSessions() == 1; }));
  EXPECT_FALSE(clientTls()->resumed());
  client_end_.s->close(Completion{});
  server_end_.s->close(Completion{});
  client_end_.s = server_end_.s = nullptr;

  const uint64_t before = tls::counters().resumed.load();
  connect("localhost");
  ASSERT_EQ(server_end_.s->startReading(&server_end_), 0);
  ASSERT_EQ(client_end_.s->startReading(&client_end_), 0);
  ASSERT_EQ(client_end_.s->writeOwned("again", Completion{}), 0);
  ASSERT_TRUE(runUntil([&] { return server_end_.got == "again"; }));
  EXPECT_TRUE(clientTls()->resumed()) << "the cached session was not used";
  EXPECT_GE(tls::counters().resumed.load(), before + 2) << "both ends count the resumption";
}

TEST_F(TlsStreamTest, AnUntrustedCertificateIsRefusedWithTheReason) {
  std::string err;
  auto noCa = tls::ClientContext::create("", &err);  // the system store only
  ASSERT_TRUE(noCa) << err;
  const uint64_t before = tls::counters().verify_failures.load();
  connect("localhost", true, noCa.get());
  ASSERT_EQ(server_end_.s->startReading(&server_end_), 0);
  ASSERT_EQ(client_end_.s->startReading(&client_end_), 0);
  ASSERT_TRUE(runUntil([&] { return client_end_.error != 0; }));
  EXPECT_EQ(client_end_.error, UV_EPROTO);
  EXPECT_TRUE(clientTls()->verifyFailed());
  EXPECT_NE(clientTls()->failure().find("certificate verify failed"), std::string::npos) << clientTls()->failure();
  EXPECT_EQ(tls::counters().verify_failures.load(), before + 1);
  EXPECT_TRUE(runUntil([&] { return server_end_.error != 0 || server_end_.eof; }));
  EXPECT_TRUE(server_end_.got.empty());
}

TEST_F(TlsStreamTest, AWrongNameIsRefused) {
  connect("other.example");
  ASSERT_EQ(server_end_.s->startReading(&server_end_), 0);
  ASSERT_EQ(client_end_.s->writeOwned("secret", Completion{}), 0);  // must never leave
  ASSERT_EQ(client_end_.s->startReading(&client_end_), 0);
  ASSERT_TRUE(runUntil([&] { return client_end_.error != 0; }));
  EXPECT_TRUE(clientTls()->verifyFailed());
  EXPECT_NE(clientTls()->failure().find("hostname mismatch"), std::string::npos) << clientTls()->failure();
  runFor(std::chrono::milliseconds(100));
  EXPECT_TRUE(server_end_.got.empty()) << "bytes were sent to a server whose name did not match";
}

TEST_F(TlsStreamTest, PlainHttpToATlsServerBreaksTheStreamAndDrainsTheErrorQueue) {
  // A plain client: connect with a TCP stream only.
  accepted_ = nullptr;
  auto* plain = TcpStream::create(&loop_);
  ASSERT_EQ(plain->connect(reinterpret_cast<sockaddr*>(&addr_), Completion{}), 0);
  client_end_.s = plain;
  ASSERT_TRUE(runUntil([&] { return accepted_ != nullptr; }));
  server_end_.s = TlsStream::create(&loop_, accepted_, tls::newServerSsl(serverCtx_.get()));
  const uint64_t errors = tls::counters().errors.load();
  const uint64_t failures = tls::counters().handshake_failures.load();
  ASSERT_EQ(server_end_.s->startReading(&server_end_), 0);
  ASSERT_EQ(client_end_.s->startReading(&client_end_), 0);
  ASSERT_EQ(plain->writeOwned("GET / HTTP/1.1\r\nHost: x\r\n\r\n", Completion{}), 0);
  ASSERT_TRUE(runUntil([&] { return server_end_.error != 0; }));
  EXPECT_EQ(server_end_.error, UV_EPROTO);
  EXPECT_GT(tls::counters().errors.load(), errors);
  EXPECT_EQ(tls::counters().handshake_failures.load(), failures + 1);
  EXPECT_FALSE(static_cast<TlsStream*>(server_end_.s)->failure().empty());
  EXPECT_EQ(ERR_peek_error(), 0u) << "an OpenSSL error was left on the thread's queue";
}

TEST(LocalCa, IsReusedAndTheLeafIsRemadeForANewName) {
  char tmpl[] = "/tmp/orchard-ca-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::time_t now = std::time(nullptr);
  tls::LocalCertificate a, b, c, d;
  std::string err;
  ASSERT_TRUE(tls::ensureLocalCertificate(dir, {"box"}, {"10.1.2.3"}, now, &a, &err)) << err;
  EXPECT_TRUE(a.madeCa);
  EXPECT_TRUE(a.madeLeaf);
  EXPECT_EQ(a.leafFingerprint.size(), 32u * 3 - 1);
  ASSERT_TRUE(tls::ensureLocalCertificate(dir, {"box"}, {"10.1.2.3"}, now, &b, &err)) << err;
  EXPECT_FALSE(b.madeCa);
  EXPECT_FALSE(b.madeLeaf);
  EXPECT_EQ(a.leafFingerprint, b.leafFingerprint);
  EXPECT_EQ(a.caPem, b.caPem);
  // A new address: a new leaf from the same CA.
  ASSERT_TRUE(tls::ensureLocalCertificate(dir, {"box"}, {"10.1.2.3", "10.9.9.9"}, now, &c, &err)) << err;
  EXPECT_FALSE(c.madeCa);
  EXPECT_TRUE(c.madeLeaf);
  EXPECT_EQ(a.caFingerprint, c.caFingerprint);
  // Near expiry (a year on): renewed.
  ASSERT_TRUE(tls::ensureLocalCertificate(dir, {"box"}, {"10.1.2.3"}, now + 380 * 86400, &d, &err)) << err;
  EXPECT_TRUE(d.madeLeaf);
  EXPECT_EQ(std::filesystem::status(dir + "/tls/key.pem").permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::none);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace orchard::server
