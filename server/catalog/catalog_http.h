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
#include "server/context.h"
#include "server/http/local_handler.h"
#include "server/http/route_table.h"

namespace orchard::server {

// True when the request carries `Authorization: Bearer <token>` with the
// box's token (admin.token / admin.token_file, else the generated one);
// compared in constant time.
bool tokenMatches(const RequestHead& req, const ServerContext& ctx, const Snapshot& snap);
// The 401 for a request without the right token (WWW-Authenticate: Bearer).
RequestHandler* unauthorized(HandlerRequest& r);
// Wraps a handler factory with the bearer-token check (401 without it).
using CatalogFactory = RequestHandler* (*)(HandlerRequest&&, const ServerContext*);
HandlerFactory withToken(const ServerContext* ctx, CatalogFactory make);
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
    int status = 200;
    std::string body;
    std::string extra;  // extra header lines
    std::string type = "application/json";
  };
  using Work = std::function<Reply(std::string body)>;
  OffLoopAnswer(ResponseWriter* w, RequestHead req, Work work, size_t maxBody = 0)
      : LocalHandler(w, std::move(req)), work_(std::move(work)), maxBody_(maxBody) {}
  ~OffLoopAnswer() override { *alive_ = false; }
  void start() override;
  void onRequestBody(const char* data, size_t n) override;
  void onRequestComplete() override;

 private:
  void run();
  Work work_;
  size_t maxBody_;
  std::string body_;
  bool started_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// An error Reply with the JSON error body.
OffLoopAnswer::Reply errorReply(int status, std::string_view detail, std::string extra = {});

}  // namespace orchard::server
