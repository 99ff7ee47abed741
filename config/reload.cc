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
  s->config = std::move(config);
  r.snapshot = std::move(s);
  return r;
}

}  // namespace orchard::config
