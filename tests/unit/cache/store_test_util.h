// Helpers shared by the store tests (the conformance suite and the file
// store's own tests): storing a body through the real fill path
// (createObject() + pwrite + commitObject(), with the block checksums a
// fill computes), reading, waiting with a deadline, and damaging a stored
// object through its descriptor (so that it works on any Store). Below, in
// orchard::cache::store_test, the StoreTest fixture of the file store's own
// tests (store_test.cc, store_eviction_test.cc, store_reconcile_test.cc):
// a real Store in a mkdtemp directory, reopened at will, with helpers to
// store bodies and partial objects and to find and count their files.
#pragma once

#include <fcntl.h>
#include <ftw.h>
#include <cstring>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "cache/file_util.h"
#include "cache/store.h"

namespace orchard::cache::testing {

inline ObjectMeta metaFor(const CacheKey& key, uint64_t size) {
  ObjectMeta m;
  m.key = key.text;
  m.size = size;
  m.headers = {{"Content-Type", "application/octet-stream"}};
  m.etag = "\"v1\"";
  m.responseTime = 1'700'000'000;
  return m;
}

// Stores `body` as the complete object of `key` the way a shared fill does,
// with `meta` (its size set to declaredSize). A failed commit drops the file.
inline Result<void> putObject(Store& store, const CacheKey& key, const std::string& body, ObjectMeta meta,
                              uint64_t declaredSize) {
  Result<ObjectFile> f = store.createObject(key);
  if (!f) return f.error();
  EXPECT_EQ(::pwrite(f->fd, body.data(), body.size(), 0), static_cast<ssize_t>(body.size()));
  meta.size = declaredSize;
  meta.gen = f->gen;
  meta.blockSize = kChecksumBlockSize;
  meta.sums.clear();
  for (uint64_t off = 0; off < body.size(); off += kChecksumBlockSize)
    meta.sums.push_back(blockChecksum(body.data() + off, std::min<uint64_t>(kChecksumBlockSize, body.size() - off)));
  ::close(f->fd);
  Result<void> r = store.commitObject(key, std::move(meta));
  if (!r) store.dropObject(key, f->gen);
  return r;
}

inline std::string readAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

// Polls `done` until it holds or `seconds` pass.
inline bool waitUntil(const std::function<bool()>& done, double seconds = 20) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A body of `size` bytes that differs from block to block.
inline std::string patterned(uint64_t size) {
  std::string body(size, '\0');
  for (uint64_t i = 0; i < size; ++i) body[i] = static_cast<char>((i * 131 + i / 4096) & 0xff);
  return body;
}

// A read-write descriptor of the stored object of `key` (its current
// generation), reopened through /proc from the store's read-only one.
inline int openStoredForWrite(Store& store, const CacheKey& key) {
  auto meta = store.lookup(key);
  if (!meta) return -1;
  Result<int> ro = store.openObject(key, *meta);
  if (!ro) return -1;
  char path[40];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", *ro);
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  ::close(*ro);
  return fd;
}

// Overwrites one byte of the stored object in place (same size, other bytes).
inline void flipStoredByte(Store& store, const CacheKey& key, uint64_t offset) {
  int fd = openStoredForWrite(store, key);
  ASSERT_GE(fd, 0);
  char c;
  ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
  c = static_cast<char>(c ^ 0x40);
  ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}

inline void truncateStored(Store& store, const CacheKey& key, uint64_t size) {
  int fd = openStoredForWrite(store, key);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
  ::close(fd);
}

}  // namespace orchard::cache::testing

namespace orchard::cache::store_test {

using namespace orchard::cache::testing;

inline int removeEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-store-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    reopen();
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) ::nftw(dir_.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS);
  }

  void reopen(uint64_t cacheLimit = 0) {
    store_.reset();
    Result<std::unique_ptr<Store>> s = Store::open(StoreOptions{dir_, cacheLimit});
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(s).value();
  }

  // Stores `body` through the fill path (createObject + pwrite + commitObject).
  Result<void> put(const CacheKey& key, const std::string& body, uint64_t declaredSize) {
    return putObject(*store_, key, body, metaFor(key, declaredSize), declaredSize);
  }
  Result<void> put(const CacheKey& key, const std::string& body) { return put(key, body, body.size()); }

  // The file of the key's current complete object (generation from its record).
  std::string objectPath(const CacheKey& key) const {
    std::string hex = key.hash.hex();
    auto meta = store_ ? store_->lookup(key) : nullptr;
    uint64_t gen = meta ? meta->gen : lastGen_;
    return dir_ + "/objects/" + hex.substr(0, 2) + "/" + hex + "." + std::to_string(gen);
  }
  mutable uint64_t lastGen_ = 0;

  size_t countFiles(const std::string& sub) const {
    static size_t count;
    count = 0;
    ::nftw((dir_ + "/" + sub).c_str(),
           [](const char* path, const struct stat*, int type, struct FTW* ftw) {
             // The store's empty spare files (tmp/spare.N) are not bodies.
             if (type == FTW_F && std::strncmp(path + ftw->base, "spare.", 6) != 0) ++count;
             return 0;
           },
           16, FTW_PHYS);
    return count;
  }

  uint64_t usage() const {
    StoreStats st = store_->stats();
    return st.bytes + st.partialBytes;
  }
  std::string pathOf(const Hash128& h, uint64_t gen) const {
    std::string hex = h.hex();
    return dir_ + "/objects/" + hex.substr(0, 2) + "/" + hex + "." + std::to_string(gen);
  }
  bool exists(const std::string& path) const { return ::access(path.c_str(), F_OK) == 0; }

  // A partial object of `blocks` durable 1 KiB blocks, recorded.
  uint64_t putPartial(const CacheKey& key, unsigned blocks) {
    Result<ObjectFile> f = store_->createObject(key);
    EXPECT_TRUE(f.ok());
    if (!f.ok()) return 0;
    std::string body(blocks * 1024u, 'p');
    EXPECT_EQ(::pwrite(f->fd, body.data(), body.size(), 0), static_cast<ssize_t>(body.size()));
    ::close(f->fd);
    ObjectMeta m = metaFor(key, blocks * 1024u);
    m.kind = ObjectMeta::Kind::Partial;
    m.gen = f->gen;
    m.blockSize = 1024;
    m.blocks.assign((blocks + 7) / 8, '\0');
    for (unsigned b = 0; b < blocks; ++b) m.blocks[b / 8] = static_cast<char>(m.blocks[b / 8] | (1 << (b % 8)));
    EXPECT_TRUE(store_->recordPartial(key, m).ok());
    return f->gen;
  }

  static CacheKey keyN(const std::string& prefix, int i) {
    return CacheKey::fromText("http://swcdn.apple.com/" + prefix + "/" + std::to_string(i) + ".pkg");
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
};

inline const CacheKey kA = CacheKey::fromText("http://swcdn.apple.com/a.pkg");
inline const CacheKey kB = CacheKey::fromText("http://swcdn.apple.com/b.pkg");

}  // namespace orchard::cache::store_test
