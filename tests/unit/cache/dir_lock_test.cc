// Tests for cache/dir_lock: one holder per storage dir, the holder's pid in
// the file for the one refused, released with the object.
#include "cache/dir_lock.h"

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

namespace orchard::cache {
namespace {

int removeEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

class DirLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-dirlock-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { ::nftw(dir_.c_str(), removeEntry, 8, FTW_DEPTH | FTW_PHYS); }
  std::string dir_;
};

TEST_F(DirLockTest, SecondHolderIsRefusedAndToldWhoHoldsIt) {
  auto first = DirLock::acquire(dir_ + "/store");  // created when missing
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_TRUE(first->held());
  pid_t holder = -1;
  auto second = DirLock::acquire(dir_ + "/store", &holder);
  ASSERT_FALSE(second.ok()) << "a second holder, even in the same process, must be refused";
  EXPECT_EQ(second.error().code, Errc::Busy);
  EXPECT_EQ(holder, ::getpid());
}

TEST_F(DirLockTest, ReleasedWithTheObjectAndMovable) {
  {
    auto a = DirLock::acquire(dir_);
    ASSERT_TRUE(a.ok());
    DirLock moved = std::move(a.value());
    EXPECT_TRUE(moved.held());
    EXPECT_FALSE(DirLock::acquire(dir_).ok());
  }
  auto again = DirLock::acquire(dir_);
  EXPECT_TRUE(again.ok()) << "the lock goes with its descriptor";
  struct stat st;
  EXPECT_EQ(::stat((dir_ + "/" + DirLock::kFileName).c_str(), &st), 0) << "the file stays";
}

}  // namespace
}  // namespace orchard::cache
