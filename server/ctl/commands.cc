// The reading commands (status, metrics, packages, show, audit) and delete;
// publish lives in publish.cc. See commands.h.
#include "server/ctl/commands.h"

#include <nlohmann/json.hpp>

#include <cstdio>

#include "server/ctl/progress.h"
#include "server/ctl/status_view.h"
#include "server/ctl/table.h"

namespace orchard::ctl {
namespace {

int notAnObject(const Reply& reply) {
  std::fprintf(stderr, "orchardctl: the box answered %ld with a body that is not a JSON object\n", reply.status);
  return kExitAnswer;
}

}  // namespace

namespace detail {

int checkReply(const Context& ctx, const Reply& reply) {
  if (!reply.transportOk()) {
    std::fprintf(stderr, "orchardctl: cannot reach the box at %s\n", reply.failure.c_str());
    return kExitTransport;
  }
  if (reply.success()) return kExitOk;
  std::string error = "error", detail;
  auto j = nlohmann::json::parse(reply.body, nullptr, false);
  if (j.is_object()) {
    if (j.contains("error") && j["error"].is_string()) error = j["error"].get<std::string>();
    if (j.contains("detail") && j["detail"].is_string()) detail = j["detail"].get<std::string>();
  } else {
    detail = reply.body.substr(0, 200);
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) detail.pop_back();
  }
  // A token the box did not take: said first, so that it is not read as
  // a fault of the command (a 403 for a client address is not the token's).
  const bool tokenRefused =
      !ctx.tokenSource.empty() && (reply.status == 401 || (reply.status == 403 && detail.find("token") != std::string::npos));
  std::fprintf(stderr, "orchardctl: %s%ld %s: %s\n", tokenRefused ? "the token was refused: " : "", reply.status,
               error.c_str(), detail.c_str());
  if (tokenRefused)
    std::fprintf(stderr, "orchardctl: the token came from %s\n", ctx.tokenSource.c_str());
  if (reply.status == 401 && ctx.tokenSource.empty())
    std::fprintf(stderr, "orchardctl: no token given: use --token, ORCHARD_TOKEN or --token-file\n");
  return kExitAnswer;
}

void addQuery(std::string* query, const char* key, const std::string& value) {
  query->append(query->empty() ? "?" : "&").append(key).append("=").append(value);
}

std::optional<int> takeJson(const Context& ctx, const Reply& reply, nlohmann::json* out) {
  if (int rc = checkReply(ctx, reply)) return rc;
  if (ctx.json) {
    printRaw(reply);
    return kExitOk;
  }
  *out = nlohmann::json::parse(reply.body, nullptr, false);
  if (out->is_object()) return std::nullopt;
  return notAnObject(reply);
}

void printRaw(const Reply& reply) {
  std::fputs(reply.body.c_str(), stdout);
  if (!reply.body.empty() && reply.body.back() != '\n') std::fputc('\n', stdout);
}

}  // namespace detail

namespace {

using nlohmann::json;
using detail::checkReply;
using detail::printRaw;
using detail::takeJson;

// A field as text whatever its JSON type ("" when absent or null).
std::string text(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "";
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

uint64_t number(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number_unsigned()) return 0;
  return j[key].get<uint64_t>();
}

}  // namespace

int runStatus(Context& ctx) {
  Reply r = ctx.http.get("/api/v1/status");
  if (int rc = checkReply(ctx, r)) return rc;
  json j = json::parse(r.body, nullptr, false);
  if (ctx.json) {
    printRaw(r);
    return kExitOk;
  }
  if (!j.is_object()) return notAnObject(r);
  std::fputs(statusText(j).c_str(), stdout);  // as Apple's AssetCacheManagerUtil status (status_view.h)
  return kExitOk;
}

int runMetrics(Context& ctx) {
  Reply r = ctx.http.get("/metrics");
  if (int rc = checkReply(ctx, r)) return rc;
  printRaw(r);
  return kExitOk;
}

int runPackages(Context& ctx) {
  json j;
  if (auto rc = takeJson(ctx, ctx.http.get("/api/v1/packages"), &j)) return *rc;
  Table t({{"NAME"}, {"LATEST"}, {"VERSIONS", true}, {"SIZE", true}});
  if (j.contains("packages") && j["packages"].is_array())
    for (const auto& p : j["packages"])
      t.add({text(p, "name"), text(p, "latest"), text(p, "versions"), formatBytes(number(p, "size"))});
  if (t.empty()) std::printf("no packages\n");
  else t.print(stdout);
  return kExitOk;
}

int runShow(Context& ctx, const std::string& name) {
  json j;
  if (auto rc = takeJson(ctx, ctx.http.get("/api/v1/packages/" + ctx.http.escape(name)), &j)) return *rc;
  std::printf("%s\n", text(j, "name").c_str());
  Table t({{"VERSION"}, {"FILENAME"}, {"SIZE", true}, {"SHA256"}, {"PUBLISHED"}, {"DOWNLOADS", true},
           {"WARNINGS", true}});
  if (j.contains("versions") && j["versions"].is_array())
    for (const auto& v : j["versions"]) {
      size_t warnings = v.contains("warnings") && v["warnings"].is_array() ? v["warnings"].size() : 0;
      std::string published = v.contains("published") && v["published"].is_number()
                                  ? rfc3339(v["published"].get<long long>())
                                  : text(v, "published");
      t.add({text(v, "version"), text(v, "filename"), formatBytes(number(v, "size")), text(v, "sha256").substr(0, 12),
             published, text(v, "downloads"), std::to_string(warnings)});
    }
  t.print(stdout);
  return kExitOk;
}

int runDelete(Context& ctx, const std::string& name, const std::string& version) {
  Reply r = ctx.http.del("/api/v1/packages/" + ctx.http.escape(name) + "/" + ctx.http.escape(version));
  if (int rc = checkReply(ctx, r)) return rc;
  if (ctx.json) printRaw(r);
  else std::printf("deleted %s %s\n", name.c_str(), version.c_str());
  return kExitOk;
}

int runAudit(Context& ctx, const AuditArgs& args) {
  json entries = json::array();
  json next = nullptr;
  std::optional<uint64_t> after = args.after;
  for (;;) {
    std::string query;
    if (after) detail::addQuery(&query, "after", std::to_string(*after));
    if (args.limit) detail::addQuery(&query, "limit", std::to_string(*args.limit));
    Reply r = ctx.http.get("/api/v1/audit" + query);
    if (int rc = checkReply(ctx, r)) return rc;
    if (ctx.json && !args.all) {
      printRaw(r);
      return kExitOk;
    }
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_object()) return notAnObject(r);
    if (j.contains("entries") && j["entries"].is_array())
      for (auto& e : j["entries"]) entries.push_back(std::move(e));
    next = j.contains("next") ? j["next"] : json(nullptr);
    if (!args.all || !next.is_number_unsigned()) break;
    uint64_t n = next.get<uint64_t>();
    if (after && n <= *after) break;  // a box that does not move forward would loop for ever
    after = n;
  }
  if (ctx.json) {
    std::printf("%s\n", json{{"entries", entries}, {"next", next}}.dump().c_str());
    return kExitOk;
  }
  Table t({{"SEQ", true}, {"TIME"}, {"ACTION"}, {"OBJECT"}, {"CLIENT"}, {"TOKEN"}});
  for (const auto& e : entries) {
    std::string time = e.contains("time") && e["time"].is_number() ? rfc3339(e["time"].get<long long>())
                                                                      : text(e, "time");
    t.add({text(e, "seq"), time, text(e, "action"), text(e, "object"), text(e, "client"), text(e, "token")});
  }
  t.print(stdout);
  if (!args.all && next.is_number()) std::printf("more: --after %s (or --all)\n", next.dump().c_str());
  return kExitOk;
}

// GET /api/v1/catalog/sync: the feed position at a branch, its lag and
// the versions waiting for their bytes.
int runSync(Context& ctx) {
  json j;
  if (auto rc = takeJson(ctx, ctx.http.get("/api/v1/catalog/sync"), &j)) return *rc;
  if (!j.value("following", false)) {
    std::printf("not following a hub (catalog.follow is not set); this box's own feed is at change %s\n",
                text(j, "last_change").c_str());
  } else {
    std::printf("hub          %s\n", text(j, "hub").c_str());
    std::printf("applied      %s of %s (%s behind, %s s)\n", text(j, "applied").c_str(), text(j, "hub_last").c_str(),
                text(j, "lag_changes").c_str(), text(j, "lag_seconds").c_str());
    std::printf("last contact %s\n", j.contains("last_contact") && j["last_contact"].is_number()
                                         ? rfc3339(j["last_contact"].get<long long>()).c_str()
                                         : "never");
    if (!text(j, "last_error").empty()) std::printf("last error   %s\n", text(j, "last_error").c_str());
    if (!text(j, "fetching").empty()) std::printf("fetching     %s\n", text(j, "fetching").c_str());
  }
  Table t({{"WAITING"}, {"VERSION"}, {"SIZE", true}, {"HELD", true}, {"ERROR"}});
  if (j.contains("waiting") && j["waiting"].is_array())
    for (const auto& w : j["waiting"]) {
      std::string err;
      const std::string key = text(w, "name") + "/" + text(w, "version");
      if (j.contains("byte_errors") && j["byte_errors"].is_object() && j["byte_errors"].contains(key))
        err = text(j["byte_errors"], key.c_str());
      t.add({text(w, "name"), text(w, "version"), formatBytes(number(w, "size")), formatBytes(number(w, "bytes_held")),
             err});
    }
  if (t.empty()) std::printf("no versions waiting for their bytes\n");
  else t.print(stdout);
  return kExitOk;
}

// GET /api/v1/sites (at a hub): each branch's last report and the totals.
int runSites(Context& ctx) {
  json j;
  if (auto rc = takeJson(ctx, ctx.http.get("/api/v1/sites"), &j)) return *rc;
  Table t({{"SITE"}, {"APPLIED", true}, {"HUB", true}, {"WAITING", true}, {"DEVICES", true}, {"REPORTED"}});
  if (j.contains("sites") && j["sites"].is_array())
    for (const auto& s : j["sites"])
      t.add({text(s, "site"), text(s, "applied"), text(s, "hub_last"), text(s, "waiting"), text(s, "devices"),
             s.contains("received") && s["received"].is_number() ? rfc3339(s["received"].get<long long>())
                                                                 : text(s, "received")});
  if (t.empty()) std::printf("no site has reported\n");
  else t.print(stdout);
  Table tot({{"PACKAGE"}, {"VERSION"}, {"DOWNLOADS", true}, {"COMPLETED", true}, {"BYTES", true}, {"BOXES", true}});
  if (j.contains("totals") && j["totals"].is_array())
    for (const auto& v : j["totals"])
      tot.add({text(v, "name"), text(v, "version"), text(v, "downloads"), text(v, "completed"),
               formatBytes(number(v, "bytes")), text(v, "boxes")});
  if (!tot.empty()) {
    std::printf("\ntotals over the sites and this box:\n");
    tot.print(stdout);
  }
  return kExitOk;
}

}  // namespace orchard::ctl
