// Shared parts of the catalog's handlers (see catalog_http.h). Hard parts:
// the token comparison must not leak how much of a guess was right (the
// TokenTable compares SHA-256 digests with CRYPTO_memcmp, server/admin/tokens.h),
// and OffLoopAnswer's work outlives a handler whose client went away (the
// after-callback checks a shared flag).
#include "server/catalog/catalog_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "catalog/manifest.h"
#include "server/http/message.h"

namespace orchard::server {

const TokenEntry* findToken(const RequestHead& req, const ServerContext& ctx, const Snapshot& snap) {
  auto h = req.header("Authorization");
  if (!h) return nullptr;
  const std::string_view presented = bearerToken(*h);
  if (presented.empty()) return nullptr;
  // Both tables are searched whatever the first found, so the time taken
  // does not say which kind of token was presented.
  const TokenEntry* named = snap.tokens.find(presented);
  const TokenEntry* generated = snap.adminToken.empty() ? ctx.generatedTokens.find(presented) : nullptr;
  return named ? named : generated;
}

RequestHandler* unauthorized(HandlerRequest& r) {
  const bool had = r.head.header("Authorization").has_value();
  return FixedAnswer::error(r.writer, std::move(r.head), 401,
                            had ? "the bearer token is not one of this box's tokens"
                                : "this route needs Authorization: Bearer <token> (the admin token is in "
                                  "storage.dir/admin.token when none is configured)",
                            had ? "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n" : "WWW-Authenticate: Bearer\r\n");
}

RequestHandler* wrongScope(HandlerRequest& r, const TokenEntry& token, config::Scope need) {
  std::string why = std::string("this route needs a token with the ") + config::scopeName(need) + " scope" +
                    (need == config::Scope::Admin ? "" : " (or admin)") + "; token \"" + token.name + "\" has " +
                    config::scopeName(token.scope);
  return FixedAnswer::error(r.writer, std::move(r.head), 403, why,
                            std::string("WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=\"") +
                                config::scopeName(need) + "\"\r\n");
}

HandlerFactory openRoute(const ServerContext* ctx, CatalogFactory make) {
  return [ctx, make](HandlerRequest&& r) -> RequestHandler* { return make(std::move(r), ctx); };
}

GuardedFactory withToken(const ServerContext* ctx, config::Scope need, CatalogFactory make) {
  HandlerFactory f = [ctx, need, make](HandlerRequest&& r) -> RequestHandler* {
    WorkerContext* wc = r.writer->wc();
    const TokenEntry* t = findToken(r.head, *ctx, wc->snapshot());
    if (t == nullptr) {
      wc->counters.add(wc->counters.unauthorized);
      return unauthorized(r);
    }
    if (!config::scopeAllows(t->scope, need)) {
      wc->counters.add(wc->counters.denied);
      wc->counters.add(wc->counters.scope_denied);
      return wrongScope(r, *t, need);
    }
    r.token = t->name;
    return make(std::move(r), ctx);
  };
  return GuardedFactory{std::move(f), need};
}

GuardedFactory catalogWrite(const ServerContext* ctx, config::Scope need, CatalogFactory make) {
  const std::string& hub = ctx->startConfig.catalogFollow;  // restart-only
  if (hub.empty()) return withToken(ctx, need, make);
  CatalogFactory refuse = [](HandlerRequest&& r, const ServerContext* c) -> RequestHandler* {
    return FixedAnswer::error(r.writer, std::move(r.head), 409,
                              "this box follows the catalog of " + c->startConfig.catalogFollow +
                                  "; make changes there (they reach this box through its change feed)");
  };
  return withToken(ctx, need, refuse);
}

catalog::Actor actorOf(const HandlerRequest& r) { return catalog::Actor{peerAddress(r.writer->peer()), r.token}; }

std::optional<std::string> queryParam(std::string_view target, std::string_view key) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) != key) continue;
    std::string out;
    if (!percentDecode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), &out)) return std::nullopt;
    return out;
  }
  return std::nullopt;
}

int statusFor(const catalog::Problem& p) {
  switch (p.code) {
    case Errc::Invalid: return 400;
    case Errc::Exists:
    case Errc::Busy: return 409;
    case Errc::NoSpace: return 507;
    case Errc::NotFound: return 404;
    case Errc::Unsupported: return 422;
    default: return 500;
  }
}

std::string peerAddress(const struct sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (sa == nullptr) return "";
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
  return buf;
}

std::string clientNetwork(const struct sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (sa == nullptr) return "unknown";
  if (sa->sa_family == AF_INET) {
    in_addr a = reinterpret_cast<const sockaddr_in*>(sa)->sin_addr;
    a.s_addr &= htonl(0xffffff00u);
    inet_ntop(AF_INET, &a, buf, sizeof buf);
    return std::string(buf) + "/24";
  }
  if (sa->sa_family == AF_INET6) {
    in6_addr a = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    for (int i = 8; i < 16; ++i) a.s6_addr[i] = 0;
    inet_ntop(AF_INET6, &a, buf, sizeof buf);
    return std::string(buf) + "/64";
  }
  return "unknown";
}

std::string baseUrl(const Snapshot& snap, const RequestHead& req) {
  std::string base = snap.config.catalogBaseUrl;
  if (base.empty()) {
    // The Host the Mac used reaches this box; the router accepted it as ours.
    base = "http://" + std::string(req.header("Host").value_or("localhost"));
  }
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

nlohmann::ordered_json versionJson(const catalog::PackageVersion& v, std::string_view base) {
  nlohmann::json rec;
  catalog::toJson(rec, v, /*withChunks=*/false);
  nlohmann::ordered_json j;
  j["name"] = v.name;
  j["version"] = v.version;
  j["filename"] = v.filename;
  j["size"] = v.size;
  j["sha256"] = v.sha256;
  j["url"] = catalog::packageUrl(base, v.name, v.version, v.filename);
  j["manifest_url"] = catalog::manifestUrl(base, v.name, v.version);
  j["published"] = v.published;
  j["published_by"] = v.publishedBy;
  j["metadata"] = rec["metadata"];
  j["signature"] = rec["signature"];
  j["warnings"] = v.warnings;
  return j;
}

OffLoopAnswer::Reply errorReply(int status, std::string_view detail, std::string extra) {
  return OffLoopAnswer::Reply{status, errorBody(status, detail), std::move(extra)};
}

void OffLoopAnswer::start() {
  if (maxBody_ == 0 || !req_.hasBody()) return run();
  if (req_.contentLength && *req_.contentLength > maxBody_)
    return answerError(413, "the body may be at most " + std::to_string(maxBody_) + " bytes");
  // A client that waits for it (curl does past 1 MiB) gets its 100 Continue.
  if (auto e = req_.header("Expect"); e && iequals(*e, "100-continue") && req_.versionMinor >= 1)
    w_->write("HTTP/1.1 100 Continue\r\n\r\n");
}

void OffLoopAnswer::onRequestBody(const char* data, size_t n) {
  if (answered() || started_) return;
  if (body_.size() + n > maxBody_) return answerError(413, "the body may be at most " + std::to_string(maxBody_) + " bytes");
  body_.append(data, n);
}

void OffLoopAnswer::onRequestComplete() {
  requestComplete_ = true;
  if (maxBody_ > 0 && req_.hasBody() && !answered() && !started_) run();
}

void OffLoopAnswer::run() {
  started_ = true;
  struct Job {
    uv_work_t req;
    std::weak_ptr<bool> alive;
    OffLoopAnswer* handler;
    Work work;
    std::string body;
    Reply reply;
  };
  auto* job = new Job{};
  job->req.data = job;
  job->alive = alive_;
  job->handler = this;
  job->work = std::move(work_);
  job->body = std::move(body_);
  auto work = [](uv_work_t* q) {
    auto* j = static_cast<Job*>(q->data);
    j->reply = j->work(std::move(j->body));
  };
  auto after = [](uv_work_t* q, int) {
    auto* j = static_cast<Job*>(q->data);
    if (auto a = j->alive.lock(); a && *a)
      j->handler->answer(j->reply.status, j->reply.type, j->reply.body, j->reply.extra);
    delete j;
  };
  if (runner_) {
    Worker* worker = w_->wc()->worker;
    const bool queued = runner_([job, worker] {
      job->reply = job->work(std::move(job->body));
      worker->post([job] {
        if (auto a = job->alive.lock(); a && *a)
          job->handler->answer(job->reply.status, job->reply.type, job->reply.body, job->reply.extra);
        delete job;
      });
    });
    if (!queued) {
      delete job;
      answerError(503, "the box is stopping");
    }
    return;
  }
  if (uv_queue_work(w_->wc()->worker->loop(), &job->req, work, after) != 0) {
    work(&job->req);  // the pool refused (shutting down): answer from here
    after(&job->req, 0);
  }
}

}  // namespace orchard::server
