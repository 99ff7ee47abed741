// TcpStream: the Stream (stream.h) over a libuv TCP handle, accepted from a
// listener (client side) or connected to an address (upstream side).
//
// Lifecycle: create() -> accept() | connect() -> reads/writes -> close();
// close() is required whatever happened before (a failed accept or connect
// too), and the stream frees itself after its close notification.
// Reads land in one per-thread 64 KiB buffer shared by every TcpStream on
// the loop (the reader copies what it keeps), so an idle or paused
// connection holds no read buffer.
#pragma once

#include <uv.h>

#include "server/net/stream.h"

namespace orchard::server {

class TcpStream final : public Stream {
 public:
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
  int shutdown(Completion done) override;
  void close(Completion closed) override;
  int peerAddress(struct sockaddr_storage* out) const override;

 private:
  explicit TcpStream(uv_loop_t* loop);
  ~TcpStream() override = default;
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  int queue(const uv_buf_t* bufs, unsigned n, Completion done, std::string* owned);
  void onRead(ssize_t nread);

  uv_tcp_t tcp_;
  // One connect and one shutdown per stream: their requests live here.
  uv_connect_t connect_;
  uv_shutdown_t shutdown_;
  Completion connectDone_;
  Completion shutdownDone_;
  Completion closed_;
  StreamReader* reader_ = nullptr;
  bool closing_ = false;
};

}  // namespace orchard::server
