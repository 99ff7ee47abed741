// POST /api/v1/test/clock {"advance_seconds": N}: moves the box's wall
// clock (an OffsetClock, orchardd --test-clock-offset) ahead, so a
// black-box test can let days pass for ring promotion. Registered only with
// that flag (orchardd_main.cc); answers {"now": unix, "offset_seconds": N}.
#include "common/offset_clock.h"
#include "server/catalog/catalog_http.h"
#include "server/catalog/catalog_routes.h"

namespace orchard::server {

namespace {

using nlohmann::json;

RequestHandler* advanceClock(HandlerRequest&& r, const ServerContext* ctx) {
  auto* clock = dynamic_cast<OffsetClock*>(ctx->clock);
  if (!clock) return FixedAnswer::error(r.writer, std::move(r.head), 404, "the test clock is off");
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [clock](std::string body) {
        json j = json::parse(body, nullptr, false);
        if (!j.is_object() || !j.contains("advance_seconds") || !j["advance_seconds"].is_number_integer())
          return errorReply(400, "the body is {\"advance_seconds\": N} (a whole number, may be negative)");
        const int64_t offset = clock->advance(j["advance_seconds"].get<int64_t>());
        OffLoopAnswer::Reply reply;
        reply.body = json{{"now", clock->nowSeconds()}, {"offset_seconds", offset}}.dump() + "\n";
        return reply;
      },
      1024);
}

}  // namespace

void registerTestClockRoute(RouteTable& routes, const ServerContext* ctx) {
  routes.add("POST", "/api/v1/test/clock", withToken(ctx, config::Scope::Admin, &advanceClock));
}

}  // namespace orchard::server
