// The Apple-content commands: see apple.h (what each sends) and
// apple_view.h (how each answer is shown).
#include "server/ctl/apple.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <thread>

#include "server/ctl/apple_view.h"
#include "server/ctl/progress.h"

namespace orchard::ctl {
namespace {

using nlohmann::json;
using detail::checkReply;
using detail::printRaw;
using detail::takeJson;

std::string productPath(Http& http, const std::string& id) { return "/api/v1/apple/products/" + http.escape(id); }

// The box's {"error","detail"} of an answer (error "error" and the body's
// start when it is not that shape).
void errorOf(const Reply& r, std::string* error, std::string* detail) {
  json j = json::parse(r.body, nullptr, false);
  *error = j.is_object() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : "error";
  *detail = j.is_object() && j.contains("detail") && j["detail"].is_string() ? j["detail"].get<std::string>()
                                                                               : r.body.substr(0, 200);
}

// A 503 from a products route: the box has never loaded Apple's catalog.
// Said as that, with the box's reason, rather than as a bare status.
std::optional<int> catalogUnavailable(const Reply& r) {
  if (!r.transportOk() || r.status != 503) return std::nullopt;
  std::string error, detail;
  errorOf(r, &error, &detail);
  std::fprintf(stderr, "orchardctl: Apple's catalog could not be loaded (503 %s): %s\n", error.c_str(), detail.c_str());
  std::fprintf(stderr,
               "orchardctl: the box reads apple.catalog_url through its own cache; when it can reach Apple again, "
               "try once more (--refresh reads it at once)\n");
  return kExitAnswer;
}

int notAnObject(const Reply& r) {
  std::fprintf(stderr, "orchardctl: the box answered %ld with a body that is not a JSON object\n", r.status);
  return kExitAnswer;
}

void out(const std::string& text) { std::fputs(text.c_str(), stdout); }

}  // namespace

int runAppleProducts(Context& ctx, const AppleProductsArgs& args) {
  std::string query;
  if (!args.kind.empty()) detail::addQuery(&query, "kind", ctx.http.escape(args.kind));
  if (!args.search.empty()) detail::addQuery(&query, "q", ctx.http.escape(args.search));
  if (args.limit) detail::addQuery(&query, "limit", std::to_string(*args.limit));
  if (args.refresh) detail::addQuery(&query, "refresh", "1");
  Reply r = ctx.http.get("/api/v1/apple/products" + query);
  if (auto rc = catalogUnavailable(r)) return *rc;
  json j;
  if (auto rc = takeJson(ctx, r, &j)) return *rc;
  out(productsText(j));
  return kExitOk;
}

int runAppleShow(Context& ctx, const std::string& id) {
  Reply r = ctx.http.get(productPath(ctx.http, id));
  if (auto rc = catalogUnavailable(r)) return *rc;
  json j;
  if (auto rc = takeJson(ctx, r, &j)) return *rc;
  out(productText(j));
  return kExitOk;
}

int runAppleMirror(Context& ctx, const AppleMirrorArgs& args) {
  Reply r = ctx.http.postJson(productPath(ctx.http, args.id) + "/mirror", "");
  if (auto rc = catalogUnavailable(r)) return *rc;
  if (int rc = checkReply(ctx, r)) return rc;
  json job = json::parse(r.body, nullptr, false);
  if (!job.is_object()) return notAnObject(r);
  std::string body = r.body;  // the latest job document, for --json
  auto finalJson = [&] {
    if (ctx.json) printRaw(Reply{200, body, ""});
  };
  if (args.noWait) {
    if (ctx.json) finalJson();
    else out(jobText(job));
    return kExitOk;
  }
  const std::string jobId = job.contains("id") && job["id"].is_string() ? job["id"].get<std::string>()
                            : job.contains("id") && job["id"].is_number() ? job["id"].dump()
                                                                          : "";
  if (jobId.empty()) {
    std::fprintf(stderr, "orchardctl: the box's answer names no job id to follow\n");
    return kExitAnswer;
  }
  if (!ctx.json) out(jobText(job));
  std::fflush(stdout);

  ctx.http.setTimeoutMs(kMirrorReadTimeoutMs);
  Progress bar(stderr, ctx.terminal, SystemClock::instance(), "mirror");
  bool polled = false;       // drew at least once: the bar gets its closing line
  bool saidWaiting = false;  // --wait-window: the reason was told once per wait
  int misses = 0;
  for (;;) {
    const MirrorNext next = mirrorNext(job, args.waitWindow);
    const JobProgress p = jobProgress(job);
    if (next == MirrorNext::Done) {
      if (polled) {
        Reported end = p.reported;
        end.note.clear();
        bar.finish(p.done, p.total, end);
      }
      if (ctx.json) finalJson();
      else out("mirrored: " + jobText(job));
      return kExitOk;
    }
    if (next == MirrorNext::Failed) {
      bar.abandon();
      finalJson();
      std::fputs(jobFailureText(job).c_str(), stderr);
      return kExitAnswer;
    }
    if (next == MirrorNext::Waiting) {
      bar.abandon();
      if (ctx.json) finalJson();
      else out(jobWaitingText(job));
      return kExitOk;
    }
    const bool waiting = job.contains("state") && job["state"] == "waiting";
    if (waiting && !saidWaiting) {
      bar.abandon();
      std::string reason = job.contains("reason") && job["reason"].is_string() ? job["reason"].get<std::string>() : "";
      std::fprintf(stderr, "mirror job %s waits for the mirror window%s%s; following it (--wait-window)\n",
                   jobId.c_str(), reason.empty() ? "" : ": ", reason.c_str());
    } else if (!waiting) {
      bar.update(p.done, p.total, p.reported);
      polled = true;
    }
    saidWaiting = waiting;

    std::this_thread::sleep_for(std::chrono::milliseconds(kMirrorPollMs));
    Reply g = ctx.http.get("/api/v1/apple/mirrors/" + ctx.http.escape(jobId));
    if (!g.transportOk() && ++misses < kMirrorMissLimit) continue;  // the box restarting: keep trying a while
    if (!g.success()) {
      bar.abandon();
      int rc = checkReply(ctx, g);
      std::fprintf(stderr, "orchardctl: stopped following mirror job %s; the box keeps running it "
                           "(orchardctl apple mirrors)\n", jobId.c_str());
      return rc;
    }
    misses = 0;
    json got = json::parse(g.body, nullptr, false);
    if (!got.is_object()) {
      bar.abandon();
      return notAnObject(g);
    }
    job = std::move(got);
    body = g.body;
  }
}

int runAppleMirrors(Context& ctx) {
  json j;
  if (auto rc = takeJson(ctx, ctx.http.get("/api/v1/apple/mirrors"), &j)) return *rc;
  out(mirrorsText(j));
  return kExitOk;
}

int runApplePublish(Context& ctx, const std::string& id) {
  Reply r = ctx.http.postJson(productPath(ctx.http, id) + "/publish", "");
  if (r.transportOk() && r.status == 409) {
    int rc = checkReply(ctx, r);
    std::fprintf(stderr, "orchardctl: mirror it first: orchardctl apple mirror %s\n", id.c_str());
    return rc;
  }
  json j;
  if (auto rc = takeJson(ctx, r, &j)) return *rc;
  detail::printPublished(r, j);
  return kExitOk;
}

int runAppleOsVersions(Context& ctx, const std::string& platform) {
  std::string query;
  if (!platform.empty()) detail::addQuery(&query, "platform", ctx.http.escape(platform));
  json j;
  if (auto rc = takeJson(ctx, ctx.http.get("/api/v1/apple/os-versions" + query), &j)) return *rc;
  out(osVersionsText(j));
  return kExitOk;
}

int runPrewarmPut(Context& ctx, const PrewarmPutArgs& args) {
  if (args.urls.empty() && args.products.empty()) {
    std::fprintf(stderr, "orchardctl: prewarm put needs at least one --url or --product\n");
    return kExitUsage;
  }
  json body{{"urls", args.urls}, {"products", args.products}};
  if (!args.window.empty()) {
    if (!validWindow(args.window)) {
      std::fprintf(stderr, "orchardctl: --window is HH:MM-HH:MM in the box's local time (\"22:00-06:00\"), got \"%s\"\n",
                   args.window.c_str());
      return kExitUsage;
    }
    body["window"] = args.window;
  }
  if (!args.interval.empty()) {
    std::string why;
    auto seconds = parseInterval(args.interval, &why);
    if (!seconds) {
      std::fprintf(stderr, "orchardctl: --interval: %s\n", why.c_str());
      return kExitUsage;
    }
    body["interval"] = *seconds;
  }
  json j;
  if (auto rc = takeJson(ctx, ctx.http.putJson("/api/v1/prewarm/" + ctx.http.escape(args.name), body.dump()), &j))
    return *rc;
  out(prewarmText(j));
  return kExitOk;
}

int runPrewarmList(Context& ctx) {
  json j;
  if (auto rc = takeJson(ctx, ctx.http.get("/api/v1/prewarm"), &j)) return *rc;
  out(prewarmListText(j));
  return kExitOk;
}

int runPrewarmShow(Context& ctx, const std::string& name) {
  json j;
  if (auto rc = takeJson(ctx, ctx.http.get("/api/v1/prewarm/" + ctx.http.escape(name)), &j)) return *rc;
  out(prewarmText(j));
  return kExitOk;
}

int runPrewarmDelete(Context& ctx, const std::string& name) {
  Reply r = ctx.http.del("/api/v1/prewarm/" + ctx.http.escape(name));
  if (int rc = checkReply(ctx, r)) return rc;
  if (ctx.json) printRaw(r);
  else std::printf("deleted prewarm list %s\n", name.c_str());
  return kExitOk;
}

int runImport(Context& ctx, const ImportArgs& args) {
  json body{{"url", args.url}};
  if (!args.filename.empty()) body["filename"] = args.filename;
  if (!args.sha256.empty()) {
    if (!validSha256(args.sha256)) {
      std::fprintf(stderr, "orchardctl: --sha256 is 64 hex digits, got \"%s\"\n", args.sha256.c_str());
      return kExitUsage;
    }
    std::string hex = args.sha256;
    for (char& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    body["sha256"] = hex;  // as the box writes digests
  }
  if (ctx.terminal && !ctx.json)
    std::fprintf(stderr, "the box is fetching %s ...\n", args.url.c_str());
  const std::string path = "/api/v1/packages/" + ctx.http.escape(args.name) + "/" + ctx.http.escape(args.version) +
                           "/from-url";
  Reply r = ctx.http.postJson(path, body.dump());
  json j;
  if (auto rc = takeJson(ctx, r, &j)) return *rc;
  detail::printPublished(r, j);
  return kExitOk;
}

}  // namespace orchard::ctl
