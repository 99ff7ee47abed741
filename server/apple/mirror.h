// MirrorManager: runs mirror and prewarm jobs (catalog/apple/mirror_job.h)
// on one thread of its own, one job at a time in the order they were
// asked for, each package through the box's own fill path (BoxFetch, with
// the fill capped to apple.mirror_rate), verified before it counts:
//   - the byte count against the catalog's Size;
//   - where the product has one, the chunklist (IntegrityDataURL), chunk by
//     chunk as the bytes stream past (catalog/apple/chunklist.h).
// A mismatch purges the object (no Mac is handed bytes known to be bad) and
// fetches it once more; a second mismatch fails the job with the reason,
// and the object is purged again.
//
// Time window (apple.mirror_window, or a prewarm list's own): outside it a
// job waits; at its end the running transfer is stopped (its loopback
// connection dropped, so its capped fill stops and records its durable
// blocks) and resumes from them when the window opens again.
//
// State lives in the box: every change of a job is a durable record, so
// after a restart (or a kill -9) the jobs that were queued or running go
// on by themselves, and the fill resumes from the blocks the store
// recorded. What the store holds is read live (AppleService::holding), so
// a wiped store shows as absent whatever the record says.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalog/apple/mirror_job.h"
#include "catalog/apple/sucatalog.h"
#include "common/result.h"

namespace orchard::server {

class AppleService;

// A job as the API shows it: the record plus what the running transfer is
// doing now.
struct JobView {
  catalog::apple::MirrorJob job;
  uint64_t totalBytes = 0;  // sum of the items' expected sizes (known ones)
  uint64_t doneBytes = 0;   // items done + the current item's bytes so far
  double rate = 0;          // bytes/s of the current transfer (last few seconds)
  int64_t etaSeconds = -1;  // -1: unknown
  std::string current;      // URL being fetched, "" when none
};

class MirrorManager {
 public:
  MirrorManager(AppleService* apple, std::shared_ptr<db::Database> db);
  ~MirrorManager();
  MirrorManager(const MirrorManager&) = delete;
  MirrorManager& operator=(const MirrorManager&) = delete;

  void start();  // loads the records, requeues unfinished jobs, starts the thread
  void stop();   // stops the running transfer (it resumes at the next start) and joins

  // Mirrors a product: a new job, or the existing one queued again when it
  // had failed or finished (a finished one re-verifies quickly: its bytes
  // are hits). Busy when it is queued or running already (the job is
  // returned as it is).
  Result<catalog::apple::MirrorJob> mirror(const catalog::apple::CatalogProduct& product, int64_t now,
                                           bool* alreadyQueued);
  // Prewarm lists: stored, and their job (re)queued at once and then every
  // list's interval.
  Result<void> putPrewarm(catalog::apple::PrewarmList list, int64_t now);
  Result<void> removePrewarm(const std::string& name);
  std::vector<catalog::apple::PrewarmList> prewarmLists() const;
  std::optional<catalog::apple::PrewarmList> prewarm(const std::string& name) const;

  std::vector<JobView> jobs() const;
  std::optional<JobView> job(const std::string& id) const;
  bool windowOpen() const;  // apple.mirror_window (no window: always)

 private:
  struct Progress {
    std::string url;
    uint64_t received = 0;
    uint64_t windowStartBytes = 0;
    int64_t windowStartMs = 0;
    double rate = 0;
  };
  void run();
  void runJob(catalog::apple::MirrorJob& job);
  enum class ItemEnd { Done, Stopped, Retry, Failed };
  ItemEnd fetchItem(catalog::apple::MirrorItem& item, const std::string& window);
  bool windowOpenFor(const std::string& window) const;
  std::string windowFor(const catalog::apple::MirrorJob& job) const;
  void save(const catalog::apple::MirrorJob& job);
  void queuePrewarmJob(const catalog::apple::PrewarmList& list, int64_t now);
  int64_t nowSeconds() const;
  int64_t nowMs() const;

  AppleService* apple_;
  catalog::apple::AppleRecords records_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<catalog::apple::MirrorJob> jobs_;  // every job, in the order asked
  std::vector<catalog::apple::PrewarmList> prewarm_;
  Progress progress_;
  std::string runningId_;
  bool stopping_ = false;
  bool kick_ = false;
  int64_t nextCatalogTryMs_ = 0;  // a prewarm list's products wait for Apple's catalog until then
  std::atomic<bool> stopTransfer_{false};
  std::thread thread_;
};

}  // namespace orchard::server
