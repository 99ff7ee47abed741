// OsFeedStore: the last good copy of Apple's OS-version feed
// (os_versions.h) in the box's database, so that a restart serves it at
// once and a feed Apple breaks later never replaces it. One column family,
// "apple.feed" (osFeedFamilies(), opened with the others by the Server):
//   "raw"   the feed's JSON text, verbatim as fetched
//   "meta"  {"fetched_at": Unix seconds, "source": the URL it came from}
// Both are written in one batch, so a crash never pairs one copy's text
// with another's time. Only copies the caller decided to keep are saved
// (server/apple/os_feed.h: parsed, with macOS releases). No sockets; every
// call may block on disk (the feed's own thread calls it, never a loop).
// Thread safety: any thread (the database is synchronised).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "db/database.h"

namespace orchard::catalog::apple {

inline constexpr const char* kOsFeedFamily = "apple.feed";
// The families OsFeedStore needs, for Database::open.
std::vector<std::string> osFeedFamilies();

struct StoredOsFeed {
  std::string raw;        // the JSON text
  int64_t fetchedAt = 0;  // Unix seconds of the fetch that got it
  std::string source;     // the URL it was fetched from
  bool operator==(const StoredOsFeed&) const = default;
};

class OsFeedStore {
 public:
  // `database` must have been opened with osFeedFamilies().
  explicit OsFeedStore(std::shared_ptr<db::Database> database);

  // Replaces the stored copy (one batch).
  Result<void> save(const StoredOsFeed& feed);
  // The stored copy; nullopt when there is none. Errc::Corrupt when the
  // records are there but unreadable (meta not JSON of that shape, or one
  // record without the other).
  Result<std::optional<StoredOsFeed>> load() const;

 private:
  std::shared_ptr<db::Database> database_;
  db::Family family_;
};

}  // namespace orchard::catalog::apple
