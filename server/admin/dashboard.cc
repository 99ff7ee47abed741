#include "server/admin/dashboard.h"

#include "common/headers.h"
#include "server/admin/dashboard_assets.h"
#include "server/http/local_handler.h"

namespace orchard::server {

bool acceptsHtml(std::string_view accept) {
  // A media range list: "text/html,application/xhtml+xml,...;q=0.9". Only
  // text/html itself counts (not */*: curl and Apple's clients send that).
  for (size_t at = 0; at < accept.size();) {
    size_t end = accept.find(',', at);
    if (end == std::string_view::npos) end = accept.size();
    std::string_view range = accept.substr(at, end - at);
    range = range.substr(0, range.find(';'));
    while (!range.empty() && (range.front() == ' ' || range.front() == '\t')) range.remove_prefix(1);
    while (!range.empty() && (range.back() == ' ' || range.back() == '\t')) range.remove_suffix(1);
    if (iequals(range, "text/html")) return true;
    at = end + 1;
  }
  return false;
}

void registerDashboardRoutes(RouteTable& routes) {
  // The page may only talk to the box itself and is never framed; it is
  // re-fetched each time (no-cache), so an upgrade shows at once.
  static const std::string kPageHeaders =
      "Cache-Control: no-cache\r\n"
      "Content-Security-Policy: default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
      "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'\r\n"
      "X-Content-Type-Options: nosniff\r\n"
      "Referrer-Policy: no-referrer\r\n";
  routes.add("GET", "/dashboard", [](HandlerRequest&& r) -> RequestHandler* {
    return new FixedAnswer(r.writer, std::move(r.head), 200, "text/html; charset=utf-8", std::string(dashboardHtml()),
                           kPageHeaders);
  }, kAnyListener, RouteAccess::Admin);
  routes.add("GET", "/dashboard/chart.js", [](HandlerRequest&& r) -> RequestHandler* {
    return new FixedAnswer(r.writer, std::move(r.head), 200, "text/javascript; charset=utf-8",
                           std::string(dashboardChartJs()),
                           "Cache-Control: max-age=86400\r\nX-Content-Type-Options: nosniff\r\n");
  }, kAnyListener, RouteAccess::Admin);
}

}  // namespace orchard::server
