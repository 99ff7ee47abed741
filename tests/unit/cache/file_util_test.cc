// Tests for cache/file_util's checksumRange: the same sum whichever way the
// bytes are read, Corrupt for a short file, and the scrub's spareCache mode
// leaving the page cache as it found it (pages it had to read from disk are
// dropped again; pages that were cached stay).
#include "cache/file_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace orchard::cache {
namespace {

class ChecksumRangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-fileutil-XXXXXX";
    fd_ = ::mkstemp(tmpl);
    ASSERT_GE(fd_, 0);
    path_ = tmpl;
    body_.resize(kSize);
    for (size_t i = 0; i < kSize; ++i) body_[i] = static_cast<char>((i * 131 + i / 4096) & 0xff);
    ASSERT_EQ(::pwrite(fd_, body_.data(), kSize, 0), static_cast<ssize_t>(kSize));
    ASSERT_EQ(::fdatasync(fd_), 0);
  }
  void TearDown() override {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  // Pages of the file in the page cache now.
  size_t residentPages() {
    void* m = ::mmap(nullptr, kSize, PROT_READ, MAP_SHARED, fd_, 0);
    if (m == MAP_FAILED) return 0;
    std::vector<unsigned char> vec(kSize / 4096);
    size_t n = 0;
    if (::mincore(m, kSize, vec.data()) == 0)
      for (unsigned char v : vec) n += v & 1;
    ::munmap(m, kSize);
    return n;
  }

  static constexpr size_t kSize = 4u << 20;
  int fd_ = -1;
  std::string path_;
  std::string body_;
};

TEST_F(ChecksumRangeTest, SameSumWhicheverWayItIsRead) {
  const uint64_t want = XXH3_64bits(body_.data() + 1000, 3u << 20);
  EXPECT_EQ(checksumRange(fd_, 1000, 3u << 20).value(), want);
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
  EXPECT_EQ(checksumRange(fd_, 1000, 3u << 20, true).value(), want);
  EXPECT_EQ(checksumRange(fd_, 1000, 3u << 20, true).value(), want);  // partly cached or not: the same
}

TEST_F(ChecksumRangeTest, ShortFileIsCorrupt) {
  auto r = checksumRange(fd_, kSize - 10, 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Corrupt);
  auto s = checksumRange(fd_, kSize - 10, 20, true);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::Corrupt);
}

TEST_F(ChecksumRangeTest, SpareCacheDropsWhatItReadAndKeepsWhatWasThere) {
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
  if (residentPages() > kSize / 4096 / 8) GTEST_SKIP() << "this file system keeps pages despite DONTNEED";
  // The claim is relative: a scrub leaves no more of the file cached than
  // was cached before it. On a loaded machine DONTNEED is best effort (a
  // page still in another CPU's LRU batch or under writeback stays), and
  // pages that stayed are "someone's" to the scrub, so each try measures
  // its own starting point; it must hold, from a mostly cold start, in one
  // of five tries.
  const size_t pages = kSize / 4096;
  size_t before = pages, left = pages;
  bool held = false;
  for (int attempt = 0; attempt < 5 && !held; ++attempt) {
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
    before = residentPages();
    if (before > pages / 2) continue;
    ASSERT_TRUE(checksumRange(fd_, 0, kSize, true).ok());
    left = residentPages();
    held = left <= before + pages / 64;
  }
  EXPECT_TRUE(held) << "a scrub read must not leave cold pages cached: " << before << " pages cached before, "
                    << left << " after, of " << pages;
  // Pages that were cached (a hot object) stay cached.
  ASSERT_TRUE(checksumRange(fd_, 0, kSize).ok());
  const size_t hot = residentPages();
  ASSERT_GT(hot, kSize / 4096 / 2);
  ASSERT_TRUE(checksumRange(fd_, 0, kSize, true).ok());
  EXPECT_GE(residentPages(), hot - 8);
}

}  // namespace
}  // namespace orchard::cache
