// Mirror jobs and prewarm lists as records: what the box was asked to bring
// into its store, how far each package got and why one failed. The records
// live in the box's database (AppleRecords below), so a job survives a
// restart or a kill -9 and resumes by itself; the bytes themselves are the
// cache's (a wiped store shows as absent, whatever a record says).
// JSON through nlohmann::json; fromJson is strict about types (a record
// that does not parse is skipped with a log line, never half-loaded).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "db/database.h"

namespace orchard::catalog::apple {

inline constexpr const char* kMirrorsFamily = "apple.mirrors";
inline constexpr const char* kPrewarmFamily = "apple.prewarm";
std::vector<std::string> appleFamilies();

enum class JobState : uint8_t { Queued, Running, Waiting, Done, Failed };
inline constexpr size_t kJobStates = 5;
const char* jobStateName(JobState s);
std::optional<JobState> jobStateFrom(std::string_view s);

struct MirrorItem {
  std::string url;
  uint64_t size = 0;            // expected (catalog Size); 0 = unknown (a prewarm URL)
  std::string integrityUrl;     // chunklist, "" when none
  JobState state = JobState::Queued;
  uint32_t attempts = 0;        // verification failures so far (a second one fails the item)
  std::string reason;           // why it failed
  std::string sha256;           // of the verified bytes (hex), once Done
  bool operator==(const MirrorItem&) const = default;
};

// One job: a product's packages (a mirror) or a prewarm list's targets.
struct MirrorJob {
  std::string id;          // the product id, or "prewarm:<name>"
  std::string kind;        // "mirror" | "prewarm"
  JobState state = JobState::Queued;
  std::string reason;      // Failed: the first item's reason; Waiting: "outside apple.mirror_window"
  int64_t createdAt = 0;
  int64_t finishedAt = 0;
  std::vector<MirrorItem> items;
  bool operator==(const MirrorJob&) const = default;
};

std::string toJson(const MirrorJob& job);
Result<MirrorJob> mirrorJobFromJson(std::string_view text);

// PUT /api/v1/prewarm/{name}: what to keep warm and when.
struct PrewarmList {
  std::string name;
  std::vector<std::string> urls;      // any allowed host, http or https
  std::vector<std::string> products;  // catalog product ids (their packages)
  std::string window;                 // "HH:MM-HH:MM"; "" = apple.mirror_window
  int64_t intervalMs = 0;             // re-check every so often (0: 6h)
  int64_t updatedAt = 0;
  bool operator==(const PrewarmList&) const = default;
};

std::string toJson(const PrewarmList& list);
// From the API's body or a stored record: {"urls":[...],"products":[...],
// "window":"22:00-06:00","interval":"6h"|seconds}. *why says what is wrong.
std::optional<PrewarmList> prewarmFromJson(std::string_view text, std::string* why);

// The records in the database. Any thread; each put is one durable write.
class AppleRecords {
 public:
  explicit AppleRecords(std::shared_ptr<db::Database> db);
  Result<void> putJob(const MirrorJob& job);
  Result<void> removeJob(std::string_view id);
  std::vector<MirrorJob> jobs() const;  // every record that parses
  Result<void> putPrewarm(const PrewarmList& list);
  Result<void> removePrewarm(std::string_view name);
  std::vector<PrewarmList> prewarmLists() const;

 private:
  std::shared_ptr<db::Database> db_;
  db::Family jobsF_, prewarmF_;
};

}  // namespace orchard::catalog::apple
