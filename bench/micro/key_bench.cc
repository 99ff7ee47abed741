// Cache key normalisation (cache/key.h normaliseKey) and XXH3-128 (hashKey)
// over typical Apple content keys.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "cache/key.h"

namespace {

const std::vector<std::string> kTargets = {
    "/content/downloads/41/62/042-69754-A_UWRGC6VGNS/ysg6hc8w1rdxtmd7lq7kdw1ue2ayzdmph9/InstallAssistant.pkg",
    "/content/downloads/41/62/042-69754-A_UWRGC6VGNS/ysg6hc8w1rdxtmd7lq7kdw1ue2ayzdmph9/"
    "InstallAssistant.pkg?source=swcdn.apple.com&sourceScheme=http",
    "/apple-assets-us-std-000001/Purple126/v4/3c/8a/1f/3c8a1f2e-5b7d-9e0f-1a2b-3c4d5e6f7a8b/"
    "pre-thinned1234567890.thinned.signed.dpkg.ipa?accessKey=1700000000_123456789_abcdef&token=x",
    "/ios17.4/052-53421-20240305-7C1B2D3E-4F5A-6B7C-8D9E-0F1A2B3C4D5E/com_apple_MobileAsset_SoftwareUpdate/"
    "0123456789abcdef0123456789abcdef01234567.zip",
};

void BM_NormaliseKey(benchmark::State& state) {
  const std::vector<std::string> ignore = {"token"};
  size_t i = 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    const std::string& t = kTargets[i++ & 3];
    std::string k = orchard::cache::normaliseKey("http", "SWCDN.apple.com", 80, t, ignore);
    bytes += static_cast<int64_t>(t.size());
    benchmark::DoNotOptimize(k.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_NormaliseKey);

void BM_HashKey(benchmark::State& state) {
  std::vector<std::string> keys;
  for (const auto& t : kTargets) keys.push_back(orchard::cache::normaliseKey("http", "swcdn.apple.com", 80, t, {}));
  size_t i = 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    const std::string& k = keys[i++ & 3];
    orchard::cache::Hash128 h = orchard::cache::hashKey(k);
    bytes += static_cast<int64_t>(k.size());
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_HashKey);

// Both: what a request pays to find its index entry's hash.
void BM_KeyFromTarget(benchmark::State& state) {
  size_t i = 0;
  for (auto _ : state) {
    auto key = orchard::cache::CacheKey::fromText(
        orchard::cache::normaliseKey("http", "swcdn.apple.com", 80, kTargets[i++ & 3], {}));
    benchmark::DoNotOptimize(key.hash);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KeyFromTarget);

}  // namespace
