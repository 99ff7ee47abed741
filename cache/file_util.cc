// file_util: POSIX helpers for the store (errno translation, mkdir -p,
// emptying a directory). Blocking calls: run off the event loops.
#include "cache/file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace orchard::cache {

Error errnoError(int err, const char* context) noexcept {
  Errc code = Errc::Io;
  switch (err) {
    case ENOENT: code = Errc::NotFound; break;
    case ENOSPC:
    case EDQUOT: code = Errc::NoSpace; break;
    case EEXIST: code = Errc::Exists; break;
    default: break;
  }
  return Error{code, err, context};
}

Result<void> makeDirs(const std::string& path) {
  if (path.empty()) return Error{Errc::Invalid, 0, "mkdir: empty path"};
  std::string partial;
  partial.reserve(path.size());
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    partial.assign(path, 0, slash);
    pos = slash + 1;
    if (partial.empty() || partial.back() == '/') continue;  // leading or doubled '/'
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) return errnoError(errno, "mkdir");
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return errnoError(errno, "mkdir: stat");
  if (!S_ISDIR(st.st_mode)) return Error{Errc::Exists, ENOTDIR, "mkdir: not a directory"};
  return ok();
}

namespace {

// Empties the directory open as `dirFd` (consumed). Counts removed entries.
Result<void> clearAt(int dirFd, uint64_t* removed) {
  DIR* d = ::fdopendir(dirFd);
  if (d == nullptr) {
    int err = errno;
    ::close(dirFd);
    return errnoError(err, "clear dir: fdopendir");
  }
  Result<void> result;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    if (::unlinkat(dirFd, e->d_name, 0) == 0) {
      ++*removed;
      continue;
    }
    if (errno == ENOENT) continue;
    if (errno != EISDIR && errno != EPERM) {
      result = errnoError(errno, "clear dir: unlink");
      continue;
    }
    int sub = ::openat(dirFd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (sub < 0) {
      result = errnoError(errno, "clear dir: open subdir");
      continue;
    }
    Result<void> r = clearAt(sub, removed);
    if (!r) result = r;
    if (::unlinkat(dirFd, e->d_name, AT_REMOVEDIR) == 0) {
      ++*removed;
    } else if (errno != ENOENT) {
      result = errnoError(errno, "clear dir: rmdir");
    }
  }
  ::closedir(d);  // also closes dirFd
  return result;
}

}  // namespace

Result<uint64_t> clearDir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errnoError(errno, "clear dir: open");
  uint64_t removed = 0;
  Result<void> r = clearAt(fd, &removed);
  if (!r) return r.error();
  return removed;
}

}  // namespace orchard::cache
