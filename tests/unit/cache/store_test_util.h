// Helpers shared by the store tests (the conformance suite and the file
// store's own tests): storing a body through the real fill path
// (createObject() + pwrite + commitObject(), with the block checksums a
// fill computes), reading, waiting with a deadline, and damaging a stored
// object through its descriptor (so that it works on any Store).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
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
