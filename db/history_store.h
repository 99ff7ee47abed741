// HistoryStore: the per-minute traffic history (common/history.h) in the
// box's database, column family "history" (historyFamilies(), opened with
// the others by the Server). One record per wall-clock minute; the sampler
// (server/admin/history.h) is its only writer, GET /api/v1/history reads
// it on the worker pool. Every call may block on disk: never on a loop.
// Thread safety: any thread (the database is synchronised); the sampler
// keeps writes to one thread so a minute's read-modify-write is not raced.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/history.h"
#include "common/result.h"
#include "db/database.h"

namespace orchard::db {

inline constexpr const char* kHistoryFamily = "history";
// The families HistoryStore needs, for Database::open.
std::vector<std::string> historyFamilies();

class HistoryStore {
 public:
  // `database` must have been opened with historyFamilies().
  explicit HistoryStore(std::shared_ptr<Database> database);

  // Writes minute `minute`'s record (replacing one there).
  Result<void> put(int64_t minute, const history::Sample& sample);
  // The record of minute `minute`, or nullopt (none, or unreadable).
  Result<std::optional<history::Sample>> get(int64_t minute) const;
  // Minutes in [fromMinute, toMinute], in order; unreadable records skipped.
  Result<std::vector<history::MinuteSample>> range(int64_t fromMinute, int64_t toMinute) const;
  // Deletes every minute before `minute` (retention).
  Result<void> dropBefore(int64_t minute);

 private:
  std::shared_ptr<Database> database_;
  Family family_;
};

}  // namespace orchard::db
