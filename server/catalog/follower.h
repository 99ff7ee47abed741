// Follower: a branch box following a hub's catalog (catalog.follow).
//
// Two threads of its own:
//   feed   long-polls the hub's GET /api/v1/catalog/changes?since=<applied>
//          (libcurl, straight to the hub: the feed is the hub's API, not a
//          cacheable object) and applies each change in order with
//          FleetStore::applyReplicated, which writes the change, its
//          records and the follow state (the hub's seq) in one durable
//          batch: a kill -9 or a WAN cut resumes after the last change
//          applied, never losing or repeating one. After each poll it
//          reports the site to the hub (PUT /api/v1/sites/{site}, at most
//          every kSiteReportMs) with its feed position and delivery counts.
//   bytes  fetches the pending versions' bytes through the box itself
//          (importFromStore: BoxFetch of <hub>/pkgs/{name}/{version}/{file}
//          in the content-cache form, so the box's cache, and its parents,
//          hold them too), checked against the record's size and SHA-256,
//          and makes each visible (Catalog::importReplica). Versions that
//          a ring including this box's devices offers now come first (a
//          prewarm: wantedHere()), the rest by feed order.
// Both wake on a condition variable (a new change, stop()); failures back
// off (1 s doubling to 30 s for the feed, 5 s between byte passes) and are
// kept for GET /api/v1/catalog/sync (state()).
//
// TLS to the hub: the system CAs plus upstream.ca_file, verified (peer and
// name); upstream.resolve applies to the hub's host (CURLOPT_CONNECT_TO,
// as the OS feed does). No redirect is followed, no environment proxy.
// The token is catalog.follow_token (or the file), read at each request
// (both reloadable).
//
// Lifecycle: made by the Server when catalog.follow is set, start() after
// the listeners are bound (the byte fetches go through them), stop() before
// the catalog closes. state() from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"

namespace orchard::server {

struct ServerContext;

class Follower {
 public:
  static constexpr int64_t kSiteReportMs = 5'000;
  static constexpr size_t kPageLimit = 500;

  explicit Follower(ServerContext* ctx);
  ~Follower();
  Follower(const Follower&) = delete;
  Follower& operator=(const Follower&) = delete;

  void start();
  void stop();

  struct State {
    std::string hub;
    uint64_t applied = 0;      // the hub's last change applied here
    uint64_t hubLast = 0;      // the hub's newest change, as last heard
    int64_t lastContact = 0;   // Unix seconds of the last good answer (0: never)
    int64_t appliedTime = 0;   // the hub's time of the change last applied
    int64_t caughtUpSince = 0; // Unix seconds since applied == hubLast (0: behind)
    std::string lastError;     // "" after a good poll
    int64_t lastErrorTime = 0;
    uint64_t changesApplied = 0;  // since start
    std::map<std::string, std::string> byteErrors;  // "name/version" -> why its last fetch failed
    std::string fetching;                           // "name/version" whose bytes are on the way
  };
  State state() const;

  // The hub's base URL without a trailing slash.
  const std::string& hub() const { return hub_; }

 private:
  void feedLoop();
  void bytesLoop();
  // One poll: true when it got an answer (changes or none).
  bool pollOnce();
  void reportSite(const config::Config& cfg);
  config::Config config() const;
  std::string token(const config::Config& cfg) const;
  void fail(const std::string& why);
  // Sleeps up to ms unless stopped or woken; false once stopping.
  bool pause(int64_t ms, bool bytes);

  ServerContext* ctx_;
  std::string hub_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::condition_variable feedCv_, bytesCv_;
  bool bytesWake_ = false;
  State state_;
  int64_t lastReportMs_ = 0;         // feed thread only
  std::string lastReportError_;      // feed thread only: logged when it changes
  std::thread feed_, bytes_;
};

}  // namespace orchard::server
