// sd_notify's wire protocol; see sd_notify.h.
#include "server/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace orchard::server::sdnotify {

bool send(std::string_view state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return false;
  const size_t len = std::strlen(path);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';  // the abstract namespace
  const socklen_t alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t n;
  do n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), alen);
  while (n < 0 && errno == EINTR);
  ::close(fd);
  return n == static_cast<ssize_t>(state.size());
}

int64_t watchdogUsec() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (!usec || !*usec) return 0;
  if (const char* pid = std::getenv("WATCHDOG_PID"); pid && *pid && std::strtoll(pid, nullptr, 10) != ::getpid())
    return 0;
  char* end = nullptr;
  const long long v = std::strtoll(usec, &end, 10);
  return end && *end == '\0' && v > 0 ? v : 0;
}

std::string monotonicUsec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return "MONOTONIC_USEC=" +
         std::to_string(static_cast<int64_t>(ts.tv_sec) * 1'000'000 + static_cast<int64_t>(ts.tv_nsec) / 1000);
}

}  // namespace orchard::server::sdnotify
