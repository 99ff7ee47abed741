// TcpStream: the Stream (stream.h) over a libuv TCP handle, accepted from a
// listener (client side) or connected to an address (upstream side).
//
// Lifecycle: create() -> accept() | connect() -> reads/writes -> close();
// close() is required whatever happened before (a failed accept or connect
// too), and the stream frees itself after its close notification.
// Reads land in one per-thread 64 KiB buffer shared by every TcpStream on
// the loop (the reader copies what it keeps), so an idle or paused
// connection holds no read buffer.
//
// File bytes (sendFile()): sendfile(2) from the page cache straight to the
// socket, no user-space buffer. A socket that is full is waited for with a
// uv_poll_t on a dup() of the socket (libuv keeps its own watcher on the
// socket's descriptor; epoll tells the two apart by descriptor), made on
// the first wait and kept until close(). The path is process-wide
// (FilePath, from ORCHARD_SEND_PATH at start-up): copy by default (no
// kernel path: sendFile() answers UV_ENOSYS and the body sender copies
// through its 256 KiB buffer), which measured faster here than sendfile
// and splice for 1, 8 and 64 streams of one cached object (README,
// Performance); sendfile, and splice (file -> pipe -> socket, one 1 MiB
// pipe per stream that uses it), for links and machines where the kernel
// path wins; einval for tests (sendFile() fails as on a file system
// without sendfile, the caller falls back to copying).
#pragma once

#include <uv.h>

#include <cstdint>
#include <utility>

#include "server/net/stream.h"

namespace orchard::server {

class TcpStream final : public Stream {
 public:
  enum class FilePath : uint8_t { Copy, Sendfile, Splice, Einval };
  static constexpr FilePath kDefaultFilePath = FilePath::Copy;
  // Set before the loops start (main, tests); read on every loop.
  static void setFilePath(FilePath p);
  static FilePath filePath();
  // "sendfile", "splice", "copy", "einval" (false for anything else).
  static bool parseFilePath(const char* s, FilePath* out);

  static TcpStream* create(uv_loop_t* loop);

  // Takes one pending connection from `listener`: 0 or a negative libuv code.
  int accept(uv_stream_t* listener);
  // Connects; `done` runs with 0 or a negative libuv code (UV_ECANCELED when
  // closed first), never inside this call. A returned error means `done`
  // never runs.
  int connect(const struct sockaddr* addr, Completion done);
  int setNoDelay(bool on);

  int startReading(StreamReader* reader) override;
  void stopReading() override;
  int tryWrite(const uv_buf_t* bufs, unsigned n) override;
  int write(const uv_buf_t* bufs, unsigned n, Completion done) override;
  int writeOwned(std::string data, Completion done) override;
  size_t queuedBytes() const override;
  long sendFile(int fd, uint64_t offset, size_t len) override;
  int waitWritable(size_t pending, Completion done) override;
  int shutdown(Completion done) override;
  void close(Completion closed) override;
  int peerAddress(struct sockaddr_storage* out) const override;
  // Splice path: how many times file bytes in the pipe were dropped (tests).
  uint64_t pipeDrops() const { return pipeDrops_; }

 private:
  explicit TcpStream(uv_loop_t* loop);
  ~TcpStream() override = default;
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  int queue(const uv_buf_t* bufs, unsigned n, Completion done, std::string* owned);
  void onRead(ssize_t nread);
  long spliceFile(int sock, int fd, uint64_t offset, size_t len);
  struct WritablePoll;

  uv_tcp_t tcp_;
  // One connect and one shutdown per stream: their requests live here.
  uv_connect_t connect_;
  uv_shutdown_t shutdown_;
  Completion connectDone_;
  Completion shutdownDone_;
  Completion closed_;
  StreamReader* reader_ = nullptr;
  bool closing_ = false;
  // waitWritable(): the poll on the dup'd socket (its own heap box, freed by
  // its close callback), the waiter and the bytes it waits to send.
  WritablePoll* wpoll_ = nullptr;
  Completion writable_;
  size_t waitPending_ = 0;
  // Splice path only: the pipe and the file bytes in it, which start at
  // pipeOffset_ of pipeFd_. They are sent only to a sendFile() that asks for
  // exactly that descriptor and offset; any other sendFile() or any write()
  // drops them first (dropPipe()), so bytes a caller did not ask for never
  // reach the socket.
  void dropPipe();
  static std::pair<uint64_t, uint64_t> fileId(int fd);  // device and inode
  int pipe_[2] = {-1, -1};
  size_t pipeBytes_ = 0;
  int pipeFd_ = -1;
  uint64_t pipeOffset_ = 0;
  std::pair<uint64_t, uint64_t> pipeFile_;
  uint64_t pipeDrops_ = 0;
};

}  // namespace orchard::server
