// The operator's commands: purge, reload, top and doctor (see commands.h;
// the rendering is in status_view.cc, the doctor's checks in doctor.cc).
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "server/ctl/commands.h"
#include "server/ctl/doctor.h"
#include "server/ctl/status_view.h"

namespace orchard::ctl {
namespace {

using nlohmann::json;
using detail::checkReply;
using detail::printRaw;
using detail::takeJson;

std::string plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

uint64_t number(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number_unsigned() ? j[key].get<uint64_t>() : 0;
}

std::string joined(const json& list) {
  std::string out;
  if (!list.is_array()) return out;
  for (const auto& v : list)
    if (v.is_string()) out += (out.empty() ? "" : ", ") + v.get<std::string>();
  return out;
}

volatile sig_atomic_t gStop = 0;
void onStopSignal(int) { gStop = 1; }

// The terminal in key-at-a-time mode for `top` (no echo, no line
// buffering; Ctrl-C still signals), restored however top ends.
class KeyMode {
 public:
  explicit KeyMode(bool on) {
    if (!on || ::tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    active_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~KeyMode() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  bool active() const { return active_; }

 private:
  termios saved_{};
  bool active_ = false;
};

std::string localClock() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

}  // namespace

int runPurge(Context& ctx, const PurgeArgs& args) {
  json body;
  if (!args.url.empty()) body["url"] = args.url;
  else if (!args.host.empty()) body["host"] = args.host;
  else body["all"] = true;
  json j;
  if (auto rc = takeJson(ctx, ctx.http.postJson("/api/v1/purge", body.dump()), &j)) return *rc;
  const std::string what = !args.url.empty() ? (j.contains("key") && j["key"].is_string() ? j["key"].get<std::string>() : args.url)
                           : !args.host.empty() ? "host " + args.host
                                                : "everything";
  std::printf("purged %s: %s", what.c_str(), plural(number(j, "purged"), "object", "objects").c_str());
  std::string more;
  if (uint64_t p = number(j, "partials")) more += plural(p, "partial download", "partial downloads");
  if (uint64_t f = number(j, "fills"))
    more += (more.empty() ? "" : ", ") + plural(f, "download in flight", "downloads in flight") +
            " cut off (its clients finish, nothing is stored)";
  if (!more.empty()) std::printf(" (and %s)", more.c_str());
  std::printf("\n");
  return kExitOk;
}

int runReload(Context& ctx) {
  Reply r = ctx.http.postJson("/api/v1/reload", "");
  if (r.transportOk() && (r.status == 422 || r.status == 409)) {
    json j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("problems") && j["problems"].is_array()) {
      if (ctx.json) {
        printRaw(r);
        return kExitAnswer;
      }
      std::fprintf(stderr, "orchardctl: the box refused the reload (%ld): the running config (generation %llu) stays\n",
                   r.status, static_cast<unsigned long long>(number(j, "generation")));
      for (const auto& p : j["problems"]) {
        std::string where = p.contains("key") && p["key"].is_string() ? p["key"].get<std::string>() : "";
        if (p.contains("line") && p["line"].is_number()) where += (where.empty() ? "line " : " (line ") +
                                                                   std::to_string(p["line"].get<int64_t>()) +
                                                                   (where.empty() ? "" : ")");
        const std::string message = p.contains("message") && p["message"].is_string() ? p["message"].get<std::string>() : "";
        std::fprintf(stderr, "  %s%s%s\n", where.c_str(), where.empty() ? "" : ": ", message.c_str());
      }
      return kExitAnswer;
    }
  }
  json j;
  if (auto rc = takeJson(ctx, r, &j)) return *rc;
  std::printf("applied: config generation %llu\n", static_cast<unsigned long long>(number(j, "generation")));
  const std::string changed = joined(j.value("changed", json::array()));
  std::printf("changed: %s\n", changed.empty() ? "no reloadable key" : changed.c_str());
  const std::string restart = joined(j.value("restart_required", json::array()));
  if (!restart.empty())
    std::printf("restart required: %s (they keep their running values until orchardd restarts)\n", restart.c_str());
  return kExitOk;
}

int runTop(Context& ctx, const TopArgs& args) {
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  KeyMode keys(tty && ::isatty(STDIN_FILENO) == 1);
  struct sigaction sa {};
  sa.sa_handler = onStopSignal;  // no SA_RESTART: the wait below returns at once
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ctx.http.setTimeoutMs(std::max<int64_t>(3000, args.intervalMs * 2));

  json prev;
  bool havePrev = false;
  auto prevAt = std::chrono::steady_clock::now();
  uint64_t frames = 0;
  int rc = kExitOk;
  while (!gStop) {
    const auto readAt = std::chrono::steady_clock::now();
    Reply r = ctx.http.get("/api/v1/status");
    std::string frame;
    json now = r.success() ? json::parse(r.body, nullptr, false) : json();
    if (!now.is_object()) {
      if (frames == 0) {  // nothing to show: say why as the other commands do
        rc = r.success() ? kExitAnswer : checkReply(ctx, r);
        if (r.success()) std::fprintf(stderr, "orchardctl: the box's status is not a JSON object\n");
        break;
      }
      frame = "orchardctl top: " +
              (r.transportOk() ? "the box answered " + std::to_string(r.status) : "cannot reach the box at " + r.failure) +
              "; trying again\n";
    } else {
      int width = tty ? 100 : 1 << 20;  // plain frames (logs, pipes) keep whole URLs
      struct winsize ws {};
      if (tty && ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) width = ws.ws_col;
      TopFrame f;
      f.now = &now;
      f.prev = havePrev ? &prev : nullptr;
      f.seconds = std::chrono::duration<double>(readAt - prevAt).count();
      f.url = ctx.http.baseUrl();
      f.clock = localClock();
      f.width = width;
      frame = topText(f);
      if (tty) frame += "\n(q or Ctrl-C to quit)\n";
      prev = std::move(now);
      havePrev = true;
      prevAt = readAt;
    }
    if (tty) std::fputs("\x1b[H\x1b[2J", stdout);  // home, clear
    std::fputs(frame.c_str(), stdout);
    if (!tty) std::fputc('\n', stdout);  // plain frames, one blank line apart
    std::fflush(stdout);
    ++frames;
    if (args.count && frames >= args.count) break;
    // Wait for the next refresh, or a q.
    const auto next = readAt + std::chrono::milliseconds(args.intervalMs);
    while (!gStop) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next - std::chrono::steady_clock::now()).count();
      if (left <= 0) break;
      struct pollfd p {STDIN_FILENO, POLLIN, 0};
      const int n = ::poll(keys.active() ? &p : nullptr, keys.active() ? 1 : 0, static_cast<int>(left));
      if (n > 0) {
        char c = 0;
        if (::read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q')) gStop = 1;
      }
    }
  }
  return rc;
}

int runDoctor(Context& ctx, const DoctorArgs& args) {
  ctx.http.setTimeoutMs(5000);
  BoxAnswer box;
  Reply r = ctx.http.get("/api/v1/status");
  if (!r.transportOk()) {
    box.failure = r.failure;
  } else if (!r.success()) {
    box.failure = ctx.http.baseUrl() + ": it answered " + std::to_string(r.status);
    json e = json::parse(r.body, nullptr, false);
    if (e.is_object() && e.contains("detail") && e["detail"].is_string()) box.failure += " (" + e["detail"].get<std::string>() + ")";
  } else {
    box.status = json::parse(r.body, nullptr, false);
    box.reached = box.status.is_object();
    if (!box.reached) box.failure = ctx.http.baseUrl() + ": its status is not a JSON object";
  }

  std::vector<Check> checks;
  std::optional<config::Config> cfg;
  std::string path = args.config;
  const char* kEtc = "/etc/orchard/orchard.toml";
  std::string boxFile;
  if (box.reached && box.status.contains("ConfigFile") && box.status["ConfigFile"].is_string())
    boxFile = box.status["ConfigFile"].get<std::string>();
  if (path.empty() && std::ifstream(kEtc).good()) path = kEtc;
  if (path.empty()) path = boxFile;
  if (!path.empty()) {
    config::LoadResult loaded = config::loadFile(path);
    Check c = configFileCheck(path, loaded);
    if (!boxFile.empty() && boxFile != path) c.details.push_back("the box runs on " + boxFile + ", not this file");
    checks.push_back(std::move(c));
    if (loaded.ok()) cfg = *loaded.config;
  } else if (box.reached) {
    checks.push_back(Check{"config", true, "the box runs on the embedded defaults (no config file)", {}});
    cfg = config::defaults();
  } else {
    checks.push_back(Check{"config", false,
                           std::string("no config file to check: none at ") + kEtc +
                               " and the box cannot be asked which it runs; give --config FILE",
                           {}});
  }
  checks.push_back(boxCheck(ctx.http.baseUrl(), box));
  if (cfg) {
    std::vector<Check> more = configChecks(*cfg, systemProbes());
    checks.insert(checks.end(), more.begin(), more.end());
  }
  if (ctx.json) {
    json out = json::array();
    for (const auto& c : checks) out.push_back({{"check", c.name}, {"ok", c.ok}, {"reason", c.reason}, {"details", c.details}});
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::fputs(doctorText(checks).c_str(), stdout);
  }
  for (const auto& c : checks)
    if (!c.ok) return kExitAnswer;
  return kExitOk;
}

}  // namespace orchard::ctl
