// orchardctl: the admin tool, talking to a running orchardd's admin API.
//
//   orchardctl [--url URL] [--token TOKEN | --token-file PATH] [--json] COMMAND
//     status | top [--count N] [--interval SECONDS] | metrics
//     | purge URL | purge --host HOST | purge --all | reload
//     | doctor [--config FILE]
//     | publish FILE --name N --version V [...] | packages
//     | show NAME | delete NAME VERSION | audit [--after SEQ] [--limit N] [--all]
//     | rollout NAME [VERSION] [--release|--pause|--resume|--promote|--halt|--rollback [--reason TEXT]]
//
// This file only parses the command line (CLI11) and picks the URL and the
// token (settings.h); the commands live in ctl/commands.cc, ctl/ops.cc
// and ctl/publish.cc, HTTP in ctl/http.cc (libcurl). Exit codes: commands.h.
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cstdlib>

#include "server/ctl/commands.h"
#include "server/ctl/settings.h"

using namespace orchard::ctl;

int main(int argc, char** argv) {
  CLI::App app{"orchardctl: the Orchard box's admin tool"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may also follow the command

  std::string url, token, tokenFile;
  bool json = false;
  app.add_option("--url", url, "the box's base URL (else $ORCHARD_URL, else " + std::string(kDefaultUrl) + ")");
  app.add_option("--token", token, "bearer token (else $ORCHARD_TOKEN, else a token file)");
  app.add_option("--token-file", tokenFile,
                 "file holding the token (else $ORCHARD_STORAGE_DIR/admin.token, /var/lib/orchard/admin.token, "
                 "./var/orchard/admin.token)");
  app.add_flag("--json", json, "print the box's JSON answer as is");

  app.set_version_flag("--version", std::string("orchardctl ") + ORCHARD_VERSION);
  app.add_subcommand("status", "cache status as AssetCacheManagerUtil status shows it (bytes served and stored, "
                               "cache used, free and limit, fills in flight)");
  TopArgs top;
  double interval = 1.0;
  auto* topCmd = app.add_subcommand("top", "the status, refreshed every second: rates, hit ratio, fills in flight "
                                           "(q or Ctrl-C ends it)");
  topCmd->add_option("--count", top.count, "draw this many frames, then exit")->check(CLI::PositiveNumber);
  topCmd->add_option("--interval", interval, "seconds between refreshes (default 1)")->check(CLI::Range(0.1, 3600.0));
  app.add_subcommand("metrics", "Prometheus metrics");

  PurgeArgs purgeArgs;
  auto* purgeCmd = app.add_subcommand("purge", "remove stored objects: the next request for them goes to the origin");
  auto* purgeWhat = purgeCmd->add_option_group("what", "exactly one of URL, --host or --all");
  purgeWhat->add_option("url", purgeArgs.url, "the URL as Macs ask for it (http://host/path?query)");
  purgeWhat->add_option("--host", purgeArgs.host, "every object of this host (any port, http and https)");
  purgeWhat->add_flag("--all", purgeArgs.all, "every object in the cache");
  purgeWhat->require_option(1);
  app.add_subcommand("reload", "reload the config file (as SIGHUP) and say whether it was valid");
  DoctorArgs doctor;
  auto* doctorCmd = app.add_subcommand("doctor", "check the config, the box, its listeners, storage and the upstream "
                                                 "hosts; exit 1 if any check fails");
  doctorCmd->add_option("--config", doctor.config,
                        "the config file (default /etc/orchard/orchard.toml, else the one the box runs on)");

  PublishArgs pub;
  auto* publish = app.add_subcommand("publish", "upload a package file and print what the box read from it");
  publish->add_option("file", pub.file, "the package file")->required()->check(CLI::ExistingFile);
  publish->add_option("--name", pub.name, "package name")->required();
  publish->add_option("--version", pub.version, "package version")->required();
  publish->add_option("--filename", pub.filename, "file name on the box (default: the file's base name)");
  publish->add_option("--title", pub.title, "display title (overrides the package's)");
  publish->add_option("--bundle-id", pub.bundleId, "main bundle identifier");
  publish->add_option("--bundle-version", pub.bundleVersion, "main bundle version");
  publish->add_option("--package-id", pub.packageId, "package identifier");
  publish->add_option("--min-os", pub.minOs, "lowest macOS version");
  publish->add_option("--max-os", pub.maxOs, "highest macOS version");
  // One value per --arch, so a file name after it stays the positional.
  publish->add_option("--arch", pub.archs, "architecture (repeatable: arm64, x86_64)")->allow_extra_args(false);

  app.add_subcommand("packages", "list published packages");
  std::string name, version;
  auto* show = app.add_subcommand("show", "list a package's versions, newest first");
  show->add_option("name", name, "package name")->required();
  auto* remove = app.add_subcommand("delete", "delete one published version");
  remove->add_option("name", name, "package name")->required();
  remove->add_option("version", version, "version")->required();

  AuditArgs audit;
  uint64_t after = 0, limit = 0;
  auto* auditCmd = app.add_subcommand("audit", "catalog changes, oldest first");
  auto* afterOpt = auditCmd->add_option("--after", after, "only entries after this sequence number");
  auto* limitOpt = auditCmd->add_option("--limit", limit, "at most this many entries per request")
                       ->check(CLI::PositiveNumber);
  auditCmd->add_flag("--all", audit.all, "follow `next` to the end");

  RolloutArgs ro;
  auto* rollout = app.add_subcommand("rollout", "a version's rollout (ring, state, devices per ring), or an action on it");
  rollout->add_option("name", ro.name, "package name")->required();
  rollout->add_option("version", ro.version, "version (default: the newest published)");
  bool rRelease = false, rPause = false, rResume = false, rPromote = false, rHalt = false, rRollback = false;
  auto* actions = rollout->add_option_group("action", "at most one action (needs VERSION)");
  actions->add_flag("--release", rRelease, "release a held version (its package's release is manual) into the first ring");
  actions->add_flag("--pause", rPause, "stop automatic promotion");
  actions->add_flag("--resume", rResume, "resume after a pause or halt");
  actions->add_flag("--promote", rPromote, "promote to the next ring now");
  actions->add_flag("--halt", rHalt, "no new devices");
  actions->add_flag("--rollback", rRollback, "withdraw the version: the previous one is offered again");
  actions->require_option(0, 1);
  rollout->add_option("--reason", ro.reason, "why (kept in the audit log)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  auto env = [](const char* key) -> const char* { return std::getenv(key); };
  TokenChoice tc = resolveToken(token, tokenFile, env);
  if (!tc.error.empty()) {
    std::fprintf(stderr, "orchardctl: --token-file %s\n", tc.error.c_str());
    return kExitUsage;
  }
  Http http(resolveUrl(url, env), tc.token);
  Context ctx{http, json, isatty(STDERR_FILENO) == 1, tc.source};

  const std::string cmd = app.get_subcommands().front()->get_name();
  if (cmd == "status") return runStatus(ctx);
  if (cmd == "top") {
    top.intervalMs = static_cast<int64_t>(interval * 1000.0 + 0.5);
    return runTop(ctx, top);
  }
  if (cmd == "purge") return runPurge(ctx, purgeArgs);
  if (cmd == "reload") return runReload(ctx);
  if (cmd == "doctor") return runDoctor(ctx, doctor);
  if (cmd == "metrics") return runMetrics(ctx);
  if (cmd == "publish") return runPublish(ctx, pub);
  if (cmd == "packages") return runPackages(ctx);
  if (cmd == "show") return runShow(ctx, name);
  if (cmd == "delete") return runDelete(ctx, name, version);
  if (cmd == "rollout") {
    ro.action = rRelease ? "release" : rPause ? "pause" : rResume ? "resume" : rPromote ? "promote" : rHalt ? "halt" : rRollback ? "rollback" : "";
    if (!ro.action.empty() && ro.version.empty()) {
      std::fprintf(stderr, "orchardctl: rollout --%s needs the VERSION it acts on\n", ro.action.c_str());
      return kExitUsage;
    }
    return runRollout(ctx, ro);
  }
  if (*afterOpt) audit.after = after;
  if (*limitOpt) audit.limit = limit;
  return runAudit(ctx, audit);
}
