// Config snapshots and reload plans; see reload.h.
#include "config/reload.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace orchard::config {

ReloadPlan planReload(const Config& running, const Config& fresh) {
  ReloadPlan plan;
  plan.config = fresh;
  for (const Param* p : changedParams(running, fresh)) {
    if (p->reloadable) {
      plan.applied.push_back(p);
    } else {
      plan.needRestart.push_back(p);
      p->copy(plan.config, running);
    }
  }
  return plan;
}

std::string needsRestartMessage(const Param& param) {
  return std::string(param.name) + " changed: needs a restart";
}

Result<std::string> readTokenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno ? errno : ENOENT;
    return Error{err == ENOENT ? Errc::NotFound : Errc::Io, err, "cannot read the token file"};
  }
  std::string line;
  std::getline(in, line);
  if (in.bad()) return Error{Errc::Io, EIO, "cannot read the token file"};
  const char* ws = " \t\r\n";
  size_t b = line.find_first_not_of(ws);
  if (b == std::string::npos) return Error{Errc::Invalid, 0, "the token file is empty"};
  size_t e = line.find_last_not_of(ws);
  return line.substr(b, e - b + 1);
}

SnapshotResult buildSnapshot(Config config, uint64_t generation) {
  SnapshotResult r;
  auto s = std::make_shared<ConfigSnapshot>();
  s->generation = generation;
  s->allow = HostMatcher(config.upstreamAllow);
  s->schemeInKey = HostMatcher(config.schemeInKey);
  if (!config.adminTokenFile.empty()) {
    Result<std::string> token = readTokenFile(config.adminTokenFile);
    if (!token) {
      std::string msg = std::string(token.error().context) + " " + config.adminTokenFile;
      if (token.error().sys != 0) msg += std::string(": ") + std::strerror(token.error().sys);
      r.problems.push_back(Problem{"admin.token_file", 0, std::move(msg)});
      return r;
    }
    s->adminToken = std::move(*token);
  } else {
    s->adminToken = config.adminToken;
  }
  // Named tokens: read their files, and hold every secret to the rules the
  // loader applies to inline ones (a file may hold anything).
  for (const TokenSpec& t : config.adminTokens) {
    ResolvedToken rt{t.name, t.token, t.scope};
    if (!t.tokenFile.empty()) {
      Result<std::string> token = readTokenFile(t.tokenFile);
      if (!token) {
        std::string msg = "token \"" + t.name + "\": " + token.error().context + " " + t.tokenFile;
        if (token.error().sys != 0) msg += std::string(": ") + std::strerror(token.error().sys);
        r.problems.push_back(Problem{"admin.tokens", 0, std::move(msg)});
        continue;
      }
      if (const char* why = tokenTextProblem(*token)) {
        r.problems.push_back(Problem{"admin.tokens", 0, "token \"" + t.name + "\" (" + t.tokenFile + "): " + why});
        continue;
      }
      rt.secret = std::move(*token);
    }
    if (!s->adminToken.empty() && rt.secret == s->adminToken) {
      r.problems.push_back(
          Problem{"admin.tokens", 0, "token \"" + t.name + "\" is the same secret as admin.token: give each its own"});
      continue;
    }
    for (const ResolvedToken& seen : s->namedTokens) {
      if (seen.secret == rt.secret)
        r.problems.push_back(Problem{"admin.tokens", 0, "token \"" + t.name + "\" is the same secret as token \"" +
                                                            seen.name + "\": give each its own"});
    }
    s->namedTokens.push_back(std::move(rt));
  }
  if (!r.problems.empty()) return r;
  s->config = std::move(config);
  r.snapshot = std::move(s);
  return r;
}

}  // namespace orchard::config
