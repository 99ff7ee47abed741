// Pure caching decisions (cache/policy.h): Cache-Control parsing and the
// store decision. Range-header parsing and the freshness decision are not in
// the code base yet; their benchmarks come with them.
#include <benchmark/benchmark.h>

#include <string_view>

#include "cache/policy.h"

namespace {

constexpr std::string_view kCacheControls[] = {
    "max-age=31536000, public",
    "public, max-age=86400, s-maxage=604800, must-revalidate",
    "no-cache, no-store, private",
    "max-age=\"3600\", immutable, stale-while-revalidate=60, community=\"UCI\"",
};

void BM_ParseCacheControl(benchmark::State& state) {
  size_t i = 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    std::string_view v = kCacheControls[i++ & 3];
    orchard::cache::CacheControl cc = orchard::cache::parseCacheControl(v);
    bytes += static_cast<int64_t>(v.size());
    benchmark::DoNotOptimize(cc);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_ParseCacheControl);

void BM_DecideStore(benchmark::State& state) {
  orchard::cache::StoreInput inputs[4];
  for (int k = 0; k < 4; ++k) {
    inputs[k].method = "GET";
    inputs[k].status = k == 3 ? 206 : 200;
    inputs[k].requestCacheControl = k == 1 ? "no-cache" : "";
    inputs[k].responseCacheControl = kCacheControls[k];
    inputs[k].requestHasAuthorization = k == 2;
    inputs[k].lengthKnown = true;
  }
  size_t i = 0;
  for (auto _ : state) {
    orchard::cache::StoreVerdict v = orchard::cache::decideStore(inputs[i++ & 3]);
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecideStore);

}  // namespace
