#include "db/history_store.h"

#include <cassert>

namespace orchard::db {

std::vector<std::string> historyFamilies() { return {kHistoryFamily}; }

HistoryStore::HistoryStore(std::shared_ptr<Database> database)
    : database_(std::move(database)), family_(database_->family(kHistoryFamily)) {
  assert(family_.valid());
}

Result<void> HistoryStore::put(int64_t minute, const history::Sample& sample) {
  return database_->put(family_, history::encodeKey(minute), history::encodeValue(sample));
}

Result<std::optional<history::Sample>> HistoryStore::get(int64_t minute) const {
  auto v = database_->get(family_, history::encodeKey(minute));
  if (!v) return v.error();
  if (!v.value()) return std::optional<history::Sample>();
  return history::decodeValue(*v.value());
}

Result<std::vector<history::MinuteSample>> HistoryStore::range(int64_t fromMinute, int64_t toMinute) const {
  std::vector<history::MinuteSample> out;
  if (fromMinute < 0) fromMinute = 0;  // keys are unsigned: no minute before 1970
  if (fromMinute > toMinute) return out;
  auto r = database_->scanFrom(family_, history::encodeKey(fromMinute), [&](std::string_view k, std::string_view v) {
    auto minute = history::decodeKey(k);
    if (!minute) return true;
    if (*minute > toMinute) return false;
    if (auto s = history::decodeValue(v)) out.push_back({*minute, *s});
    return true;
  });
  if (!r) return r.error();
  return out;
}

Result<void> HistoryStore::dropBefore(int64_t minute) {
  return database_->deleteRange(family_, history::encodeKey(0), history::encodeKey(minute));
}

}  // namespace orchard::db
