// orchardd: the caching appliance daemon.
//
//   orchardd [--config FILE]        run (embedded defaults without --config)
//   orchardd --check-config FILE    validate a config, print every problem
//   orchardd --print-defaults [--production]
//                                   the embedded defaults as commented TOML;
//                                   with --production the config a box is
//                                   installed with (/etc/orchard/orchard.toml)
//   orchardd [--config FILE] --repair-index
//                                   repair the RocksDB index under storage.dir
//                                   (orchardd stopped), then exit
//   orchardd ... --test-clock-offset SECONDS
//                                   for tests only: the wall clock reads
//                                   now + SECONDS, and POST /api/v1/test/clock
//                                   {"advance_seconds": N} moves it further
//                                   (that route exists only with this flag)
//   ORCHARD_TEST_INTERNAL_SECRET=<32 hex> orchardd ...
//                                   for tests only: the secret of the box's
//                                   own requests (X-Orchard-Internal) is this
//                                   one instead of a random one per start
//
// Signals are handled on the main thread with sigwait(): SIGTERM/SIGINT
// drain (for the running server.drain_timeout) and exit 0; SIGHUP reloads
// the --config file on the server's control thread, as POST /api/v1/reload
// does (Server::reloadConfigFile: the whole file is validated, every
// key the parameter table marks reloadable is applied, a changed
// restart-only key is logged as needing a restart; a bad file changes
// nothing); SIGUSR1 reopens the server.access_log file at its path (for
// logrotate: rename, then SIGUSR1; Server::reopenLogs). Under systemd (Type=notify, $NOTIFY_SOCKET) each step is
// reported: READY=1, RELOADING=1 then READY=1, STOPPING=1, and WATCHDOG=1
// while $WATCHDOG_USEC asks for it (server/sd_notify.h).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>

#include "common/log.h"
#include "cache/store.h"
#include "config/config.h"
#include "common/offset_clock.h"
#include "config/reload.h"
#include "server/catalog/catalog_routes.h"
#include "server/net/tcp_stream.h"
#include "server/proxy/internal_request.h"
#include "server/sd_notify.h"
#include "server/server.h"

using namespace orchard;

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: orchardd [--config FILE]\n"
               "       orchardd --check-config FILE\n"
               "       orchardd [--config FILE] --repair-index\n"
               "       orchardd --print-defaults [--production]\n"
               "  --production                  with --print-defaults: the installed box's config\n"
               "                                (/etc/orchard/orchard.toml: port 80, /var/lib/orchard)\n"
               "  --test-clock-offset SECONDS   for tests only: the box's wall clock reads now + SECONDS\n"
               "                                and POST /api/v1/test/clock {\"advance_seconds\": N} moves it\n"
               "                                (rollout promotion in black-box tests); never in production\n");
}

bool loadOrReport(const std::string& path, config::Config* out) {
  auto r = config::loadFile(path);
  if (!r.ok()) {
    for (const auto& p : r.problems) std::fprintf(stderr, "%s\n", config::formatProblem(p, path).c_str());
    return false;
  }
  *out = *r.config;
  return true;
}

// What start-up and a reload read beyond the file (admin.token_file).
bool snapshotOrReport(const std::string& path, const config::Config& c) {
  auto b = config::buildSnapshot(c, 1);
  for (const auto& p : b.problems) std::fprintf(stderr, "%s\n", config::formatProblem(p, path).c_str());
  return b.ok();
}

}  // namespace

int main(int argc, char** argv) {
  std::string configPath;
  std::string checkPath;
  bool repair = false;
  bool printDefaults = false;
  bool production = false;
  std::optional<int64_t> testClockOffset;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--config" || a == "-c") && i + 1 < argc) configPath = argv[++i];
    else if (a == "--check-config" && i + 1 < argc) checkPath = argv[++i];
    else if (a == "--repair-index") repair = true;
    else if (a == "--test-clock-offset" && i + 1 < argc) {
      char* end = nullptr;
      errno = 0;
      const long long v = std::strtoll(argv[++i], &end, 10);
      if (errno != 0 || end == argv[i] || *end != '\0') {
        std::fprintf(stderr, "orchardd: --test-clock-offset %s: not a whole number of seconds\n", argv[i]);
        return 2;
      }
      testClockOffset = v;
    }
    else if (a == "--print-defaults") printDefaults = true;
    else if (a == "--production") production = true;
    else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "orchardd: unknown argument '%s'\n", a.c_str());
      usage();
      return 2;
    }
  }
  if (production && !printDefaults) {
    std::fprintf(stderr, "orchardd: --production goes with --print-defaults\n");
    usage();
    return 2;
  }
  if (printDefaults) {
    std::fputs((production ? config::productionToml() : config::defaultsToml()).c_str(), stdout);
    return 0;
  }
  if (!checkPath.empty()) {
    config::Config c;
    if (!loadOrReport(checkPath, &c) || !snapshotOrReport(checkPath, c)) return 1;
    std::fprintf(stdout, "%s: ok\n", checkPath.c_str());
    return 0;
  }

  config::Config cfg = config::defaults();
  if (!configPath.empty() && !loadOrReport(configPath, &cfg)) return 1;
  // Which path stored-file bodies take: copy (the default), sendfile or
  // splice (benchmarks, other hardware), einval (tests). Not a config key:
  // the default is the one measured best; the others are for comparing.
  if (const char* p = std::getenv("ORCHARD_SEND_PATH"); p && *p) {
    server::TcpStream::FilePath fp;
    if (!server::TcpStream::parseFilePath(p, &fp)) {
      std::fprintf(stderr, "orchardd: ORCHARD_SEND_PATH=%s: not sendfile, splice, copy or einval\n", p);
      return 2;
    }
    server::TcpStream::setFilePath(fp);
  }
  log::setLevel(cfg.logLevel);

  if (repair) {
    // RocksDB's repair: salvages the records it can read and rewrites the
    // metadata. Object files of lost records are removed by the start-up
    // reconciliation of the next normal start.
    const std::string index = cfg.storageDir + "/index";
    auto r = cache::repairStoreIndex(cfg.storageDir);
    if (!r && r.error().code == Errc::NotFound) {
      std::fprintf(stderr, "orchardd: there is no index at %s: nothing to repair (a normal start creates one)\n",
                   index.c_str());
      return 1;
    }
    if (!r) {
      std::fprintf(stderr,
                   "orchardd: repairing the index %s failed: %s\n"
                   "orchardd: to start over, move %s aside: orchardd then starts with an empty index and the "
                   "start-up reconciliation removes the object files no record names\n",
                   index.c_str(), r.error().message().c_str(), index.c_str());
      return 1;
    }
    std::fprintf(stderr, "orchardd: repaired the index %s; start orchardd normally\n", index.c_str());
    return 0;
  }

  // Every thread inherits this mask; only the main thread takes signals.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Declared before the server, which holds a pointer to it.
  std::optional<OffsetClock> testClock;
  server::Server server(cfg);
  if (testClockOffset) {
    testClock.emplace(SystemClock::instance(), *testClockOffset);
    server.context().clock = &*testClock;
    server::registerTestClockRoute(server.context().routes, &server.context());
    OLOG_WARN("--test-clock-offset %lld: the wall clock is moved and POST /api/v1/test/clock is on (tests only)",
              static_cast<long long>(*testClockOffset));
  }
  // For tests only: ORCHARD_TEST_INTERNAL_SECRET (32 lower-case hex
  // characters) is the secret of the box's own requests instead of a random
  // one (server/proxy/internal_request.h), so that a black-box test can send
  // what the box's jobs send. The secret is never printed.
  if (const char* s = std::getenv("ORCHARD_TEST_INTERNAL_SECRET"); s && *s) {
    if (!server::validInternalSecret(s)) {
      std::fprintf(stderr, "orchardd: ORCHARD_TEST_INTERNAL_SECRET: not %zu lower-case hex characters\n",
                   server::kInternalSecretChars);
      return 2;
    }
    server.context().internalSecret = s;
    OLOG_WARN("ORCHARD_TEST_INTERNAL_SECRET is set: the box's internal requests use the secret it names (tests "
              "only; never in production)");
  }
  server.setConfigPath(configPath);
  const std::string readyState = "READY=1\nSTATUS=serving\nMAINPID=" + std::to_string(::getpid());
  // Every reload, SIGHUP's and POST /api/v1/reload's, runs on the server's
  // control thread between these (set before start(): that thread reads them).
  server.setReloadHooks(
      [] { server::sdnotify::send("RELOADING=1\nSTATUS=reloading\n" + server::sdnotify::monotonicUsec()); },
      [readyState] { server::sdnotify::send(readyState); });
  auto r = server.start();
  if (!r) {
    const std::string why = server.startError().empty() ? r.error().message() : server.startError();
    std::fprintf(stderr, "orchardd: cannot start: %s\n", why.c_str());
    return 1;
  }
  if (const auto& t = server.snapshot()->tls; t->server) {
    // An MDM pins this (ManifestURLPinningCerts) or pushes /ca.pem.
    std::fprintf(stderr, "orchardd: https certificate %s, SHA-256 fingerprint %s%s\n", t->certPath.c_str(),
                 t->fingerprint.c_str(), t->caPem.empty() ? "" : " (the box's own CA is at GET /ca.pem)");
  }
  std::fprintf(stderr, "orchardd ready\n");
  std::fflush(stderr);
  server::sdnotify::send(readyState);
  // The systemd watchdog (WatchdogSec=): WATCHDOG=1 every half period, only
  // while every event loop still runs a posted task within a quarter of it.
  const int64_t watchdogUsec = server::sdnotify::watchdogUsec();

  while (true) {
    int sig = 0;
    if (watchdogUsec > 0) {
      const int64_t half = watchdogUsec / 2;
      timespec wait{static_cast<time_t>(half / 1'000'000), static_cast<long>((half % 1'000'000) * 1000)};
      sig = sigtimedwait(&set, nullptr, &wait);
      if (sig < 0) {
        if (errno == EAGAIN && server.loopsResponsive(std::max<int64_t>(1, watchdogUsec / 4000)))
          server::sdnotify::send("WATCHDOG=1");
        continue;
      }
    } else if (sigwait(&set, &sig) != 0) {
      continue;
    }
    if (sig == SIGUSR1) {
      (void)server.reopenLogs();  // logs its outcome
      continue;
    }
    if (sig == SIGHUP) {
      if (configPath.empty()) {
        OLOG_WARN("SIGHUP: nothing to reload (running on the embedded defaults, no --config)");
        continue;
      }
      (void)server.reloadConfigFile();  // on the control thread; logs and counts its outcome
      continue;
    }
    server::sdnotify::send("STOPPING=1\nSTATUS=draining");
    const int64_t drainMs = server.snapshot()->config.drainTimeoutMs;
    OLOG_INFO("%s: draining (up to %lld ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT", static_cast<long long>(drainMs));
    server.drain(drainMs);
    server.stop();
    return 0;
  }
}
