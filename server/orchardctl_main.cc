// orchardctl: the admin tool, talking to a running orchardd's admin API.
//
//   orchardctl [--url URL] [--token TOKEN | --token-file PATH] [--json] COMMAND
//     status | top [--count N] [--interval SECONDS] | metrics
//     | purge URL | purge --host HOST | purge --all | reload
//     | doctor [--config FILE]
//     | publish FILE --name N --version V [...] | packages
//     | show NAME | delete NAME VERSION | audit [--after SEQ] [--limit N] [--all]
//     | rollout NAME [VERSION] [--release|--pause|--resume|--promote|--halt|--rollback [--reason TEXT]]
//     | apple products [--kind K] [--search TEXT] [--limit N] [--refresh] | apple show ID
//     | apple mirror ID [--no-wait|--wait-window] | apple mirrors | apple publish ID
//     | apple os-versions [--platform P]
//     | prewarm put NAME [--url U]... [--product ID]... [--window W] [--interval I]
//     | prewarm list | prewarm show NAME | prewarm delete NAME
//     | import NAME VERSION URL [--filename F] [--sha256 HEX]
//
// This file only parses the command line (CLI11) and picks the URL and the
// token (settings.h); the commands live in ctl/commands.cc, ctl/ops.cc,
// ctl/publish.cc and ctl/apple.cc, HTTP in ctl/http.cc (libcurl). Exit
// codes: commands.h.
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cstdlib>

#include "server/ctl/apple.h"
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
  app.add_subcommand("sync", "a branch's position in its hub's catalog and the versions waiting for bytes");
  app.add_subcommand("sites", "at a hub: each branch's last report and the delivery totals");
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

  // Apple's content: its catalog, mirror jobs, OS releases (apple.h).
  auto* apple = app.add_subcommand("apple", "Apple's catalog as the box sees it: products, mirrors, installers, "
                                            "OS versions");
  apple->require_subcommand(1);
  AppleProductsArgs ap;
  uint64_t apLimit = 0;
  auto* aProducts = apple->add_subcommand("products", "installers and updates in Apple's catalog, with what the box "
                                                      "holds of each");
  aProducts->add_option("--kind", ap.kind, "installer or update")->check(CLI::IsMember({"installer", "update"}));
  aProducts->add_option("--search", ap.search, "only products whose id, title, version or build has TEXT");
  auto* apLimitOpt = aProducts->add_option("--limit", apLimit, "at most this many products")->check(CLI::PositiveNumber);
  aProducts->add_flag("--refresh", ap.refresh, "read Apple's catalog again first");
  std::string appleId;
  auto* aShow = apple->add_subcommand("show", "one product and its packages, with what the box holds of each");
  aShow->add_option("id", appleId, "product id (as `apple products` lists it)")->required();
  AppleMirrorArgs am;
  auto* aMirror = apple->add_subcommand("mirror", "fetch a product's packages onto the box, following the job with "
                                                  "a progress bar");
  aMirror->add_option("id", am.id, "product id")->required();
  auto* noWait = aMirror->add_flag("--no-wait", am.noWait, "start the job and exit");
  aMirror->add_flag("--wait-window", am.waitWindow, "outside apple.mirror_window, keep following until the job "
                                                    "runs and ends")->excludes(noWait);
  apple->add_subcommand("mirrors", "the mirror jobs: state, progress, rate, ETA");
  auto* aPublish = apple->add_subcommand("publish", "publish a mirrored installer into the catalog as a package");
  aPublish->add_option("id", appleId, "product id")->required();
  std::string platform = "macOS";
  auto* aOs = apple->add_subcommand("os-versions", "Apple's OS releases (version, build, posted, expires, devices)");
  aOs->add_option("--platform", platform, "macOS (default) or another platform Apple lists");

  auto* prewarm = app.add_subcommand("prewarm", "lists of URLs and products the box fetches ahead of need");
  prewarm->require_subcommand(1);
  PrewarmPutArgs pw;
  auto* pPut = prewarm->add_subcommand("put", "create or replace a prewarm list");
  pPut->add_option("name", pw.name, "list name")->required();
  pPut->add_option("--url", pw.urls, "a URL to keep stored (repeatable)")->allow_extra_args(false);
  pPut->add_option("--product", pw.products, "an Apple product id to keep mirrored (repeatable)")
      ->allow_extra_args(false);
  pPut->add_option("--window", pw.window, "when to fetch, HH:MM-HH:MM local time (\"22:00-06:00\")");
  pPut->add_option("--interval", pw.interval, "how often to check again (\"6h\", \"90m\", seconds)");
  prewarm->add_subcommand("list", "the prewarm lists");
  std::string prewarmName;
  auto* pShow = prewarm->add_subcommand("show", "one prewarm list and what the box holds of it");
  pShow->add_option("name", prewarmName, "list name")->required();
  auto* pDelete = prewarm->add_subcommand("delete", "delete a prewarm list");
  pDelete->add_option("name", prewarmName, "list name")->required();

  ImportArgs imp;
  auto* importCmd = app.add_subcommand("import", "publish a package the box downloads from a URL");
  importCmd->add_option("name", imp.name, "package name")->required();
  importCmd->add_option("version", imp.version, "package version")->required();
  importCmd->add_option("url", imp.url, "where the box fetches the file (a host upstream.allow names)")->required();
  importCmd->add_option("--filename", imp.filename, "file name on the box (default: the URL's last segment)");
  importCmd->add_option("--sha256", imp.sha256, "the digest the file must have (64 hex digits)");

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
  if (cmd == "sync") return runSync(ctx);
  if (cmd == "sites") return runSites(ctx);
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
  if (cmd == "apple") {
    const std::string sub = apple->get_subcommands().front()->get_name();
    if (sub == "products") {
      if (*apLimitOpt) ap.limit = apLimit;
      return runAppleProducts(ctx, ap);
    }
    if (sub == "show") return runAppleShow(ctx, appleId);
    if (sub == "mirror") return runAppleMirror(ctx, am);
    if (sub == "mirrors") return runAppleMirrors(ctx);
    if (sub == "publish") return runApplePublish(ctx, appleId);
    return runAppleOsVersions(ctx, platform);
  }
  if (cmd == "prewarm") {
    const std::string sub = prewarm->get_subcommands().front()->get_name();
    if (sub == "put") return runPrewarmPut(ctx, pw);
    if (sub == "list") return runPrewarmList(ctx);
    if (sub == "show") return runPrewarmShow(ctx, prewarmName);
    return runPrewarmDelete(ctx, prewarmName);
  }
  if (cmd == "import") return runImport(ctx, imp);
  if (*afterOpt) audit.after = after;
  if (*limitOpt) audit.limit = limit;
  return runAudit(ctx, audit);
}
