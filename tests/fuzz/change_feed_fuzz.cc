// Fuzz target: catalog/change_feed's parseChangePage, the hub's answer a
// branch parses (GET /api/v1/catalog/changes), and the record fields a
// branch reads from each version op (recordBytes).
//
// Input: the page body as a hub would send it; `since` is taken from the
// input's length so both sides of the ordering check are reached.
//
// Invariants beyond "no crash" (and no exception escaping):
//   - an accepted page has at most kMaxChangesPerPage changes, strictly
//     increasing seqs past `since` and none past `last`; every op is of a
//     replicated family, has a key of 1..kMaxKeyBytes bytes, and a value
//     of at most kMaxValueBytes when it is a put;
//   - each change written back (changeText) parses to the same change;
//   - recordBytes of a put's value, when it accepts it, gives a 64-digit
//     lower-case SHA-256.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "catalog/change_feed.h"
#include "tests/fuzz/fuzz_util.h"

using namespace orchard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body = fuzz::asView(data, size);
  const uint64_t since = size % 3;
  auto r = catalog::parseChangePage(body, since);
  if (std::holds_alternative<std::string>(r)) return 0;
  const auto& page = std::get<catalog::ChangePage>(r);
  FUZZ_CHECK(page.changes.size() <= catalog::kMaxChangesPerPage, "%zu changes", page.changes.size());
  uint64_t prev = since;
  for (const auto& c : page.changes) {
    FUZZ_CHECK(c.seq > prev && c.seq <= page.last, "seq %llu after %llu, last %llu",
               static_cast<unsigned long long>(c.seq), static_cast<unsigned long long>(prev),
               static_cast<unsigned long long>(page.last));
    prev = c.seq;
    for (const auto& op : c.ops) {
      FUZZ_CHECK(catalog::isReplicatedFamily(op.family), "family %s", fuzz::escape(op.family).c_str());
      FUZZ_CHECK(!op.key.empty() && op.key.size() <= catalog::kMaxKeyBytes, "key of %zu bytes", op.key.size());
      FUZZ_CHECK(!op.value || op.value->size() <= catalog::kMaxValueBytes, "value of %zu bytes", op.value->size());
      if (op.value)
        if (auto rb = catalog::recordBytes(*op.value))
          FUZZ_CHECK(rb->sha256.size() == 64, "sha256 %s", fuzz::escape(rb->sha256).c_str());
    }
    auto back = catalog::changeFromJson(nlohmann::json::parse(catalog::changeText(c)));
    FUZZ_CHECK(std::holds_alternative<catalog::Change>(back) && std::get<catalog::Change>(back) == c,
               "change %llu does not round-trip", static_cast<unsigned long long>(c.seq));
  }
  return 0;
}
