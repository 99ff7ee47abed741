// URL and token resolution: see settings.h.
#include "server/ctl/settings.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>
#include <filesystem>

#include "config/config.h"

namespace orchard::ctl {
namespace {

// The first line of a token file, without surrounding white space.
bool readToken(const std::string& path, std::string* token, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = path + ": " + std::strerror(errno);
    return false;
  }
  std::string line;
  std::getline(in, line);
  const char* ws = " \t\r\n";
  size_t b = line.find_first_not_of(ws);
  size_t e = line.find_last_not_of(ws);
  *token = b == std::string::npos ? "" : line.substr(b, e - b + 1);
  if (token->empty()) {
    *error = path + ": empty token file";
    return false;
  }
  return true;
}

}  // namespace

std::string urlFromConfig(const std::string& path) {
  std::error_code ec;
  if (path.empty() || !std::filesystem::is_regular_file(path, ec)) return "";
  config::LoadResult r = config::loadFile(path);
  if (!r.ok() || r.config->listen.empty()) return "";
  const config::ListenAddress& a = r.config->listen.front();
  std::string host = a.host;
  if (host == "0.0.0.0") host = "127.0.0.1";
  else if (host == "::") host = "::1";
  if (a.v6) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(a.port);
}

std::string resolveUrl(const std::string& flag, const GetEnv& env) {
  std::string url = flag;
  if (url.empty()) {
    const char* e = env("ORCHARD_URL");
    if (e && *e) {
      url = e;
    } else {
      const char* c = env("ORCHARD_CONFIG");
      url = urlFromConfig(c && *c ? c : kInstalledConfig);
      if (url.empty()) url = kDefaultUrl;
    }
  }
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

std::vector<std::string> defaultTokenFiles(const GetEnv& env) {
  std::vector<std::string> files;
  if (const char* dir = env("ORCHARD_STORAGE_DIR"); dir && *dir) files.push_back(std::string(dir) + "/admin.token");
  files.emplace_back("/var/lib/orchard/admin.token");
  files.emplace_back("./var/orchard/admin.token");
  return files;
}

TokenChoice resolveToken(const std::string& flag, const std::string& tokenFile, const GetEnv& env) {
  TokenChoice c;
  if (!flag.empty()) return {flag, "--token", ""};
  if (const char* e = env("ORCHARD_TOKEN"); e && *e) return {e, "ORCHARD_TOKEN", ""};
  if (!tokenFile.empty()) {
    if (readToken(tokenFile, &c.token, &c.error)) c.source = tokenFile;
    return c;
  }
  for (const auto& path : defaultTokenFiles(env)) {
    std::string ignored;
    if (readToken(path, &c.token, &ignored)) {
      c.source = path;
      return c;
    }
  }
  c.token.clear();
  return c;
}

}  // namespace orchard::ctl
