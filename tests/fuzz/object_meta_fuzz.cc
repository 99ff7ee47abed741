// Fuzz target: cache/object_meta decodeMeta, the one parser of bytes read
// back from RocksDB (a damaged disk, a downgraded binary).
//
// Invariants beyond "no crash, no sanitizer report":
//   - a record that decodes re-encodes to a record that decodes to the same
//     ObjectMeta, and that encoding is a fixed point (encode∘decode∘encode);
//   - the canonical encoding is never longer than the bytes it came from
//     (varints are minimal there; the input may use padded ones);
//   - a Partial record's bitmap covers exactly ceil(size / blockSize) blocks;
//   - checksums (version 3), when present, cover every block (sums.size()
//     == blockCount()), and a record without them encodes as version 2;
//   - everything the server does next with a decoded record works on it:
//     header lookups, Vary, freshness, age and the cached decision (a bad
//     record must fail here, at decode, not as undefined behaviour later).
// Seeds: corpus/object_meta/*.bin, written by gen_object_meta_seeds.py.
#include <cstdint>
#include <cstring>

#include "cache/object_meta.h"
#include "cache/policy.h"
#include "tests/fuzz/fuzz_util.h"

using orchard::cache::ObjectMeta;

namespace {

bool sameMeta(const ObjectMeta& a, const ObjectMeta& b) {
  return a.kind == b.kind && a.gen == b.gen && a.blockSize == b.blockSize && a.blocks == b.blocks &&
         a.vary == b.vary && a.key == b.key && a.status == b.status && a.reason == b.reason && a.size == b.size &&
         a.headers == b.headers && a.etag == b.etag && a.lastModified == b.lastModified &&
         a.requestTime == b.requestTime && a.responseTime == b.responseTime && a.lastAccess == b.lastAccess &&
         a.sums == b.sums;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace orchard;
  std::string_view in = fuzz::asView(data, size);
  auto decoded = cache::decodeMeta(in);
  if (!decoded.ok()) {
    FUZZ_CHECK(decoded.error().code == Errc::Corrupt, "a failed decode must be Errc::Corrupt");
    return 0;
  }
  const ObjectMeta& m = *decoded;

  std::string enc = cache::encodeMeta(m);
  FUZZ_CHECK(enc.size() <= size, "canonical encoding (%zu bytes) longer than its source (%zu bytes)", enc.size(), size);
  auto again = cache::decodeMeta(enc);
  FUZZ_CHECK(again.ok(), "encodeMeta() of a decoded record does not decode");
  FUZZ_CHECK(sameMeta(m, *again), "decode(encode(m)) != m");
  FUZZ_CHECK(cache::encodeMeta(*again) == enc, "encode(decode(encode(m))) != encode(m)");

  FUZZ_CHECK(m.sums.empty() || m.sums.size() == m.blockCount(), "%zu checksums for %llu blocks", m.sums.size(),
             static_cast<unsigned long long>(m.blockCount()));
  FUZZ_CHECK(static_cast<uint8_t>(enc[0]) == (m.sums.empty() ? 2 : 3), "version byte %u", static_cast<uint8_t>(enc[0]));
  if (m.kind == ObjectMeta::Kind::Partial) {
    FUZZ_CHECK(m.blockSize > 0, "Partial record with blockSize 0");
    uint64_t nblocks = m.size / m.blockSize + (m.size % m.blockSize ? 1 : 0);
    FUZZ_CHECK(m.blocks.size() == (nblocks + 7) / 8, "Partial bitmap size %zu for %llu blocks", m.blocks.size(),
               static_cast<unsigned long long>(nblocks));
  }

  // What Transaction does with a looked-up record.
  (void)m.header("Date");
  (void)m.header("cache-control");
  std::vector<std::string> vary = cache::varyFields(m.headers);
  (void)cache::variantKeyText(m.key, vary, m.headers);
  cache::FreshnessConfig cfg;
  bool heuristic = false;
  int64_t lifetime = cache::freshnessLifetime(m, cfg, &heuristic);
  FUZZ_CHECK(lifetime >= 0, "negative freshness lifetime %lld", static_cast<long long>(lifetime));
  const int64_t now = 1'700'000'000;
  (void)cache::currentAge(m, now);
  (void)cache::decideCached(m, "", false, now, cfg);
  (void)cache::decideCached(m, "max-stale, stale-if-error=60", false, now, cfg);
  cache::HeaderList conditional{{"If-None-Match", "\"x\", W/\"y\""}, {"If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"}};
  (void)cache::notModified(conditional, m);
  return 0;
}
