// DirLock: one process per storage dir.
//
// Two daemons on one store would each believe they own its files: the
// second one's start-up clears tmp/ under the first, its reconciliation
// removes files the first is filling, and both evict. acquire() takes
// flock(LOCK_EX | LOCK_NB) on <dir>/lock and holds it for as long as the
// DirLock lives (the daemon's lifetime). The kernel drops the lock with the
// descriptor, so a daemon killed with -9 never leaves a stale lock behind;
// the file itself stays (unlinking it would let two processes each lock a
// different inode). The holder writes its pid into the file so that the one
// refused can say who holds it.
//
// flock locks belong to the open file description: a second acquire() in
// the same process is refused too. Thread safety: none needed (start-up).
#pragma once

#include <string>
#include <sys/types.h>

#include "common/result.h"

namespace orchard::cache {

class DirLock {
 public:
  DirLock() = default;
  DirLock(DirLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  DirLock& operator=(DirLock&& o) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();

  static constexpr const char* kFileName = "lock";

  // Creates `dir` if needed and locks <dir>/lock. Busy (errno EWOULDBLOCK)
  // when another holder has it; then *holder is the pid written in the file
  // (0 when unknown). Other failures are Io with the errno.
  static Result<DirLock> acquire(const std::string& dir, pid_t* holder = nullptr);

  bool held() const { return fd_ >= 0; }

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace orchard::cache
