// Tests for server/proxy/open_file_cache: generations never mix, the least
// recently used idle entry goes when full, and drop() (the store unlinked the
// file) closes an idle descriptor at once and a busy one at its last release.
#include "server/proxy/open_file_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace orchard::server {
namespace {

int openNull() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }
bool isOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

const cache::Hash128 kH{1, 2};
const cache::Hash128 kOther{3, 4};

TEST(OpenFileCache, GenerationsNeverMix) {
  OpenFileCache c;
  const int fd = openNull();
  ASSERT_EQ(c.insert(kH, 7, fd), fd);
  c.release(kH, 7);
  EXPECT_EQ(c.acquire(kH, 8), -1);
  EXPECT_EQ(c.acquire(kH, 7), fd);
  c.release(kH, 7);
}

TEST(OpenFileCache, DropClosesAnIdleDescriptorAtOnce) {
  OpenFileCache c;
  const int fd = openNull();
  ASSERT_EQ(c.insert(kH, 7, fd), fd);
  c.release(kH, 7);
  c.drop(kH, 8);  // another generation: nothing happens
  EXPECT_EQ(c.size(), 1u);
  c.drop(kH, 7);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_FALSE(isOpen(fd));
  EXPECT_EQ(c.acquire(kH, 7), -1);
}

TEST(OpenFileCache, DropOfADescriptorInUseClosesItAtTheLastRelease) {
  OpenFileCache c;
  const int fd = openNull();
  ASSERT_EQ(c.insert(kH, 7, fd), fd);  // user 1
  ASSERT_EQ(c.acquire(kH, 7), fd);     // user 2
  c.drop(kH, 7);
  EXPECT_EQ(c.acquire(kH, 7), -1) << "an unlinked file is not handed out again";
  c.release(kH, 7);
  EXPECT_TRUE(isOpen(fd));
  c.release(kH, 7);
  EXPECT_FALSE(isOpen(fd));
  EXPECT_EQ(c.size(), 0u);
  // The slot takes a new generation afterwards.
  const int fd2 = openNull();
  ASSERT_EQ(c.insert(kH, 8, fd2), fd2);
  c.release(kH, 8);
  EXPECT_EQ(c.acquire(kH, 8), fd2);
  c.release(kH, 8);
}

TEST(OpenFileCache, DropLeavesOtherObjectsAlone) {
  OpenFileCache c;
  const int a = openNull(), b = openNull();
  ASSERT_EQ(c.insert(kH, 1, a), a);
  ASSERT_EQ(c.insert(kOther, 1, b), b);
  c.release(kH, 1);
  c.release(kOther, 1);
  c.drop(kH, 1);
  EXPECT_TRUE(isOpen(b));
  EXPECT_EQ(c.acquire(kOther, 1), b);
  c.release(kOther, 1);
}

}  // namespace
}  // namespace orchard::server
