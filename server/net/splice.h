// Splice: a CONNECT tunnel's pump between two Streams, bytes read on each
// side written to the other, with backpressure both ways.
//
// For each direction from -> to: a read is offered to to.tryWrite(); what
// the socket does not take is queued with to.writeOwned() and from's reads
// stop until that write completes, so a direction holds at most one read
// (64 KiB over TCP) whatever the speeds of the two peers. An end of stream
// on one side becomes a shutdown() of the other (half-close is passed on;
// the other direction goes on). The tunnel ends when both directions have
// ended and their shutdowns completed, or at once when either side breaks
// or close() is called: both streams are closed, and when both close
// notifications have run, `done` runs once (bytesAtoB()/bytesBtoA() may
// still be read inside it, nothing else) and then the Splice frees itself.
//
// Ownership: start() takes both streams (the caller must not use them
// again). All on the streams' loop thread.
#pragma once

#include <cstdint>

#include "server/net/stream.h"

namespace orchard::server {

class Splice {
 public:
  // done(0) when both directions ended cleanly, done(<0) (a libuv code)
  // when a side broke or close() cut the tunnel. Never called inside start().
  static Splice* start(Stream* a, Stream* b, Completion done);
  // Ends the tunnel now (a timeout, shutdown of the server).
  void close() { end(UV_ECANCELED); }
  uint64_t bytesAtoB() const { return ab_.bytes; }
  uint64_t bytesBtoA() const { return ba_.bytes; }

 private:
  struct Pump final : StreamReader {
    Splice* owner = nullptr;
    Stream* from = nullptr;
    Stream* to = nullptr;
    uint64_t bytes = 0;
    bool writing = false;  // a write to `to` is queued; `from` is not read
    bool ended = false;    // `from` ended; `to` is being shut down
    bool shut = false;     // that shutdown completed
    void onStreamData(const char* data, size_t n) override;
    void onStreamEnd() override;
    void onStreamError(int status) override { owner->end(status); }
    void onWritten(int status);
    void onShut(int status);
  };

  Splice(Stream* a, Stream* b, Completion done);
  ~Splice() = default;
  void end(int status);
  void onClosed(int);

  Pump ab_, ba_;
  Completion done_;
  int status_ = 0;
  int open_ = 2;  // streams not closed yet
  bool ending_ = false;
};

}  // namespace orchard::server
