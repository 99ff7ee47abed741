// Store::lookup (the hit path: shared lock, compact index entry, then the
// record from the record cache or RocksDB, full-key compare) over a store of N objects, N = $ORCHARD_BENCH_INDEX_N (default
// 100000, so the CI smoke run stays short; `make bench` runs it with 1 M).
//
// The store is built once per process in a temp dir through the real
// createObject()/commitObject() path (empty object files), or opened from
// $ORCHARD_BENCH_INDEX_DIR if that names a store already populated with the
// same N by orchard_bench_populate (then Store::open's load time is shown).
//
// Block checksums: Store::ensureVerified() on a hit whose blocks all passed
// already (the per-send cost: one atomic load), and checksumRange() of a
// 1 MiB block in the page cache (the once-per-generation cost of verifying
// a block, and what the scrub pays per block).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "bench/tools/populate.h"
#include "cache/file_util.h"
#include "cache/store.h"

namespace {

using orchard::cache::CacheKey;
using orchard::cache::Store;

struct StoreFixture {
  uint64_t n = 100000;
  std::string dir;
  bool ownsDir = false;
  std::unique_ptr<Store> store;
  std::vector<CacheKey> hitKeys;   // random sample of stored keys
  std::vector<CacheKey> missKeys;  // keys not in the store
  double setupSeconds = 0;
  std::string error;

  StoreFixture() {
    if (const char* e = std::getenv("ORCHARD_BENCH_INDEX_N"); e && *e) n = std::strtoull(e, nullptr, 10);
    auto t0 = std::chrono::steady_clock::now();
    if (const char* d = std::getenv("ORCHARD_BENCH_INDEX_DIR"); d && *d) {
      dir = d;
    } else {
      std::string tmpl = (std::filesystem::temp_directory_path() / "orchard-bench-store.XXXXXX").string();
      if (!::mkdtemp(tmpl.data())) {
        error = "mkdtemp failed";
        return;
      }
      dir = tmpl;
      ownsDir = true;
    }
    auto s = Store::open(orchard::cache::StoreOptions{dir, 0});
    if (!s) {
      error = "Store::open: " + s.error().message();
      return;
    }
    store = std::move(s).value();
    const uint64_t have = store->stats().objects;
    if (have < n && !orchard::bench::populateStore(*store, have, n, &error)) return;
    setupSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "store fixture: %llu objects in %s, ready in %.1f s\n",
                 static_cast<unsigned long long>(store->stats().objects), dir.c_str(), setupSeconds);
    std::mt19937_64 rng(42);
    const size_t sample = static_cast<size_t>(std::min<uint64_t>(n, 1u << 16));
    for (size_t i = 0; i < sample; ++i)
      hitKeys.push_back(CacheKey::fromText(orchard::bench::syntheticKeyText(rng() % n)));
    for (size_t i = 0; i < 1024; ++i)
      missKeys.push_back(CacheKey::fromText(orchard::bench::syntheticKeyText(n + 1 + rng() % (n + 1))));
  }
  ~StoreFixture() {
    store.reset();
    if (ownsDir) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  }
};

StoreFixture& fixture() {
  static StoreFixture f;
  return f;
}

void BM_StoreLookupHit(benchmark::State& state) {
  StoreFixture& f = fixture();
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  const size_t mask = f.hitKeys.size();
  for (auto _ : state) {
    auto m = f.store->lookup(f.hitKeys[i++ % mask]);
    if (!m) {
      state.SkipWithError("expected a hit");
      break;
    }
    benchmark::DoNotOptimize(m.get());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["objects"] = benchmark::Counter(static_cast<double>(f.n), benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_StoreLookupHit)->Threads(1)->Threads(2);

void BM_StoreLookupMiss(benchmark::State& state) {
  StoreFixture& f = fixture();
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  size_t i = 0;
  for (auto _ : state) {
    auto m = f.store->lookup(f.missKeys[i++ & 1023]);
    benchmark::DoNotOptimize(m.get());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["objects"] = benchmark::Counter(static_cast<double>(f.n), benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_StoreLookupMiss);

// Per-lookup latency distribution (each lookup timed on its own with
// steady_clock; includes ~20-40 ns of clock overhead). Reports p50/p99/p999/max
// in microseconds as counters. Arg 0: random keys over the whole store (64 Ki
// of them, far more than the record cache holds: nearly every lookup reads
// its record from RocksDB, the first hit after a restart). Arg 1: 1 Ki hot
// keys (the record cache answers: a repeated hit).
void BM_StoreLookupLatency(benchmark::State& state) {
  StoreFixture& f = fixture();
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  std::vector<double> ns;
  ns.reserve(1 << 20);
  size_t i = 0;
  const size_t mask = state.range(0) == 1 ? std::min<size_t>(1024, f.hitKeys.size()) : f.hitKeys.size();
  for (auto _ : state) {
    const CacheKey& k = f.hitKeys[i++ % mask];
    auto t0 = std::chrono::steady_clock::now();
    auto m = f.store->lookup(k);
    auto t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(m.get());
    if (ns.size() < (1u << 22)) ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  state.SetItemsProcessed(state.iterations());
  if (ns.empty()) return;
  std::sort(ns.begin(), ns.end());
  auto pct = [&](double p) { return ns[std::min(ns.size() - 1, static_cast<size_t>(p * static_cast<double>(ns.size())))] / 1000.0; };
  state.counters["p50_us"] = pct(0.50);
  state.counters["p99_us"] = pct(0.99);
  state.counters["p999_us"] = pct(0.999);
  state.counters["max_us"] = ns.back() / 1000.0;
  state.counters["objects"] = benchmark::Counter(static_cast<double>(f.n), benchmark::Counter::kAvgThreads);
  state.counters["setup_s"] = f.setupSeconds;
}
BENCHMARK(BM_StoreLookupLatency)->Arg(0)->Arg(1);

// One stored object of `size` bytes with checksums, in its own store.
struct VerifyFixture {
  std::string dir;
  std::unique_ptr<Store> store;
  CacheKey key = CacheKey::fromText("http://swcdn.apple.com/bench/verify.pkg");
  std::shared_ptr<const orchard::cache::ObjectMeta> meta;
  int fd = -1;
  std::string error;

  explicit VerifyFixture(uint64_t size) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "orchard-bench-verify.XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      error = "mkdtemp failed";
      return;
    }
    dir = tmpl;
    auto s = Store::open(orchard::cache::StoreOptions{dir, 0});
    if (!s) {
      error = "Store::open: " + s.error().message();
      return;
    }
    store = std::move(s).value();
    auto t = store->createObject(key);
    if (!t) {
      error = "createObject";
      return;
    }
    std::string body(size, 'v');
    const bool written = ::pwrite(t->fd, body.data(), body.size(), 0) == static_cast<ssize_t>(body.size());
    orchard::cache::ObjectMeta m;
    m.key = key.text;
    m.size = size;
    m.gen = t->gen;
    m.blockSize = orchard::cache::kChecksumBlockSize;
    for (uint64_t off = 0; written && off < size; off += m.blockSize) {
      auto sum = orchard::cache::checksumRange(t->fd, off, std::min<uint64_t>(m.blockSize, size - off));
      if (sum) m.sums.push_back(*sum);
    }
    ::close(t->fd);
    if (!written || m.sums.size() != m.blockCount()) {
      error = "write";
      return;
    }
    if (auto r = store->commitObject(key, m); !r) {
      error = "commit: " + r.error().message();
      return;
    }
    meta = store->lookup(key);
    auto o = store->openObject(key, *meta);
    if (!o) {
      error = "openObject";
      return;
    }
    fd = *o;
  }
  ~VerifyFixture() {
    if (fd >= 0) ::close(fd);
    store.reset();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

void BM_StoreEnsureVerifiedHit(benchmark::State& state) {
  static VerifyFixture f(64 << 10);
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  if (!f.store->ensureVerified(f.key, *f.meta, f.fd, 0, f.meta->size)) {
    state.SkipWithError("verification failed");
    return;
  }
  for (auto _ : state) {
    auto r = f.store->ensureVerified(f.key, *f.meta, f.fd, 0, f.meta->size);
    benchmark::DoNotOptimize(r.ok());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StoreEnsureVerifiedHit);

void BM_BlockChecksum1MiB(benchmark::State& state) {
  static VerifyFixture f(1 << 20);
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  for (auto _ : state) {
    auto r = orchard::cache::checksumRange(f.fd, 0, 1 << 20);
    if (!r) {
      state.SkipWithError("checksumRange failed");
      break;
    }
    benchmark::DoNotOptimize(*r);
  }
  state.SetBytesProcessed(state.iterations() * (int64_t{1} << 20));
}
BENCHMARK(BM_BlockChecksum1MiB);

}  // namespace
