// orchard_bench_populate DIR N: fills the store at DIR (storage.dir layout)
// with N synthetic empty objects through Store::createObject()/commitObject(),
// the path fills take. Objects already there (from an earlier run) are kept, so
// re-running with the same N is quick. Used by bench/e2e for the index-scale
// scenario (orchardd start-up and lookup latency with 1 M objects).
//
// orchard_bench_populate DIR N --records-only: writes N synthetic records
// (with their summaries) straight into DIR/index, no object files: the 10 M
// index start-up measurement (issue 9). A store opened on it would drop the
// records in its reconciliation (no files): measure, then kill it.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/tools/populate.h"
#include "cache/index.h"
#include "cache/store.h"

namespace {

int recordsOnly(const std::string& dir, uint64_t n) {
  auto t0 = std::chrono::steady_clock::now();
  auto database = orchard::cache::openStoreDatabase(dir);
  if (!database) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(), database.error().message().c_str());
    return 1;
  }
  orchard::cache::Index index(*database);
  if (!index.hasSummaries() && !index.buildSummaries()) return 1;
  uint64_t gen = 1;
  for (uint64_t from = 0; from < n; from += 10000) {
    orchard::cache::IndexBatch batch;
    for (uint64_t i = from; i < std::min(n, from + 10000); ++i) {
      orchard::cache::CacheKey key = orchard::cache::CacheKey::fromText(orchard::bench::syntheticKeyText(i));
      orchard::cache::ObjectMeta meta = orchard::bench::syntheticMeta(key.text);
      meta.gen = gen++;
      batch.put(key.hash, orchard::cache::encodeMeta(meta));
    }
    if (auto r = index.write(std::move(batch)); !r) {
      std::fprintf(stderr, "write: %s\n", r.error().message().c_str());
      return 1;
    }
    if (from % 500000 == 0) std::fprintf(stderr, "\r  %llu / %llu records", static_cast<unsigned long long>(from), static_cast<unsigned long long>(n));
  }
  std::fprintf(stderr, "\n");
  std::printf("{\"records\": %llu, \"total_s\": %.3f}\n", static_cast<unsigned long long>(n),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && !(argc == 4 && std::string(argv[3]) == "--records-only")) {
    std::fprintf(stderr, "usage: %s STORAGE_DIR N [--records-only]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const uint64_t n = std::strtoull(argv[2], nullptr, 10);
  if (argc == 4) return recordsOnly(dir, n);
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
