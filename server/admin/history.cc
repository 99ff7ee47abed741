#include "server/admin/history.h"

#include <algorithm>
#include <charconv>
#include <chrono>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "server/catalog/catalog_http.h"

namespace orchard::server {

history::Sample totalsNow(const ServerContext& ctx) {
  const CounterTotals t = sumCounters(ctx.counters);
  history::Sample s;
  s.bytesFromCache = t.bytes_from_store;
  s.bytesFromOrigin = t.bytes_from_origin;
  // Proxied requests only (lookups and passes): the admin API, the
  // dashboard's own polling and probes would blur a hit ratio.
  s.requests = t.hits + t.misses + t.collapsed + t.passes;
  s.hits = t.hits;
  return s;
}

HistorySampler::HistorySampler(const ServerContext* ctx, db::HistoryStore* store, int64_t intervalMs,
                               int64_t retentionMs)
    : ctx_(ctx), store_(store), intervalMs_(std::max<int64_t>(intervalMs, 1)), retentionMs_(retentionMs) {}

HistorySampler::~HistorySampler() { stop(); }

void HistorySampler::start() {
  thread_ = std::thread([this] { run(); });
}

void HistorySampler::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HistorySampler::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    const bool stop = cv_.wait_for(lock, std::chrono::milliseconds(intervalMs_), [this] { return stopping_; });
    lock.unlock();
    sampleOnce();  // also the last one, at stop
    lock.lock();
    if (stop) return;
  }
}

void HistorySampler::prune(int64_t nowSeconds) {
  prunedAt_ = nowSeconds;
  const int64_t keepFrom = (nowSeconds - retentionMs_ / 1000) / 60;
  if (auto r = store_->dropBefore(keepFrom); !r)
    OLOG_WARN("history: deleting minutes older than history.retention: %s", r.error().message().c_str());
}

void HistorySampler::sampleOnce() {
  const history::Sample now = totalsNow(*ctx_);
  history::Sample delta;
  delta.bytesFromCache = history::counterDelta(last_.bytesFromCache, now.bytesFromCache);
  delta.bytesFromOrigin = history::counterDelta(last_.bytesFromOrigin, now.bytesFromOrigin);
  delta.requests = history::counterDelta(last_.requests, now.requests);
  delta.hits = history::counterDelta(last_.hits, now.hits);
  delta.cacheUsed = ctx_->store->stats().bytes;
  last_ = now;
  const int64_t seconds = ctx_->clock->nowSeconds();
  if (prunedAt_ == INT64_MIN || seconds - prunedAt_ >= 3600 || seconds < prunedAt_) prune(seconds);
  // An idle minute (no request, the store unchanged) writes nothing: the
  // history is sparse, and an idle box does not write every minute.
  const bool moved = delta.bytesFromCache || delta.bytesFromOrigin || delta.requests || delta.hits ||
                     (lastUsed_ && *lastUsed_ != delta.cacheUsed);
  lastUsed_ = delta.cacheUsed;
  if (!moved) return;
  int64_t minute = seconds / 60;
  if (seconds < 0 && seconds % 60 != 0) --minute;
  if (minute != minute_) {
    // Entering a minute: a record already there (written by a process
    // that ran earlier in this minute) is added to, not replaced.
    minute_ = minute;
    pending_ = {};
    if (auto was = store_->get(minute); was && was.value()) pending_ = *was.value();
  }
  history::accumulate(pending_, delta);
  if (auto r = store_->put(minute_, pending_); !r)
    OLOG_RATE(log::Level::Warn, "history: writing minute %lld: %s", static_cast<long long>(minute_),
              r.error().message().c_str());
}

namespace {

using nlohmann::json;

RequestHandler* getHistory(HandlerRequest&& r, const ServerContext* ctx) {
  auto from = queryParam(r.head.target, "from");
  auto to = queryParam(r.head.target, "to");
  auto step = queryParam(r.head.target, "step");
  history::QueryResult q = history::parseQuery(from, to, step, ctx->clock->nowSeconds());
  if (!q.query) return FixedAnswer::error(r.writer, std::move(r.head), 400, q.error.detail);
  db::HistoryStore* store = ctx->history;
  if (!store) return FixedAnswer::error(r.writer, std::move(r.head), 503, "the history is not open yet");
  const history::Query query = *q.query;
  return new OffLoopAnswer(r.writer, std::move(r.head), [store, query](std::string) {
    // Whole minutes that start in [from, to]; the first bucket may reach
    // back before `from` (buckets are aligned to multiples of the step).
    const int64_t firstMinute = (query.from + 59) / 60;
    const int64_t lastMinute = query.to >= 0 ? query.to / 60 : (query.to - 59) / 60;
    auto minutes = store->range(firstMinute, lastMinute);
    if (!minutes) return errorReply(500, "reading the history: " + minutes.error().message());
    json points = json::array();
    for (const history::Point& p : history::aggregate(*minutes, query.step))
      points.push_back({{"t", p.t},
                        {"bytes_from_cache", p.sample.bytesFromCache},
                        {"bytes_from_origin", p.sample.bytesFromOrigin},
                        {"requests", p.sample.requests},
                        {"hits", p.sample.hits},
                        {"cache_used", p.sample.cacheUsed}});
    OffLoopAnswer::Reply reply;
    reply.body = json{{"step", query.step}, {"from", query.from}, {"to", query.to}, {"points", std::move(points)}}
                     .dump() +
                 "\n";
    return reply;
  });
}

// How long a top request waits for the loops' copies: a loop that does
// not answer in this time (stuck, or stopping) is left out of the answer.
constexpr auto kTopWait = std::chrono::seconds(2);

RequestHandler* getTop(HandlerRequest&& r, const ServerContext* ctx) {
  size_t limit = 20;
  if (auto l = queryParam(r.head.target, "limit")) {
    size_t v = 0;
    auto [p, ec] = std::from_chars(l->data(), l->data() + l->size(), v);
    if (l->empty() || ec != std::errc() || p != l->data() + l->size() || v < 1 || v > TopTable::kCapacity)
      return FixedAnswer::error(r.writer, std::move(r.head), 400,
                                "limit: a whole number from 1 to " + std::to_string(TopTable::kCapacity));
    limit = v;
  }
  std::vector<WorkerContext*> loops = ctx->loops;
  return new OffLoopAnswer(r.writer, std::move(r.head), [loops, limit](std::string) {
    struct Copies {
      std::mutex mu;
      std::condition_variable cv;
      std::vector<std::vector<TopTable::Item>> tables;
      size_t answered = 0;
    };
    auto copies = std::make_shared<Copies>();  // outlives a loop that answers after the wait gave up
    for (WorkerContext* wc : loops)
      wc->worker->post([wc, copies] {
        std::vector<TopTable::Item> items = wc->top.items();
        std::lock_guard lock(copies->mu);
        copies->tables.push_back(std::move(items));
        ++copies->answered;
        copies->cv.notify_all();
      });
    std::vector<TopTable::Item> top;
    {
      std::unique_lock lock(copies->mu);
      copies->cv.wait_for(lock, kTopWait, [&] { return copies->answered == loops.size(); });
      top = TopTable::merge(copies->tables, limit);
    }
    json objects = json::array();
    for (const TopTable::Item& it : top)
      objects.push_back({{"url", it.text}, {"bytes_served", it.bytes}, {"requests", it.requests}});
    OffLoopAnswer::Reply reply;
    reply.body = json{{"objects", std::move(objects)}}.dump() + "\n";
    return reply;
  });
}

}  // namespace

void registerHistoryRoutes(RouteTable& routes, const ServerContext* ctx) {
  routes.add("GET", "/api/v1/history", withToken(ctx, config::Scope::Read, &getHistory));
  routes.add("GET", "/api/v1/top", withToken(ctx, config::Scope::Read, &getTop));
}

}  // namespace orchard::server
