// Tunnel: CONNECT host:443; see tunnel.h for the states. The hard parts:
// the connection can go at any point before Open (the handler's
// onConnClosed() and its deletion are separate references); the hand-over
// (the 200 must be written, with nothing queued, before the stream leaves
// its ClientConn, and bytes the client sent after its CONNECT head, a TLS
// ClientHello, go to the origin before anything read later); and the idle
// timeout, checked on a periodic timer from the Splice's byte counts, which
// also feeds the byte counters while the tunnel runs.
#include "server/proxy/tunnel.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "server/context.h"
#include "server/net/splice.h"
#include "server/net/tcp_stream.h"

namespace orchard::server {
namespace {

constexpr char kEstablished[] = "HTTP/1.1 200 Connection Established\r\n\r\n";
constexpr int64_t kDrainCheckMs = 250;  // while draining: quiet this long, and the tunnel closes

}  // namespace

// The RequestHandler the connection holds until it answers, detaches or
// closes; the Tunnel outlives it.
class TunnelHandler final : public RequestHandler {
 public:
  explicit TunnelHandler(Tunnel* t) : t_(t) {}
  ~TunnelHandler() override { t_->handlerGone(); }
  void start() override { t_->start(); }
  void onRequestBody(const char*, size_t) override {}  // llhttp reads no body after a CONNECT head
  void onRequestComplete() override {}
  void onBodyWritten(int) override { t_->onAnswerWritten(); }
  void onConnClosed() override { t_->connGone(); }

 private:
  Tunnel* t_;
};

RequestHandler* Tunnel::handler(ResponseWriter* w, RequestHead, Route route) {
  return new TunnelHandler(new Tunnel(w, std::move(route)));
}

Tunnel::Tunnel(ResponseWriter* w, Route route)
    : wc_(w->wc()),
      conn_(w),
      host_(std::move(route.host)),
      port_(route.port),
      connectTimeoutMs_(wc_->config().connectTimeoutMs),
      idleTimeoutMs_(wc_->config().tunnelIdleTimeoutMs > 0 ? wc_->config().tunnelIdleTimeoutMs : 300'000),
      accessLog_(wc_->snapshot().accessLog) {
  if (const sockaddr* p = w->peer()) {
    const size_t len = p->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    std::memcpy(&peer_, p, std::min(len, sizeof peer_));
  }
  uv_timer_init(wc_->worker->loop(), &timer_);
  timer_.data = this;
  refs_ = 2;  // the handler and the timer
}

void Tunnel::unref() {
  if (--refs_ == 0) delete this;
}

void Tunnel::start() {
  openedMs_ = wc_->server->clock->monotonicMs();
  startNs_ = monotonicNs();
  uv_timer_start(
      &timer_, [](uv_timer_t* t) { static_cast<Tunnel*>(t->data)->onTimer(); },
      static_cast<uint64_t>(connectTimeoutMs_ > 0 ? connectTimeoutMs_ : 10'000), 0);
  refs_++;  // the resolution calls back even after the tunnel closed
  resolveOrigin(wc_->worker, host_, port_, wc_->snapshot().upstream, false,
                [this](Result<ResolvedOrigin> origin, AddressClass refused) {
                  onResolved(std::move(origin), refused);
                  unref();
                });
}

void Tunnel::onResolved(Result<ResolvedOrigin> origin, AddressClass refused) {
  if (state_ != State::Resolving) return;
  if (refused != AddressClass::Public) {
    wc_->counters.add(wc_->counters.tunnels_refused_address);
    wc_->counters.add(wc_->counters.upstream_address_refusals);
    OLOG_RATE(log::Level::Warn, "CONNECT %s:%u refused: it resolves to an address that is %s", host_.c_str(), port_,
              addressClassName(refused));
    refuse(403, refusalContext(refused));
    return;
  }
  if (!origin) {
    wc_->counters.add(wc_->counters.tunnels_failed);
    refuse(502, "tunnel: cannot resolve the host: " + origin.error().message());
    return;
  }
  state_ = State::Connecting;
  origin_ = TcpStream::create(wc_->worker->loop());
  refs_++;  // until the origin stream's close notification (or the splice's end)
  origin_->setNoDelay(true);
  int rc = origin_->connect(reinterpret_cast<const sockaddr*>(&origin->addr),
                            Completion::to<&Tunnel::onConnected>(this));
  if (rc != 0) {
    wc_->counters.add(wc_->counters.tunnels_failed);
    refuse(502, std::string("tunnel: cannot connect to the origin: ") + uv_strerror(rc));
  }
}

void Tunnel::onConnected(int status) {
  if (status == UV_ECANCELED || state_ != State::Connecting) return;
  if (status != 0) {
    wc_->counters.add(wc_->counters.tunnels_failed);
    refuse(502, std::string("tunnel: cannot connect to the origin: ") + uv_strerror(status));
    return;
  }
  state_ = State::Answering;
  uv_timer_stop(&timer_);
  if (!conn_) {
    closeDial();
    return;
  }
  uv_buf_t b = uv_buf_init(const_cast<char*>(kEstablished), sizeof kEstablished - 1);
  int rc = conn_->writeBody(&b, 1);
  if (rc == 1) becomeOpen();
  // 0: onAnswerWritten() follows; -1: the connection is closing (connGone()).
}

void Tunnel::onAnswerWritten() {
  if (state_ == State::Answering && conn_ && conn_->queuedBytes() == 0) becomeOpen();
}

void Tunnel::becomeOpen() {
  answeredNs_ = monotonicNs();
  std::string leftover;
  Stream* client = conn_->detachStream(&leftover);
  ResponseWriter* conn = conn_;
  conn_ = nullptr;
  if (!client) {
    // Not detachable (closing): the answer is cut, nothing is relayed.
    closeDial();
    conn->endResponse(false);
    return;
  }
  state_ = State::Open;
  wc_->counters.add(wc_->counters.tunnels_opened);
  wc_->counters.open_connections.fetch_add(1, std::memory_order_relaxed);
  wc_->tunnels.insert(this);
  // What the client sent after its CONNECT head goes first; the splice's
  // writes queue behind it (a stream keeps its writes in order).
  early_ = leftover.size();  // counted as sent up, with what the splice carries
  if (!leftover.empty()) (void)origin_->writeOwned(std::move(leftover), Completion{});
  lastMoveMs_ = wc_->server->clock->monotonicMs();
  Stream* origin = origin_;
  origin_ = nullptr;  // the splice closes it; its done releases the origin's reference
  splice_ = Splice::start(client, origin, Completion::to<&Tunnel::onSpliceDone>(this));
  const int64_t period = std::clamp<int64_t>(idleTimeoutMs_ / 8, 50, 5000);
  uv_timer_start(
      &timer_, [](uv_timer_t* t) { static_cast<Tunnel*>(t->data)->onTimer(); }, static_cast<uint64_t>(period),
      static_cast<uint64_t>(period));
  if (wc_->draining) drain();  // dialled while the server began to drain: the drain missed it
}

void Tunnel::onTimer() {
  if (state_ == State::Resolving || state_ == State::Connecting) {
    wc_->counters.add(wc_->counters.tunnels_failed);
    refuse(504, "tunnel: upstream.connect_timeout passed before the origin answered");
    return;
  }
  if (state_ != State::Open || !splice_) return;
  account();
  const uint64_t total = splice_->bytesAtoB() + splice_->bytesBtoA();
  const int64_t now = wc_->server->clock->monotonicMs();
  if (total != lastTotal_) {
    lastTotal_ = total;
    lastMoveMs_ = now;
    return;
  }
  if (draining_ && now - lastMoveMs_ >= kDrainCheckMs) {
    splice_->close();
    return;
  }
  if (now - lastMoveMs_ >= idleTimeoutMs_) {
    wc_->counters.add(wc_->counters.tunnel_idle_timeouts);
    splice_->close();
  }
}

void Tunnel::account() {
  if (!splice_) return;
  const uint64_t up = early_ + splice_->bytesAtoB(), down = splice_->bytesBtoA();
  wc_->counters.add(wc_->counters.tunnel_bytes_up, up - countedUp_);
  wc_->counters.add(wc_->counters.tunnel_bytes_down, down - countedDown_);
  countedUp_ = up;
  countedDown_ = down;
}

void Tunnel::onSpliceDone(int status) {
  (void)status;
  account();  // the splice's counts are still readable here (splice.h), not after
  state_ = State::Closed;
  splice_ = nullptr;
  wc_->tunnels.erase(this);
  wc_->counters.open_connections.fetch_sub(1, std::memory_order_relaxed);
  if (accessLog_) {
    // One line for the whole tunnel: bytes are what came down to the
    // client, the detail what went up; the duration runs to its close.
    struct timespec wall;
    ::clock_gettime(CLOCK_REALTIME, &wall);
    const uint64_t now = monotonicNs();
    const std::string target = host_.find(':') != std::string::npos
                                   ? "[" + host_ + "]:" + std::to_string(port_)
                                   : host_ + ":" + std::to_string(port_);
    const std::string detail = "up=" + std::to_string(countedUp_);
    AccessEntry e;
    e.unixMs = static_cast<int64_t>(wall.tv_sec) * 1000 + wall.tv_nsec / 1'000'000;
    e.peer = reinterpret_cast<const sockaddr*>(&peer_);
    e.method = "CONNECT";
    e.target = target;
    e.host = target;
    e.status = 200;
    e.bytes = countedDown_;
    e.result = RequestResult::Tunnel;
    e.form = RequestForm::Forward;
    e.ttfbUs = static_cast<int64_t>((answeredNs_ - startNs_) / 1000);
    e.durationUs = static_cast<int64_t>((now - startNs_) / 1000);
    e.detail = detail;
    wc_->accessLog.append(accessLog_, e);
  }
  closeTimer();
  unref();  // the origin stream's reference, which the splice held
}

void Tunnel::drain() {
  draining_ = true;
  if (state_ == State::Open)
    uv_timer_start(
        &timer_, [](uv_timer_t* t) { static_cast<Tunnel*>(t->data)->onTimer(); },
        static_cast<uint64_t>(kDrainCheckMs), static_cast<uint64_t>(kDrainCheckMs));
}

void Tunnel::close() {
  if (state_ == State::Open && splice_) splice_->close();
}

void Tunnel::connGone() {
  // The client left before the tunnel opened: no tunnel, and no answer.
  if (conn_) conn_->noteOutcome(RequestResult::Error, "tunnel: the client left before the tunnel opened");
  conn_ = nullptr;
  if (state_ == State::Resolving || state_ == State::Connecting || state_ == State::Answering) closeDial();
}

void Tunnel::refuse(int status, std::string_view detail) {
  closeDial();
  if (!conn_) return;
  ResponseWriter* c = conn_;
  conn_ = nullptr;
  OLOG_RATE(log::Level::Info, "CONNECT %s:%u answered %d: %.*s", host_.c_str(), port_, status,
            static_cast<int>(detail.size()), detail.data());
  // The connection closes after the answer: bytes the client sent after
  // its CONNECT head are not HTTP.
  c->noteOutcome(status == 403 ? RequestResult::Refused : RequestResult::Error, detail);
  c->disableKeepAlive();
  c->write(smallResponse(status, "application/json", errorBody(status, detail), {}, true, false));
  c->endResponse(true);
}

void Tunnel::closeDial() {
  state_ = State::Closed;
  if (origin_) {
    TcpStream* o = origin_;
    origin_ = nullptr;
    o->close(Completion::to<&Tunnel::onOriginClosed>(this));
  }
  closeTimer();
}

void Tunnel::onOriginClosed(int) { unref(); }

void Tunnel::closeTimer() {
  if (timerClosed_) return;
  timerClosed_ = true;
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) { static_cast<Tunnel*>(h->data)->unref(); });
}

}  // namespace orchard::server
