// `orchardctl doctor`: checks a box from the box itself and says, for each
// check, OK or FAIL with the reason in plain words:
//
//   config        the config file parses and every key is valid (each
//                 problem with its key and line), token files readable.
//                 Which file: --config, else /etc/orchard/orchard.toml when
//                 it exists, else the file the running box names in its
//                 status (ConfigFile); a box on the embedded defaults is
//                 checked against them.
//   box           the status API answers at --url (Active, CacheStatus).
//   listen        every server.listen / tls.listen address accepts a TCP
//                 connection (a wildcard one is tried on loopback).
//   storage       storage.dir exists and has free space above the reserve
//                 the box keeps for its index (below it, fills pass through
//                 uncached); says whether the disk can hold cache_limit.
//   dns <host>    each upstream.allow host resolves (upstream.resolve
//                 entries need no DNS: they name the address); a wildcard
//                 pattern has nothing to resolve until a client names a host.
//   reach <host>  a TCP connection to the host's port 80 (or its
//                 upstream.resolve address) opens within kProbeTimeoutMs.
//
// The probes (connect, resolve, statvfs) are behind the Probes interface so
// the unit tests run every check against fakes; runDoctor() uses the real
// ones. Exit status: 0 when every check passed, 1 otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"

namespace orchard::ctl {

inline constexpr int kProbeTimeoutMs = 3000;

struct Check {
  std::string name;    // "config", "dns swcdn.apple.com", ...
  bool ok = false;
  std::string reason;  // plain words, one line
  std::vector<std::string> details;  // more lines (every config problem)
};

class Probes {
 public:
  virtual ~Probes() = default;
  // Addresses `host` resolves to ("17.253.1.2"), or an error message.
  struct Resolved {
    std::vector<std::string> addresses;
    std::string error;
  };
  virtual Resolved resolve(const std::string& host) = 0;
  // Opens (and closes) a TCP connection to address:port: "" on success,
  // else why not in plain words ("connection refused", "timed out after 3 s").
  virtual std::string connect(const std::string& address, uint16_t port, int timeoutMs) = 0;
  // Free and total bytes of the file system holding `dir`, or nullopt
  // with *error set (the directory does not exist, ...).
  struct Space {
    uint64_t avail = 0;
    uint64_t total = 0;
  };
  virtual std::optional<Space> space(const std::string& dir, std::string* error) = 0;
};

// The real probes: getaddrinfo, a non-blocking connect with poll, statvfs.
Probes& systemProbes();

// What the doctor learned from the box's status API (the "box" check).
struct BoxAnswer {
  bool reached = false;
  std::string failure;      // why not, when !reached ("connection refused", "401 ...")
  nlohmann::json status;    // the document, when reached
};

// The checks that follow from a config (listen, storage, dns, reach).
std::vector<Check> configChecks(const config::Config& cfg, Probes& probes);
// The "box" check from the status API's answer.
Check boxCheck(const std::string& url, const BoxAnswer& box);
// The "config" check of a loaded file (or of its problems).
Check configFileCheck(const std::string& path, const config::LoadResult& loaded);

// One line per check ("OK    name   reason", details indented below).
std::string doctorText(const std::vector<Check>& checks);

}  // namespace orchard::ctl
