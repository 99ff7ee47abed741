// What the catalog's HTTP handlers share: the bearer-token check, the
// status an catalog::Problem maps to, the URLs a record is reached by, the
// JSON of a version as the API shows it, and OffLoopAnswer, a handler whose
// answer is computed on the thread pool (a durable RocksDB write or a scan
// must never run on an event loop).
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "config/tokens.h"
#include "server/admin/tokens.h"
#include "server/context.h"
#include "server/http/local_handler.h"
#include "server/http/route_table.h"

namespace orchard::server {

// The token the request's `Authorization: Bearer <token>` names: one of
// the snapshot's (admin.token / admin.token_file as "admin", admin.tokens)
// or, when no admin token is configured, the generated one (also "admin").
// nullptr without a header or for an unknown token. Compared in constant
// time (TokenTable::find). The entry lives as long as the snapshot: copy
// what outlives the call.
const TokenEntry* findToken(const RequestHead& req, const ServerContext& ctx, const Snapshot& snap);
// The 401 for a request without a known token (WWW-Authenticate: Bearer).
RequestHandler* unauthorized(HandlerRequest& r);
// The 403 for a known token whose scope does not reach the route: names
// the scope needed and the token's own.
RequestHandler* wrongScope(HandlerRequest& r, const TokenEntry& token, config::Scope need);
// Wraps a handler factory with the bearer-token check: 401 without a known
// token, 403 when its scope does not allow `need` (config::scopeAllows);
// otherwise HandlerRequest::token is the token's name and the handler is
// made. Each routes.add of the admin API says its scope here:
//   routes.add("PUT", "/api/v1/devices/{serial}", withToken(ctx, Scope::Mdm, &putDevice));
using CatalogFactory = RequestHandler* (*)(HandlerRequest&&, const ServerContext*);
GuardedFactory withToken(const ServerContext* ctx, config::Scope need, CatalogFactory make);
// withToken for a route that changes the catalog's shared records
// (publish, delete, metadata, targeting, rings, rollout, pins, OS targets,
// release policies, imports): on a box that follows a hub
// (catalog.follow) a known token with the scope gets 409 naming the hub,
// whose catalog this box copies (change_feed.h).
GuardedFactory catalogWrite(const ServerContext* ctx, config::Scope need, CatalogFactory make);
// The same for a route that takes no token (/pkgs, /manifests, /apple/catalogs).
HandlerFactory openRoute(const ServerContext* ctx, CatalogFactory make);
// Who made a change, for the audit log: the client's address and the
// token's name.
catalog::Actor actorOf(const HandlerRequest& r);
// A query parameter's value (percent-decoded), or nullopt when absent or malformed.
std::optional<std::string> queryParam(std::string_view target, std::string_view key);
// The HTTP status of a catalog refusal.
int statusFor(const catalog::Problem& p);
// "10.1.2.3" / "fe80::1" of the client.
std::string peerAddress(const struct sockaddr* sa);
// The client's network for delivery counts: "10.1.2.0/24" or "fd00:1:2:3::/64".
std::string clientNetwork(const struct sockaddr* sa);
// Where Macs reach this box: catalog.base_url, else http://<Host> of the request.
std::string baseUrl(const Snapshot& snap, const RequestHead& req);
// A version as the API answers it (no chunk hashes) with its URLs.
nlohmann::ordered_json versionJson(const catalog::PackageVersion& v, std::string_view base);

// A handler that runs `work` on the loop's thread pool and answers what it
// returns. With maxBody > 0 it first gathers the request body (at most
// maxBody bytes, else 413 at once) and hands it to the work; otherwise the
// work starts at once with an empty body. The handler may be gone (client
// closed) when the work ends: the work still runs to its end, its answer
// is dropped.
class OffLoopAnswer final : public LocalHandler {
 public:
  struct Reply {
    // Positional, as the routes write it (Reply{200, body}); a constructor
    // rather than an aggregate so leaving the later fields out is no warning.
    Reply() = default;
    Reply(int s, std::string b, std::string e = {}, std::string t = "application/json")
        : status(s), body(std::move(b)), extra(std::move(e)), type(std::move(t)) {}
    int status = 200;
    std::string body;
    std::string extra;  // extra header lines
    std::string type = "application/json";
  };
  using Work = std::function<Reply(std::string body)>;
  // Runs a task on some other thread (any: the answer is posted back to the
  // handler's loop). Without one the work goes to the libuv thread pool,
  // which fills also use: work that blocks on the box's own HTTP (the
  // Apple routes) must bring its own threads, or four such answers could
  // hold every pool thread while the fills they wait for need one.
  using Runner = std::function<bool(std::function<void()>)>;  // false: refused (stopping)
  OffLoopAnswer(ResponseWriter* w, RequestHead req, Work work, size_t maxBody = 0, Runner runner = nullptr)
      : LocalHandler(w, std::move(req)), work_(std::move(work)), maxBody_(maxBody), runner_(std::move(runner)) {}
  ~OffLoopAnswer() override { *alive_ = false; }
  void start() override;
  void onRequestBody(const char* data, size_t n) override;
  void onRequestComplete() override;

 private:
  void run();
  Work work_;
  size_t maxBody_;
  Runner runner_;
  std::string body_;
  bool started_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// An error Reply with the JSON error body.
OffLoopAnswer::Reply errorReply(int status, std::string_view detail, std::string extra = {});

}  // namespace orchard::server
