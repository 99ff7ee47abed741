// RouteTable: which handler answers a request for the box itself, chosen
// by method, path pattern and listener. Matching is pure (no I/O, no
// state) and table-tested (tests/unit/server/route_table_test.cc).
//
// A pattern is a path of '/'-separated segments; a segment is a literal
// ("api") or a parameter ("{name}") that matches one non-empty segment,
// percent-decoded. When several rows match a path, the one whose first
// differing segment is a literal wins, so `PUT …/{version}/targeting` and
// `PUT …/{version}/{filename}` never collide. A path that some row matches
// with another method is a 405 (with the Allow list), not a 404.
// "GET" rows also answer HEAD (the handler sends no body for it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/tokens.h"
#include "server/http/handler.h"
#include "server/http/message.h"

namespace orchard::server {

// Path parameters of a match, in pattern order.
struct PathParams {
  std::vector<std::pair<std::string, std::string>> items;
  // The value of parameter `name` ("" if the pattern has none).
  std::string_view get(std::string_view name) const {
    for (const auto& [k, v] : items)
      if (k == name) return v;
    return {};
  }
};

// What a handler is made from.
struct HandlerRequest {
  ResponseWriter* writer = nullptr;
  RequestHead head;
  PathParams params;
  // The name of the bearer token that authorised the request ("admin",
  // "jamf"), set by the token check (withToken, server/catalog/catalog_http.h)
  // for the audit log; empty on routes that take no token.
  std::string token;
};
using HandlerFactory = std::function<RequestHandler*(HandlerRequest&&)>;

// Which client list a row answers (dispatch() checks it before the row's
// handler is made; server/routes.h has the rules):
//   Clients  the Macs' routes (/pkgs, /manifests): access.allow_clients
//   Admin    the admin API's open documents (/metrics, /api/v1/status):
//            admin.allow_clients, or access.allow_clients when that is empty
//   Token    the admin API's token routes: admin.allow_clients, or any
//            address when that is empty (the token decides)
enum class RouteAccess : uint8_t { Clients, Admin, Token };

// A handler factory that checks a bearer token of at least `scope` before
// it makes the handler (withToken() makes these); added as a Token row
// that records its scope.
struct GuardedFactory {
  HandlerFactory make;
  config::Scope scope = config::Scope::Admin;
};

// Listener kinds a row may be limited to (a bit mask).
enum ListenerKind : uint8_t { kPlainListener = 1, kTlsListener = 2, kAnyListener = 3 };

class RouteTable {
 public:
  struct Row {
    std::string method;   // "GET" (also HEAD), "PUT", ... or "*" for any
    std::string pattern;  // "/api/v1/packages/{name}/{version}/{filename}"
    uint8_t listeners = kAnyListener;
    HandlerFactory make;
    RouteAccess access = RouteAccess::Clients;
    config::Scope scope = config::Scope::Read;  // the token scope a Token row needs (else unused)
    std::vector<std::string> segments;  // the pattern split, filled by add()
  };
  struct Match {
    const Row* row = nullptr;  // null: no row for this method (see allow)
    PathParams params;
    std::string allow;         // when row is null and some row has this path: "GET, HEAD, PUT"
    // The access of the row that matched, or (no row for this method) of a
    // row with this path; Clients when no row has the path.
    RouteAccess access = RouteAccess::Clients;
  };

  // Adds a row. A malformed pattern (not starting with '/', an empty or
  // unterminated parameter) is a programming error: it throws.
  void add(std::string method, std::string pattern, HandlerFactory make, uint8_t listeners = kAnyListener,
           RouteAccess access = RouteAccess::Clients);
  // A Token row with the guarded factory's scope.
  void add(std::string method, std::string pattern, GuardedFactory guarded, uint8_t listeners = kAnyListener);
  // Every row, in the order added (the scope table test, the README's list).
  std::vector<const Row*> rows() const;
  Match match(std::string_view method, std::string_view path, uint8_t listener = kPlainListener) const;
  size_t size() const { return rows_.size(); }

 private:
  std::vector<std::unique_ptr<Row>> rows_;
};

// Percent-decodes a path segment; false on a malformed escape.
bool percentDecode(std::string_view in, std::string* out);

}  // namespace orchard::server
