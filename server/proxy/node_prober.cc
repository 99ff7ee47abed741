// NodeProber implementation; see node_prober.h.
#include "server/proxy/node_prober.h"

#include "server/context.h"
#include "server/proxy/cache_nodes.h"

namespace orchard::server {

// One probe exchange. Owns itself: deleted after its final callback.
class NodeProber::Probe final : public UpstreamSink {
 public:
  Probe(NodeProber* owner, CacheNodes::Node* node) : owner_(owner), wc_(owner->wc_), node_(node) {}
  ~Probe() override { node_->probing.store(false, std::memory_order_relaxed); }
  void cancel() {
    if (ex_) ex_->cancel();
    ex_ = nullptr;
  }

  void start() {
    UpstreamRequest u;
    u.host = node_->addr.host;
    u.port = node_->addr.port;
    u.tls = node_->addr.tls;
    u.anyAddress = true;  // an address the admin named in upstream.parents / peers
    u.head = "GET / HTTP/1.1\r\nHost: " + node_->id + "\r\nMax-Forwards: 0\r\nVia: 1.1 " + wc_->server->viaName +
             "\r\n\r\n";
    ex_ = wc_->upstream.start(std::move(u), this);
  }

  void onUpstreamHead(ResponseHead&& head) override { status_ = head.status; }
  void onUpstreamBody(const char*, size_t) override {}
  void onUpstreamComplete() override {
    finish(status_ == 200 ? std::string() : "the probe got " + std::to_string(status_));
  }
  void onUpstreamError(Error error, bool) override { finish("the probe failed: " + error.message()); }

 private:
  void finish(const std::string& why) {
    ex_ = nullptr;
    CacheNodes* nodes = wc_->server->nodes;
    if (why.empty()) {
      nodes->recovered(node_);
    } else {
      nodes->failed(node_, why, wc_->server->clock->monotonicMs(), wc_->config().parentDownTimeMs,
                    wc_->server->clock->nowSeconds());
    }
    owner_->probes_.erase(this);
    wc_->worker->deferDelete(this);
  }

  NodeProber* owner_;
  WorkerContext* wc_;
  CacheNodes::Node* node_;
  UpstreamExchange* ex_ = nullptr;
  int status_ = 0;
};

NodeProber* NodeProber::start(WorkerContext* wc) {
  if (!wc->server->nodes || (wc->server->nodes->parents().empty() && wc->server->nodes->peers().empty()))
    return nullptr;
  auto* p = new NodeProber(wc);
  p->timer_ = new uv_timer_t;
  uv_timer_init(wc->worker->loop(), p->timer_);
  p->timer_->data = p;
  uv_timer_start(
      p->timer_,
      [](uv_timer_t* t) {
        if (auto* self = static_cast<NodeProber*>(t->data)) self->tick();
      },
      kTickMs, kTickMs);
  return p;
}

void NodeProber::tick() {
  for (CacheNodes::Node* n : wc_->server->nodes->dueForProbe(wc_->server->clock->monotonicMs())) {
    auto* probe = new Probe(this, n);
    probes_.insert(probe);
    probe->start();
  }
}

void NodeProber::stop() {
  timer_->data = nullptr;
  closeHandle(timer_);  // its close callback frees it
  timer_ = nullptr;
  for (Probe* p : probes_) {
    p->cancel();
    delete p;
  }
  probes_.clear();
  delete this;
}

}  // namespace orchard::server
