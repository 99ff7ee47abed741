// The fixture and helpers shared by the Fill / FillTable tests
// (fill_test.cc, fill_table_test.cc, fill_relay_test.cc,
// fill_checksum_test.cc): FillTest opens a real Store in a mkdtemp
// directory (removed afterwards) and can read back what it stored and count
// the body files on disk; headFor() is a typical cacheable head, preadAt()
// and readAll() (from store_test_util.h) read a fill's descriptor the way a
// reader does. Everything lives in orchard::cache::fill_test so that every
// test file shares one FillTest fixture class (gtest requires that of one
// test suite).
#pragma once

#include <ftw.h>
#include <cstring>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>

#include "cache/fill.h"
#include "common/clock.h"
#include "common/executor.h"
#include "tests/unit/cache/store_test_util.h"

namespace orchard::cache::fill_test {

using State = Fill::State;

inline int removeEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

inline size_t gFileCount;  // nftw has no user pointer
// Counts body files; the store's empty spare files (tmp/spare.N) are not bodies.
inline int countFile(const char* path, const struct stat*, int type, struct FTW* ftw) {
  if (type == FTW_F && std::strncmp(path + ftw->base, "spare.", 6) != 0) ++gFileCount;
  return 0;
}

inline const CacheKey kA = CacheKey::fromText("http://swcdn.apple.com/a.pkg");
inline const CacheKey kB = CacheKey::fromText("http://swcdn.apple.com/b.pkg");

inline ObjectMeta headFor(const CacheKey& key) {
  ObjectMeta m;
  m.key = key.text;
  m.status = 200;
  m.reason = "OK";
  m.headers = {{"Content-Type", "application/octet-stream"}, {"ETag", "\"v1\""}};
  m.etag = "\"v1\"";
  m.requestTime = 1'700'000'000;
  m.responseTime = 1'700'000'001;
  return m;
}

// Reads [off, off + n) from a fill's descriptor the way a reader does.
inline std::string preadAt(int fd, uint64_t off, size_t n) {
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, out.data() + done, n - done, static_cast<off_t>(off + done));
    if (r <= 0) break;
    done += static_cast<size_t>(r);
  }
  out.resize(done);
  return out;
}

using orchard::cache::testing::readAll;  // reads a descriptor to its end

inline Result<void> append(Fill& f, std::string_view s) { return f.append(s.data(), s.size()); }

class FillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-fill-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Result<std::unique_ptr<Store>> s = Store::open(StoreOptions{dir_, 0});
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(s).value();
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) ::nftw(dir_.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS);
  }

  std::shared_ptr<Fill> newFill(const CacheKey& key = kA) { return std::make_shared<Fill>(key, store_.get(), true); }

  // The stored object's bytes, through the store's own read path.
  std::string storedBytes(const CacheKey& key) {
    auto meta = store_->lookup(key);
    if (!meta) return "<absent>";
    Result<int> fd = store_->openObject(key, *meta);
    if (!fd) return "<" + fd.error().message() + ">";
    std::string out = readAll(*fd);
    ::close(*fd);
    return out;
  }

  // Body files (complete objects and fills in progress) anywhere in the store.
  size_t bodyFiles() const {
    gFileCount = 0;
    ::nftw((dir_ + "/objects").c_str(), countFile, 16, FTW_PHYS);
    ::nftw((dir_ + "/tmp").c_str(), countFile, 16, FTW_PHYS);
    return gFileCount;
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace orchard::cache::fill_test
