// Config snapshots and reload decisions: the pure half of SIGHUP.
//
// A ConfigSnapshot is one validated configuration as the server runs on it:
// the Config plus what is derived from it once (the upstream.allow matcher,
// the admin token read from admin.token_file). It is immutable once built
// and shared read-only between threads through a shared_ptr; the server
// wraps it with its own derived parts (server/context.h).
//
// A reload is: load the file (config.h: every problem, or a Config), plan it
// against the running Config (planReload: which reloadable keys change,
// which restart-only keys changed and keep their running value), build the
// snapshot of the planned Config (buildSnapshot: fails on a token file that
// cannot be read), then hand the snapshot to the server. Any failure leaves
// the running snapshot in place. Nothing here touches a socket or a loop.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/net.h"
#include "config/params.h"

namespace orchard::config {

struct ConfigSnapshot {
  Config config;
  HostMatcher allow;       // upstream.allow
  HostMatcher schemeInKey; // upstream.scheme_in_key
  std::string adminToken;  // admin.token, or the contents of admin.token_file (one line, trimmed); "" = none
  std::vector<ResolvedToken> namedTokens;  // admin.tokens, token_file contents read, in config order
  uint64_t generation = 0; // 1 for the start-up config, +1 for each reload that was applied
};

// What a reload changes.
struct ReloadPlan {
  // The fresh config with every restart-only key set back to its running
  // value: what the process runs on after the reload.
  Config config;
  std::vector<const Param*> applied;      // reloadable keys whose value changes
  std::vector<const Param*> needRestart;  // restart-only keys that changed (not applied)
};

ReloadPlan planReload(const Config& running, const Config& fresh);

// "server.listen changed: needs a restart".
std::string needsRestartMessage(const Param& param);

struct SnapshotResult {
  std::shared_ptr<ConfigSnapshot> snapshot;  // null when problems is not empty
  std::vector<Problem> problems;
  bool ok() const { return snapshot != nullptr; }
};

// Builds the snapshot of a loaded (valid) config. Reads admin.token_file
// and each admin.tokens token_file: a file that cannot be read, or that
// holds no token, is a problem naming the key; so is a file token that
// breaks the admin.tokens rules (tokenTextProblem) or repeats another
// token's secret. The snapshot is returned non-const so the caller may embed it;
// once handed to other threads it is not changed again.
SnapshotResult buildSnapshot(Config config, uint64_t generation);

// Reads a token file: the first line without surrounding whitespace.
// Errc::NotFound/Io with the errno when it cannot be read, Errc::Invalid
// when it is empty.
Result<std::string> readTokenFile(const std::string& path);

}  // namespace orchard::config
