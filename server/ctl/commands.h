// orchardctl's commands: each sends its request(s) through Http, prints the
// box's answer for a person (or as is with --json) and returns the exit code.
//
// Exit codes (kExit*): 0 success; 1 the box answered an error (stderr gets
// "orchardctl: <status> <error>: <detail>"); 2 usage error; 3 the box could
// not be reached (curl's message naming the URL).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "server/ctl/http.h"

namespace orchard::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitAnswer = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitTransport = 3;

struct Context {
  Http& http;
  bool json = false;          // print the box's JSON answer as is
  bool terminal = false;      // stderr is a terminal: progress as a redrawn bar
  std::string tokenSource;    // where the token came from; empty when there is none
};

struct PublishArgs {
  std::string file;
  std::string name;
  std::string version;
  std::string filename;  // empty: the file's base name
  // Overrides of what the box reads from the package (query parameters).
  std::string title, bundleId, bundleVersion, packageId, minOs, maxOs;
  std::vector<std::string> archs;
};

struct AuditArgs {
  std::optional<uint64_t> after;
  std::optional<uint64_t> limit;
  bool all = false;  // follow "next" until the box says null
};

int runStatus(Context& ctx);
int runMetrics(Context& ctx);
int runPublish(Context& ctx, const PublishArgs& args);
int runPackages(Context& ctx);
int runShow(Context& ctx, const std::string& name);
int runDelete(Context& ctx, const std::string& name, const std::string& version);
int runAudit(Context& ctx, const AuditArgs& args);
// GET /api/v1/catalog/sync (a branch following a hub: position, lag,
// versions waiting for bytes) and GET /api/v1/sites (a hub: the branches'
// reports and the totals).
int runSync(Context& ctx);
int runSites(Context& ctx);

struct RolloutArgs {
  std::string name;
  std::string version;  // empty: the newest published version
  std::string action;   // empty: show; else pause, resume, promote, halt or rollback
  std::string reason;
};
// Shows a version's rollout (ring, state, next promotion, devices per ring)
// or posts an action to .../rollout/{action} and shows the answer (rollout.cc).
int runRollout(Context& ctx, const RolloutArgs& args);

// The operator's commands (ops.cc).
struct PurgeArgs {
  std::string url;   // one of url, host, all
  std::string host;
  bool all = false;
};
// POST /api/v1/purge; prints what went. 404 (nothing stored for the URL) exits 1.
int runPurge(Context& ctx, const PurgeArgs& args);
// POST /api/v1/reload; prints the generation applied and the keys that
// need a restart, or each problem (key, line, message) and exits 1.
int runReload(Context& ctx);
struct TopArgs {
  uint64_t count = 0;        // frames to draw before exiting; 0: until q or Ctrl-C
  int64_t intervalMs = 1000;
};
// Redraws the box's status every interval (clearing the screen on a
// terminal, plain successive frames otherwise) until q, Ctrl-C or `count`.
int runTop(Context& ctx, const TopArgs& args);
struct DoctorArgs {
  std::string config;  // empty: /etc/orchard/orchard.toml, else the box's ConfigFile
};
// The checks of doctor.h; exit 1 when any failed.
int runDoctor(Context& ctx, const DoctorArgs& args);

}  // namespace orchard::ctl

// Shared by the command files.
namespace orchard::ctl::detail {

// The exit code for a reply that is not a success, after telling stderr
// why (kExitOk when it is a success: nothing printed).
int checkReply(const Context& ctx, const Reply& reply);
// Appends "?key=value" or "&key=value" to `query`; `value` is already escaped.
void addQuery(std::string* query, const char* key, const std::string& value);
// For an answer that is shown to a person: a failure (told on stderr) or
// --json (the body printed as is) ends here with the exit code returned;
// otherwise the body is parsed into *out and nullopt returned, for the
// caller to render. A success body that is not a JSON object is an error.
std::optional<int> takeJson(const Context& ctx, const Reply& reply, nlohmann::json* out);
// Prints the body as is (with a final newline) for --json.
void printRaw(const Reply& reply);
// What the box answered to a publish (a PUT of a file, an Apple installer
// published from its mirror, an import from a URL): name, version, size,
// the metadata it read and where from, signature, warnings, URLs.
void printPublished(const Reply& reply, const nlohmann::json& answer);

}  // namespace orchard::ctl::detail
