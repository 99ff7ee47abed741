// FileStore::keysWhere(): the key texts a purge by host (or of everything)
// removes. The compact index in memory holds no key text (48 bytes per
// object, cache/compact_index.h), so the texts come from a scan of the
// records in RocksDB; each record is decoded only as far as its summary
// (decodeMetaSummary: the key is a view into the value, no allocation for
// the records that do not match). Blocks for the length of the scan: the
// server runs it on the worker pool, never on a loop.
#include "cache/file_store.h"

namespace orchard::cache {

Result<std::vector<std::string>> FileStore::keysWhere(const std::function<bool(std::string_view)>& match) const {
  std::vector<std::string> out;
  auto r = index_.forEach([&](const Hash128&, std::string_view bytes) {
    auto summary = decodeMetaSummary(bytes);
    if (!summary) return;  // a bad record: load() dropped it from memory; nothing to purge
    if (match(summary->key)) out.emplace_back(summary->key);
  });
  if (!r) return r.error();
  return out;
}

}  // namespace orchard::cache
