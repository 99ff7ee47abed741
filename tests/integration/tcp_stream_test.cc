// TcpStream's splice path (file -> pipe -> socket) keeps file bytes in its
// pipe when the socket is full. Those bytes belong to one descriptor at one
// offset: a caller that leaves the kernel path (copies the next bytes
// itself, moves to another range, or starts the next answer with a head
// write) must never have them sent in place of what it asked for. This was
// a hit served with stale bytes in the middle (CI, "second hit: first wrong
// byte at 6225920") when the page cache check sent the body sender to the
// copy path between two splices.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "server/net/tcp_stream.h"

namespace orchard::server {
namespace {

// Byte i of file `tag`: its tag and its offset mixed, so a byte from the
// wrong file or the wrong place shows.
char fileByte(char tag, uint64_t i) { return static_cast<char>(tag ^ (i * 131 + (i >> 12))); }

class SpliceFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TcpStream::setFilePath(TcpStream::FilePath::Splice);
    dir_ = std::filesystem::temp_directory_path() / ("orchard-splice-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    uv_loop_init(&loop_);
    uv_tcp_init(&loop_, &listener_);
    listener_.data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    ASSERT_EQ(uv_tcp_bind(&listener_, reinterpret_cast<sockaddr*>(&addr), 0), 0);
    int len = sizeof addr;
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    ASSERT_EQ(uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 4,
                        [](uv_stream_t* server, int) {
                          auto* self = static_cast<SpliceFileTest*>(server->data);
                          auto* tcp = TcpStream::create(server->loop);
                          ASSERT_EQ(tcp->accept(server), 0);
                          self->server_ = tcp;
                        }),
              0);
    // The reader: a plain socket with a small receive buffer that reads
    // only when told to, so the server's socket fills and the pipe keeps
    // bytes.
    client_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(client_, 0);
    int small = 4096;
    ::setsockopt(client_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    ASSERT_EQ(::connect(client_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_TRUE(runUntil([&] { return server_ != nullptr; }));
  }

  void TearDown() override {
    if (client_ >= 0) ::close(client_);
    if (server_) server_->close(Completion{});
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    for (int i = 0; i < 1000 && uv_loop_close(&loop_) == UV_EBUSY; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
    std::filesystem::remove_all(dir_);
    TcpStream::setFilePath(TcpStream::kDefaultFilePath);
  }

  bool runUntil(const std::function<bool()>& pred) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      uv_run(&loop_, UV_RUN_NOWAIT);
    }
    return true;
  }

  // A file of `size` bytes of fileByte(tag, i); its read-only descriptor.
  int makeFile(const std::string& name, char tag, uint64_t size) {
    const std::string path = (dir_ / name).string();
    int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
    std::string buf(1 << 16, '\0');
    for (uint64_t off = 0; off < size; off += buf.size()) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
      for (size_t i = 0; i < k; ++i) buf[i] = fileByte(tag, off + i);
      EXPECT_EQ(::pwrite(fd, buf.data(), k, static_cast<off_t>(off)), static_cast<ssize_t>(k));
    }
    ::close(fd);
    return ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }

  // sendFile() until the socket is full (0): the bytes it took.
  uint64_t sendUntilFull(int fd, uint64_t offset, size_t len) {
    uint64_t sent = 0;
    for (;;) {
      long n = server_->sendFile(fd, offset + sent, len - static_cast<size_t>(sent));
      EXPECT_GE(n, 0);
      if (n <= 0 || sent + static_cast<uint64_t>(n) == len) return sent + (n > 0 ? static_cast<uint64_t>(n) : 0);
      sent += static_cast<uint64_t>(n);
    }
  }

  // Sends [offset, offset + len) of fd whole, reading the client as it
  // goes into `got`.
  void sendAll(int fd, uint64_t offset, size_t len) {
    uint64_t sent = 0;
    while (sent < len) {
      long n = server_->sendFile(fd, offset + sent, len - static_cast<size_t>(sent));
      ASSERT_GE(n, 0);
      sent += static_cast<uint64_t>(n);
      drainClient();
    }
  }

  // Everything the client can read now.
  void drainClient() {
    char buf[1 << 16];
    for (;;) {
      ssize_t r = ::recv(client_, buf, sizeof buf, MSG_DONTWAIT);
      if (r <= 0) return;
      got_.append(buf, static_cast<size_t>(r));
    }
  }

  // Reads until `total` bytes have come (or 20 s).
  void readUntil(size_t total) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (got_.size() < total && std::chrono::steady_clock::now() < deadline) {
      drainClient();
      uv_run(&loop_, UV_RUN_NOWAIT);
    }
  }

  // got_[at, at + n) must be bytes [first, first + n) of file `tag`.
  void expectFileBytes(size_t at, char tag, uint64_t first, size_t n, const char* what) {
    ASSERT_GE(got_.size(), at + n) << what;
    for (size_t i = 0; i < n; ++i)
      ASSERT_EQ(got_[at + i], fileByte(tag, first + i)) << what << ": wrong byte " << i << " of " << n;
  }

  std::filesystem::path dir_;
  uv_loop_t loop_;
  uv_tcp_t listener_;
  TcpStream* server_ = nullptr;
  int client_ = -1;
  std::string got_;
};

constexpr uint64_t kFile = 16 << 20;

// Splice until full, then the caller copies the next bytes itself (a write)
// and splices again further on: the client sees exactly the bytes each call
// reported, in order.
TEST_F(SpliceFileTest, AWriteBetweenSplicesDropsThePipe) {
  int fd = makeFile("a", 'a', kFile);
  ASSERT_GE(fd, 0);
  const uint64_t taken = sendUntilFull(fd, 0, kFile);
  ASSERT_GT(taken, 0u);
  ASSERT_LT(taken, kFile) << "the socket never filled: nothing stayed in the pipe";
  // The copy path: the next 1000 bytes go through write().
  std::string copied(1000, '\0');
  for (size_t i = 0; i < copied.size(); ++i) copied[i] = fileByte('a', taken + i);
  int wrote = -1;
  ASSERT_EQ(server_->writeOwned(copied, Completion{[](void* w, int status) { *static_cast<int*>(w) = status; }, &wrote}),
            0);
  EXPECT_EQ(server_->pipeDrops(), 1u);
  readUntil(static_cast<size_t>(taken));
  ASSERT_TRUE(runUntil([&] {
    drainClient();
    return wrote >= 0;
  }));
  EXPECT_EQ(wrote, 0);
  // Back on the kernel path after the copied bytes.
  const uint64_t next = taken + copied.size();
  const size_t rest = static_cast<size_t>(2 << 20);
  sendAll(fd, next, rest);
  readUntil(static_cast<size_t>(next + rest));
  ASSERT_EQ(got_.size(), next + rest);
  expectFileBytes(0, 'a', 0, static_cast<size_t>(next + rest), "one file, spliced, copied, spliced");
  ::close(fd);
}

// Splice until full, then ask for another offset of the same file, then for
// another file given the same descriptor number: each gets its own bytes.
TEST_F(SpliceFileTest, AnotherOffsetOrAnotherFileNeverGetsThePipesBytes) {
  int a = makeFile("a", 'a', kFile);
  ASSERT_GE(a, 0);
  const uint64_t taken = sendUntilFull(a, 0, kFile);
  ASSERT_LT(taken, kFile);
  // A range further on in the same file.
  const uint64_t jump = 8 << 20;
  const size_t n1 = 1 << 20;
  sendAll(a, jump, n1);
  EXPECT_EQ(server_->pipeDrops(), 1u);
  readUntil(static_cast<size_t>(taken + n1));
  ASSERT_EQ(got_.size(), taken + n1);
  expectFileBytes(0, 'a', 0, static_cast<size_t>(taken), "first range");
  expectFileBytes(static_cast<size_t>(taken), 'a', jump, n1, "range further on");

  // Fill the pipe again, then close the file and open another: the lowest
  // free descriptor, so the same number.
  const size_t before = got_.size();
  const uint64_t taken2 = sendUntilFull(a, 0, kFile);
  ASSERT_LT(taken2, kFile);
  const uint64_t resumeAt = taken2;  // what a confused caller would ask next
  ::close(a);
  int b = makeFile("b", 'b', kFile);
  ASSERT_GE(b, 0);
  EXPECT_EQ(b, a) << "the descriptor number was not reused (the test still checks the bytes)";
  sendAll(b, resumeAt, n1);
  EXPECT_EQ(server_->pipeDrops(), 2u);
  readUntil(before + static_cast<size_t>(taken2) + n1);
  ASSERT_EQ(got_.size(), before + taken2 + n1);
  expectFileBytes(before, 'a', 0, static_cast<size_t>(taken2), "second fill");
  expectFileBytes(before + static_cast<size_t>(taken2), 'b', resumeAt, n1, "the other file");
  ::close(b);
}

}  // namespace
}  // namespace orchard::server
