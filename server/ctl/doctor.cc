// The doctor's checks and its real probes: see doctor.h.
#include "server/ctl/doctor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "config/reload.h"
#include "server/ctl/status_view.h"

namespace orchard::ctl {
namespace {

std::string lowerFirst(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

class SystemProbes final : public Probes {
 public:
  Resolved resolve(const std::string& host) override {
    Resolved r;
    struct addrinfo hints {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo* list = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
    if (rc != 0) {
      r.error = lowerFirst(rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc));
      return r;
    }
    for (auto* a = list; a; a = a->ai_next) {
      char buf[INET6_ADDRSTRLEN] = "";
      if (a->ai_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, buf, sizeof buf);
      else if (a->ai_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, buf, sizeof buf);
      if (buf[0] && std::find(r.addresses.begin(), r.addresses.end(), buf) == r.addresses.end())
        r.addresses.emplace_back(buf);
    }
    ::freeaddrinfo(list);
    if (r.addresses.empty()) r.error = "no address";
    return r;
  }

  std::string connect(const std::string& address, uint16_t port, int timeoutMs) override {
    struct sockaddr_storage ss {};
    socklen_t len = 0;
    if (address.find(':') != std::string::npos) {
      auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons(port);
      if (inet_pton(AF_INET6, address.c_str(), &s6->sin6_addr) != 1) return "not an address: " + address;
      len = sizeof *s6;
    } else {
      auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
      s4->sin_family = AF_INET;
      s4->sin_port = htons(port);
      if (inet_pton(AF_INET, address.c_str(), &s4->sin_addr) != 1) return "not an address: " + address;
      len = sizeof *s4;
    }
    const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return lowerFirst(std::strerror(errno));
    std::string why;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      if (errno != EINPROGRESS) {
        why = lowerFirst(std::strerror(errno));
      } else {
        struct pollfd p {fd, POLLOUT, 0};
        const int n = ::poll(&p, 1, timeoutMs);
        if (n == 0) {
          why = "no answer within " + std::to_string(timeoutMs / 1000) + " s (timed out)";
        } else if (n < 0) {
          why = lowerFirst(std::strerror(errno));
        } else {
          int err = 0;
          socklen_t el = sizeof err;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
          if (err != 0) why = lowerFirst(std::strerror(err));
        }
      }
    }
    ::close(fd);
    return why;
  }

  std::optional<Space> space(const std::string& dir, std::string* error) override {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      *error = errno == ENOENT ? "does not exist" : lowerFirst(std::strerror(errno));
      return std::nullopt;
    }
    if (!S_ISDIR(st.st_mode)) {
      *error = "is not a directory";
      return std::nullopt;
    }
    struct statvfs v {};
    if (::statvfs(dir.c_str(), &v) != 0) {
      *error = lowerFirst(std::strerror(errno));
      return std::nullopt;
    }
    return Space{static_cast<uint64_t>(v.f_bavail) * v.f_frsize, static_cast<uint64_t>(v.f_blocks) * v.f_frsize};
  }
};

bool wildcard(const std::string& pattern) { return !pattern.empty() && (pattern[0] == '*' || pattern[0] == '.'); }

// Where a listener is reached from this box: a wildcard one on loopback.
std::string reachable(const config::ListenAddress& l) {
  if (l.host == "0.0.0.0") return "127.0.0.1";
  if (l.host == "::") return "::1";
  return l.host;
}

std::string hostPort(const std::string& address, uint16_t port) {
  return (address.find(':') != std::string::npos ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

}  // namespace

Probes& systemProbes() {
  static SystemProbes probes;
  return probes;
}

Check configFileCheck(const std::string& path, const config::LoadResult& loaded) {
  Check c{"config", false, "", {}};
  if (!loaded.ok()) {
    const size_t n = loaded.problems.size();
    c.reason = path + ": " + std::to_string(n) + (n == 1 ? " problem" : " problems") +
               " (orchardd refuses to start on it, and a reload keeps the running config)";
    for (const auto& p : loaded.problems) c.details.push_back(config::formatProblem(p, path));
    return c;
  }
  auto snap = config::buildSnapshot(*loaded.config, 1);
  if (!snap.ok()) {
    c.reason = path + ": the file is valid but what it names cannot be read";
    for (const auto& p : snap.problems) c.details.push_back(config::formatProblem(p, path));
    return c;
  }
  c.ok = true;
  c.reason = path + ": valid";
  return c;
}

Check boxCheck(const std::string& url, const BoxAnswer& box) {
  Check c{"box", false, "", {}};
  if (!box.reached) {
    c.reason = "cannot reach the box at " + box.failure;
    return c;
  }
  const nlohmann::json& s = box.status;
  const bool active = s.contains("Active") && s["Active"].is_boolean() && s["Active"].get<bool>();
  const std::string status = s.contains("CacheStatus") && s["CacheStatus"].is_string() ? s["CacheStatus"].get<std::string>() : "?";
  std::string version = s.contains("Version") && s["Version"].is_string() ? s["Version"].get<std::string>() : "?";
  c.reason = url + " answers (orchard " + version + ", " + (active ? "active" : "not active: draining") +
             ", CacheStatus " + status + ")";
  if (s.contains("CacheProblems") && s["CacheProblems"].is_array())
    for (const auto& p : s["CacheProblems"])
      if (p.is_string()) c.details.push_back(p.get<std::string>());
  c.ok = active && status == "OK";
  if (!c.ok && c.details.empty() && !active) c.details.push_back("the box is draining (SIGTERM): it stops soon");
  return c;
}

std::vector<Check> configChecks(const config::Config& cfg, Probes& probes) {
  std::vector<Check> out;
  auto listenCheck = [&](const config::ListenAddress& l, const char* key) {
    const std::string addr = reachable(l);
    Check c{std::string("listen ") + l.text, false, "", {}};
    const std::string why = probes.connect(addr, l.port, kProbeTimeoutMs);
    c.ok = why.empty();
    c.reason = c.ok ? hostPort(addr, l.port) + " accepts connections"
                    : std::string(key) + " " + l.text + ": " + why + " (is orchardd running with this config?)";
    out.push_back(std::move(c));
  };
  for (const auto& l : cfg.listen) listenCheck(l, "server.listen");
  for (const auto& l : cfg.tlsListen) listenCheck(l, "tls.listen");

  {
    Check c{"storage", false, "", {}};
    std::string error;
    auto space = probes.space(cfg.storageDir, &error);
    if (!space) {
      c.reason = "storage.dir " + cfg.storageDir + " " + error;
    } else {
      // The reserve fills keep free for the index (server/proxy/fill_driver.h).
      const uint64_t reserve = std::min<uint64_t>(64ull << 20, space->total / 20);
      c.ok = space->avail >= reserve;
      c.reason = appleBytes(space->avail) + " free of " + appleBytes(space->total) + " on storage.dir " + cfg.storageDir;
      if (!c.ok)
        c.reason += ": under the " + appleBytes(reserve) + " kept for the index, so misses pass through uncached";
      else if (cfg.cacheLimit && space->avail < cfg.cacheLimit)
        c.details.push_back("storage.cache_limit is " + appleBytes(cfg.cacheLimit) +
                            ": more than is free now (objects already stored count against it too)");
    }
    out.push_back(std::move(c));
  }

  for (const auto& pattern : cfg.upstreamAllow) {
    if (wildcard(pattern)) {
      out.push_back(Check{"dns " + pattern, true,
                          "a wildcard pattern: there is nothing to resolve until a client names a host under it", {}});
      continue;
    }
    std::string address;
    uint16_t port = 80;
    std::string via;
    if (auto it = cfg.upstreamResolve.find(pattern); it != cfg.upstreamResolve.end()) {
      address = it->second.host;
      port = it->second.port;
      via = " (upstream.resolve)";
      out.push_back(Check{"dns " + pattern, true, "upstream.resolve sends it to " + it->second.text + ": no DNS needed", {}});
    } else {
      Probes::Resolved r = probes.resolve(pattern);
      if (!r.error.empty()) {
        out.push_back(Check{"dns " + pattern, false, "does not resolve: " + r.error, {}});
        out.push_back(Check{"reach " + pattern, false, "unreachable: the name does not resolve", {}});
        continue;
      }
      std::string list;
      for (size_t i = 0; i < r.addresses.size() && i < 4; ++i) list += (i ? ", " : "") + r.addresses[i];
      if (r.addresses.size() > 4) list += ", ...";
      out.push_back(Check{"dns " + pattern, true, "resolves to " + list, {}});
      address = r.addresses.front();
    }
    const auto t0 = std::chrono::steady_clock::now();
    const std::string why = probes.connect(address, port, kProbeTimeoutMs);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    if (why.empty())
      out.push_back(Check{"reach " + pattern, true,
                          "connected to " + hostPort(address, port) + via + " in " + std::to_string(ms) + " ms", {}});
    else
      out.push_back(Check{"reach " + pattern, false, "unreachable: " + hostPort(address, port) + via + ": " + why, {}});
  }
  return out;
}

std::string doctorText(const std::vector<Check>& checks) {
  size_t width = 0;
  for (const auto& c : checks) width = std::max(width, c.name.size());
  std::string out;
  for (const auto& c : checks) {
    std::string name = c.name;
    name.append(width - name.size(), ' ');
    out += std::string(c.ok ? "OK  " : "FAIL") + "  " + name + "  " + c.reason + "\n";
    for (const auto& d : c.details) out += std::string(6 + width + 2, ' ') + d + "\n";
  }
  size_t failed = 0;
  for (const auto& c : checks) failed += c.ok ? 0 : 1;
  out += failed ? std::to_string(failed) + (failed == 1 ? " check failed\n" : " checks failed\n")
                : "every check passed\n";
  return out;
}

}  // namespace orchard::ctl
