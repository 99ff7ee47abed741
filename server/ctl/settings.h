// Where orchardctl talks to and with which token, from flags, environment
// and the box's generated token file, in that order of preference:
//   URL:   --url, $ORCHARD_URL, the first server.listen of the box's config
//          file ($ORCHARD_CONFIG, else /etc/orchard/orchard.toml, when it
//          exists and loads: an installed box listens on port 80; a wildcard
//          address is asked on loopback), http://127.0.0.1:8080
//   token: --token, $ORCHARD_TOKEN, the file named by --token-file, else the
//          first readable of $ORCHARD_STORAGE_DIR/admin.token,
//          /var/lib/orchard/admin.token, ./var/orchard/admin.token (orchardd
//          writes storage.dir/admin.token when no token is configured).
// Pure apart from reading files: the environment comes in as a function.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace orchard::ctl {

inline constexpr const char* kDefaultUrl = "http://127.0.0.1:8080";

using GetEnv = std::function<const char*(const char*)>;

inline constexpr const char* kInstalledConfig = "/etc/orchard/orchard.toml";

std::string resolveUrl(const std::string& flag, const GetEnv& env);
// "http://host:port" of the config file's first server.listen ("" when the
// file is missing, does not load, or has no plain listener).
std::string urlFromConfig(const std::string& path);

struct TokenChoice {
  std::string token;   // empty: none found (requests go without Authorization)
  std::string source;  // "--token", "ORCHARD_TOKEN", or the file it was read from
  std::string error;   // non-empty: --token-file was given but cannot be read
};

TokenChoice resolveToken(const std::string& flag, const std::string& tokenFile, const GetEnv& env);

// The token files tried when neither a token nor --token-file is given.
std::vector<std::string> defaultTokenFiles(const GetEnv& env);

}  // namespace orchard::ctl
