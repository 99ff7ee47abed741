// Shared by the store micro benchmark and orchard_bench_populate: the
// deterministic key set of a synthetic store, and the code that fills a
// Store with N empty objects through the real fill path (createObject(),
// then commitObject()).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include <unistd.h>

#include "cache/key.h"
#include "cache/object_meta.h"
#include "cache/store.h"

namespace orchard::bench {

// Key text of synthetic object i: shaped like swcdn.apple.com content URLs.
inline std::string syntheticKeyText(uint64_t i) {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "http://swcdn.apple.com/content/downloads/%02u/%02u/%03u-%05u-A_%010llu/"
                "x%016llx/InstallAssistant.pkg",
                static_cast<unsigned>(i % 97), static_cast<unsigned>((i / 97) % 89), static_cast<unsigned>(i % 1000),
                static_cast<unsigned>(i % 100000), static_cast<unsigned long long>(i),
                static_cast<unsigned long long>(i * 0x9E3779B97F4A7C15ull));
  return buf;
}

inline cache::ObjectMeta syntheticMeta(const std::string& key) {
  cache::ObjectMeta m;
  m.key = key;
  m.status = 200;
  m.reason = "OK";
  m.size = 0;
  m.headers = {{"Content-Type", "application/octet-stream"},
               {"ETag", "\"5f3c1b2a-2f5e1c0\""},
               {"Last-Modified", "Tue, 05 Mar 2024 18:22:11 GMT"},
               {"Cache-Control", "max-age=31536000, public"},
               {"Date", "Wed, 06 Mar 2024 10:00:00 GMT"}};
  m.etag = "\"5f3c1b2a-2f5e1c0\"";
  m.lastModified = "Tue, 05 Mar 2024 18:22:11 GMT";
  m.requestTime = 1709719200;
  m.responseTime = 1709719200;
  m.lastAccess = 1709719200;
  return m;
}

// Commits objects [from, to) (empty files). Returns false with a message on error.
inline bool populateStore(cache::Store& store, uint64_t from, uint64_t to, std::string* err) {
  for (uint64_t i = from; i < to; ++i) {
    cache::CacheKey key = cache::CacheKey::fromText(syntheticKeyText(i));
    auto file = store.createObject(key);
    if (!file) {
      *err = "createObject: " + file.error().message();
      return false;
    }
    ::close(file->fd);
    cache::ObjectMeta meta = syntheticMeta(key.text);
    meta.gen = file->gen;
    auto r = store.commitObject(key, std::move(meta));
    if (!r) {
      *err = "commit: " + r.error().message();
      return false;
    }
  }
  return true;
}

}  // namespace orchard::bench
