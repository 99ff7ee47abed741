// Tunnel: one CONNECT host:443 (Route::Kind::Tunnel), from dialling the
// origin to the end of the relay. HTTPS passes a forward-proxy deployment
// this way (App Store, iCloud, ...): bytes are relayed, never cached or
// logged beyond their counts and the tunnel's duration.
//
// States:  Resolving (resolveOrigin(): upstream.resolve, else DNS with the
//            private-address rule; connect timer armed)
//          -> Connecting (TcpStream::connect; same timer)
//          -> Answering (the 200 is being written to the client)
//          -> Open (the client's stream detached from its ClientConn and
//             spliced with the origin's: server/net/splice.h; idle timer)
//          -> Closed
//   A refusal or failure before Open is answered on the connection as a
//   JSON error (403 an address refused, 502 DNS or connect failed, 504
//   connect timeout), which then closes. From Open on, the tunnel counts
//   as an open connection and sits in WorkerContext::tunnels, so a drain
//   closes it once it goes quiet and a stop cuts it.
//
// Ownership: the Tunnel frees itself when every reference is gone: the
// request handler ClientConn holds (TunnelHandler, deleted by the
// connection after the answer, the detach, or the connection's close), the
// timer (embedded; its close callback), the resolution in flight, and the
// origin stream (its close notification, or once spliced, the Splice's
// done). All on the worker's loop thread.
#pragma once

#include <uv.h>

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "server/http/handler.h"
#include "server/http/message.h"
#include "server/http/origin_resolve.h"
#include "server/proxy/router.h"

namespace orchard::server {

class AccessLogSink;
class Splice;
class TcpStream;
struct WorkerContext;

class Tunnel {
 public:
  // The handler dispatch() makes for a Tunnel route.
  static RequestHandler* handler(ResponseWriter* w, RequestHead req, Route route);

  // The server is draining: close as soon as no byte moved for a moment.
  void drain();
  // The server is stopping: cut the tunnel now.
  void close();

 private:
  friend class TunnelHandler;
  enum class State : uint8_t { Resolving, Connecting, Answering, Open, Closed };

  Tunnel(ResponseWriter* w, Route route);
  ~Tunnel() = default;
  void start();
  void onResolved(Result<ResolvedOrigin> origin, AddressClass refused);
  void onConnected(int status);
  void onAnswerWritten();
  void becomeOpen();
  void onSpliceDone(int status);
  void onOriginClosed(int status);
  void onTimer();
  void connGone();
  void handlerGone() { unref(); }
  // Answers the client with a JSON error and ends everything.
  void refuse(int status, std::string_view detail);
  void closeDial();
  void closeTimer();
  void account();
  void unref();

  WorkerContext* wc_;
  ResponseWriter* conn_;  // the client's connection until Open (or gone)
  std::string host_;
  uint16_t port_;
  // From the snapshot the CONNECT started on.
  int64_t connectTimeoutMs_;
  int64_t idleTimeoutMs_;
  std::shared_ptr<AccessLogSink> accessLog_;  // null: off
  struct sockaddr_storage peer_ = {};         // the client, for the access log
  uint64_t startNs_ = 0;                      // the CONNECT started (monotonicNs)
  uint64_t answeredNs_ = 0;                   // its 200 was written

  State state_ = State::Resolving;
  int refs_ = 0;
  uv_timer_t timer_;  // connect timeout, then the idle check
  bool timerClosed_ = false;
  TcpStream* origin_ = nullptr;  // until the splice takes it
  Splice* splice_ = nullptr;     // Open only
  bool draining_ = false;
  int64_t openedMs_ = 0;
  int64_t lastMoveMs_ = 0;
  uint64_t lastTotal_ = 0;      // bytes both ways at the last idle check
  uint64_t early_ = 0;          // bytes the client sent behind its CONNECT head (not through the splice)
  uint64_t countedUp_ = 0;      // bytes already added to the counters
  uint64_t countedDown_ = 0;
};

}  // namespace orchard::server
