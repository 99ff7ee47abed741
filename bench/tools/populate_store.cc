// orchard_bench_populate DIR N: fills the store at DIR (storage.dir layout)
// with N synthetic empty objects through Store::createObject()/commitObject(),
// the path fills take. Objects already there (from an earlier run) are kept, so
// re-running with the same N is quick. Used by bench/e2e for the index-scale
// scenario (orchardd start-up and lookup latency with 1 M objects).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/tools/populate.h"
#include "cache/store.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s STORAGE_DIR N\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const uint64_t n = std::strtoull(argv[2], nullptr, 10);
  auto t0 = std::chrono::steady_clock::now();
  auto s = orchard::cache::Store::open(orchard::cache::StoreOptions{dir, 0});
  if (!s) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(), s.error().message().c_str());
    return 1;
  }
  auto store = std::move(s).value();
  uint64_t have = store->stats().objects;
  double openS = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string err;
  const uint64_t step = 50000;
  for (uint64_t from = have; from < n; from += step) {
    uint64_t to = std::min(n, from + step);
    if (!orchard::bench::populateStore(*store, from, to, &err)) {
      std::fprintf(stderr, "populate: %s\n", err.c_str());
      return 1;
    }
    std::fprintf(stderr, "\r  %llu / %llu objects", static_cast<unsigned long long>(to), static_cast<unsigned long long>(n));
  }
  double totalS = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "\n");
  std::printf("{\"objects\": %llu, \"had\": %llu, \"open_s\": %.3f, \"total_s\": %.3f}\n",
              static_cast<unsigned long long>(store->stats().objects), static_cast<unsigned long long>(have), openS,
              totalS);
  return 0;
}
