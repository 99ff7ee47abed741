// DirLock: see dir_lock.h. An flock on <storage.dir>/lock, taken before the
// store opens: a second daemon on the same directory would interleave
// writes to the same object files and index. flock (not a pid file) is
// released by the kernel when the holder dies, so a crash never blocks a
// restart.
#include "cache/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "cache/file_util.h"

namespace orchard::cache {

DirLock& DirLock::operator=(DirLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

Result<DirLock> DirLock::acquire(const std::string& dir, pid_t* holder) {
  if (holder) *holder = 0;
  if (Result<void> r = makeDirs(dir); !r) return r.error();
  const std::string path = dir + "/" + kFileName;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errnoError(errno, "storage dir lock: open");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    if (e == EWOULDBLOCK && holder) {
      char buf[32] = {};
      ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      if (n > 0) *holder = static_cast<pid_t>(std::strtol(buf, nullptr, 10));
    }
    ::close(fd);
    if (e == EWOULDBLOCK) return Error{Errc::Busy, e, "storage dir lock: held by another process"};
    return errnoError(e, "storage dir lock: flock");
  }
  char buf[32];
  int len = std::snprintf(buf, sizeof buf, "%ld\n", static_cast<long>(::getpid()));
  // The pid is only for messages: a failure to write it does not matter.
  if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, buf, static_cast<size_t>(len), 0);
  return DirLock(fd);
}

}  // namespace orchard::cache
