// FileStore start-up load (see file_store.h, "Memory"): fills the compact
// index from the records' summaries ("cache.summary", cache/index.h), which
// it first builds from the records themselves when the store comes from an
// older release, and drops the records that are bad.
//
// Hard parts: it must be fast (a million summaries in well under half a
// second: no allocation per record, one table sized once from RocksDB's
// estimate and filled in its own order) while judging records as the full
// decode did: a summary marked bad, or one that does not decode, sends the
// store back to the record, which decides; partial records, rare, are read
// and decoded whole (their block maps stay in memory).
#include "cache/file_store.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <optional>

#include "common/log.h"

namespace orchard::cache {

Result<void> FileStore::load() {
  const auto t0 = std::chrono::steady_clock::now();
  if (!index_.hasSummaries() && index_.database().family(kSummaryFamily).valid()) {
    // A store from before summaries (or after a repair): one scan of the
    // records makes them; later starts read only the summaries.
    Result<uint64_t> built = index_.buildSummaries();
    if (!built) return built.error();
    OLOG_INFO("store: wrote the summaries of %llu index records in %.3f s (once, after the upgrade)",
              static_cast<unsigned long long>(*built),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::vector<Hash128> bad;
  std::vector<std::string> badKeys, badSummaryKeys;
  CompactIndex entries;
  std::unordered_map<Hash128, std::shared_ptr<const ObjectMeta>, Hash128Hasher> partial;
  uint64_t maxGen = 0;
  StoreStats stats;
  // One table, sized once for what RocksDB estimates it holds, filled in
  // key order (the table's own order: see compact_index.h). A complete
  // object or stub needs only its summary; partial records, rare, are read
  // and decoded whole.
  const uint64_t estimate = index_.estimatedCount();
  entries.reserve(static_cast<size_t>(estimate));
  auto add = [&](const Hash128& hash, const IndexSummary& sum, std::string_view record) {
    if (!sum.valid) {
      bad.push_back(hash);
      return;
    }
    if (sum.kind != ObjectMeta::Kind::VaryStub) maxGen = std::max(maxGen, sum.gen);
    std::shared_ptr<const ObjectMeta> p;
    if (sum.kind == ObjectMeta::Kind::Partial) {
      std::optional<std::string> read;
      if (record.empty()) {
        Result<std::optional<std::string>> got = index_.get(hash);
        if (got && got->has_value()) read = std::move(**got);
        record = read ? std::string_view(*read) : std::string_view();
      }
      Result<ObjectMeta> meta = decodeMeta(record);
      if (!meta) {
        bad.push_back(hash);
        return;
      }
      stats.partials += 1;
      stats.partialBytes += durableBytes(*meta);
      p = std::make_shared<const ObjectMeta>(std::move(meta).value());
    }
    IndexEntry& e = entries.upsert(hash);
    e.usedAt = sum.usedAt;
    if (p) {
      e.has = IndexEntry::kPartial;
      partial.emplace(hash, std::move(p));
    } else if (sum.kind == ObjectMeta::Kind::Complete) {
      e.has = IndexEntry::kComplete;
      e.gen = sum.gen;
      e.size = sum.size;
      e.flags.store(sum.sums ? IndexEntry::kSums : 0, std::memory_order_relaxed);
      stats.objects += 1;
      stats.bytes += sum.size;
    } else {
      e.has = IndexEntry::kStub;
    }
  };
  Result<void> r = ok();
  if (index_.hasSummaries()) {
    r = index_.forEachSummary(
        [&](const Hash128& hash, const IndexSummary& sum) {
          if (sum.valid) return add(hash, sum, {});
          // A bad record, or a damaged summary of a good one: the record decides.
          Result<std::optional<std::string>> got = index_.get(hash);
          IndexSummary again;
          if (got && got->has_value()) (void)decodeSummary(encodeSummary(hash, **got), &again);
          add(hash, again, got && got->has_value() ? std::string_view(**got) : std::string_view());
        },
        [&](std::string_view key) { badSummaryKeys.emplace_back(key); });
  } else {
    // A database opened without the summary family: the records themselves.
    r = index_.forEach(
        [&](const Hash128& hash, std::string_view bytes) {
          IndexSummary sum;
          (void)decodeSummary(encodeSummary(hash, bytes), &sum);
          add(hash, sum, bytes);
        },
        [&](std::string_view key) { badKeys.emplace_back(key); });
  }
  if (!r) return r;

  if (!bad.empty() || !badKeys.empty() || !badSummaryKeys.empty()) {
    OLOG_WARN("store: dropping %zu undecodable or mismatched index records",
              bad.size() + badKeys.size() + badSummaryKeys.size());
    IndexBatch batch;
    for (const Hash128& h : bad) batch.del(h);
    if (Result<void> w = index_.write(std::move(batch)); !w) return w;
    for (const std::string& k : badKeys) {
      if (Result<void> w = index_.delRaw(k); !w) return w;
    }
    for (const std::string& k : badSummaryKeys) {
      if (Result<void> w = index_.delRawSummary(k); !w) return w;
    }
  }
  // The CPU time too: on a shared box the wall time says more about the neighbours.
  struct timespec cpu;
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
  OLOG_INFO("store: loaded %zu index entries (RocksDB estimated %llu) in %.3f s (thread CPU since exec %.3f s): "
            "%.1f MiB of compact entries",
            entries.size(), static_cast<unsigned long long>(estimate),
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
            static_cast<double>(cpu.tv_sec) + static_cast<double>(cpu.tv_nsec) / 1e9,
            static_cast<double>(entries.memoryBytes()) / (1 << 20));
  uint64_t next = genCounter_.load(std::memory_order_relaxed);
  if (maxGen >= next) genCounter_.store(maxGen + 1, std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  entries_ = std::move(entries);
  partial_ = std::move(partial);
  stats_ = stats;
  return ok();
}

}  // namespace orchard::cache
