// Range-header parsing and resolution (cache/range.h), as Apple clients send
// them: one range of a large object, an open-ended resume, a suffix, and a
// small multi-range set.
#include <benchmark/benchmark.h>

#include <string_view>

#include "cache/range.h"

namespace {

constexpr std::string_view kRanges[] = {
    "bytes=500000000-500999999",
    "bytes=1073741824-",
    "bytes=-65536",
    "bytes=0-1023, 4096-8191, 1048576-2097151",
};

void BM_ParseRange(benchmark::State& state) {
  size_t i = 0;
  for (auto _ : state) {
    auto r = orchard::cache::parseRange(kRanges[i++ & 3]);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseRange);

void BM_EvaluateRange(benchmark::State& state) {
  size_t i = 0;
  const uint64_t length = 12ull << 30;  // a 12 GiB installer
  for (auto _ : state) {
    auto r = orchard::cache::evaluateRange(kRanges[i++ & 3], length);
    if (r.outcome != orchard::cache::RangeOutcome::Partial) {
      state.SkipWithError("expected a partial answer");
      break;
    }
    benchmark::DoNotOptimize(r.ranges.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EvaluateRange);

}  // namespace
