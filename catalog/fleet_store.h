// FleetStore: the release-control records of the box (devices, targeting
// rules, rings and release policies, rollout events, pins) in their own
// column families, with an in-memory view for the installs answer (which
// must answer in well under a millisecond). No sockets; the handlers call it off the loops for
// writes (each a durable batch with its audit entry, written through the
// Catalog so the one audit log stays in order) and on the loops for reads.
//
// Families:
//   catalog.devices  serial -> Device JSON (device.h)
//   catalog.rules    name \0 version -> TargetRule JSON (targeting.h)
//   catalog.rings    "rings" -> {"rings": [...], "promote_after_days": N}
//   catalog.release_policies  package name -> ReleasePolicy JSON (the
//                    body of PUT /api/v1/rings/{name}, present fields only)
//   catalog.rollout  name \0 version -> [RolloutEvent JSON, ...]
//   catalog.pins     name -> Pin JSON
//   catalog.os_targets  ring -> OsTarget JSON (os_target.h)
// A record that does not parse at open is logged and left out.
//
// Release policy per package (PUT /api/v1/rings/{name}): each field it
// sets overrides the global plan for that package (planFor() is the
// merge); a ring's own promote_after_days still wins over the package's.
// `release` says how a new version enters the first ring:
//   on_publish (the default, and the global plan's only mode): a version
//       whose log has no Start event starts at its publish time (the
//       implicit Start, added by candidateOf in release_index.cc for the
//       installs answer and every other reader of a version's log);
//   manual: no implicit Start; a version is offered to no one
//       (not_yet_in_ring, "not released yet") until releaseVersion()
//       (POST .../rollout/release) writes a Start event at that moment.
// The implicit Start is decided when the answer is computed, from the
// policy in force then, so a switch of mode must not silently change the
// past. What an admin expects, and what putPolicy/removePolicy do in the
// same batch as the policy record:
//   on_publish -> manual: every version already published that has no
//       Start event gets an explicit one at its publish time (what it
//       had implicitly): nothing already out is withdrawn, only versions
//       published from then on wait for a release.
//   manual -> on_publish (PUT, or DELETE of a manual policy): the versions
//       still held (no Start event) are released at that moment, into the
//       first ring with its clock at zero; an implicit start at their
//       publish time would let a version held for a week skip its first
//       rings at once.
// A version with an explicit Start stays released whatever the mode.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "catalog/catalog.h"
#include "catalog/fleet.h"
#include "catalog/os_target.h"
#include "catalog/rollout.h"
#include "common/result.h"
#include "db/database.h"

namespace orchard::catalog {

struct ReleaseIndex;

inline constexpr const char* kDevicesFamily = "catalog.devices";
inline constexpr const char* kRulesFamily = "catalog.rules";
inline constexpr const char* kRingsFamily = "catalog.rings";
inline constexpr const char* kRolloutFamily = "catalog.rollout";
inline constexpr const char* kPinsFamily = "catalog.pins";
inline constexpr const char* kOsTargetsFamily = "catalog.os_targets";
inline constexpr const char* kReleasePoliciesFamily = "catalog.release_policies";
std::vector<std::string> fleetFamilies();

inline constexpr size_t kMaxRings = 16;

// How a package's new version enters its first ring (see above).
enum class ReleaseMode { OnPublish, Manual };
const char* releaseModeName(ReleaseMode m);  // "on_publish" | "manual"

// The rings a package's versions move through, the default time a version
// stays in a ring before it is promoted, and how a version enters the
// first ring. rings() is the global plan (PUT /api/v1/rings; its release
// is always OnPublish), planFor(name) a package's effective one.
struct RingPlan {
  std::vector<Ring> rings;
  int64_t promoteAfterSecs = 2 * 86400;
  ReleaseMode release = ReleaseMode::OnPublish;
};

// A package's own release policy (PUT /api/v1/rings/{name}); an absent
// field is the global plan's. rings = [] is "no rings": each version's
// rollout_percent is its one ring, whatever the global plan says.
struct ReleasePolicy {
  std::optional<std::vector<Ring>> rings;
  std::optional<int64_t> promoteAfterSecs;
  std::optional<ReleaseMode> release;  // absent = on_publish
  bool operator==(const ReleasePolicy&) const = default;
};

// The package's effective plan: each field the policy sets, else the
// global plan's (copies one ring list, the one in force).
RingPlan effectivePlan(const RingPlan& global, const ReleasePolicy& policy);

// JSON forms (field names are the API's). The parsers refuse unknown
// fields and bad values with a message naming the field.
std::variant<RingPlan, std::string> ringPlanFromJson(const nlohmann::json& j);
nlohmann::json ringPlanJson(const RingPlan& plan);
// The body of PUT /api/v1/rings/{name}: every field optional; unknown
// fields and bad values refused naming the field.
std::variant<ReleasePolicy, std::string> releasePolicyFromJson(const nlohmann::json& j);
nlohmann::json releasePolicyJson(const ReleasePolicy& p);  // present fields only
// GET /api/v1/rings/{name}: the effective plan (rings, promote_after_days,
// release), `from` naming for each field "package" or "global", and the
// package's own policy as stored (null when it has none).
nlohmann::json effectivePlanJson(std::string_view name, const RingPlan& effective,
                                 const std::optional<ReleasePolicy>& policy);
std::variant<Pin, std::string> pinFromJson(const nlohmann::json& j);
nlohmann::json pinToJson(const Pin& p);
nlohmann::json rolloutEventToJson(const RolloutEvent& e);

class FleetStore {
 public:
  static Result<std::unique_ptr<FleetStore>> open(std::shared_ptr<db::Database> database, Catalog* catalog);

  // --- devices ---
  // created: there was no device of that serial before.
  std::optional<Problem> putDevice(const Device& d, const Actor& actor, int64_t now, bool* created);
  std::optional<Device> device(std::string_view serial) const;
  std::optional<Problem> removeDevice(std::string_view serial, const Actor& actor, int64_t now);
  // Devices in serial order, filtered by group and site when not empty;
  // `page` from 1. *total: how many match.
  std::vector<Device> devices(std::string_view group, std::string_view site, size_t page, size_t pageSize,
                              size_t* total) const;
  // All or nothing: one batch (one audit entry) for every device.
  std::optional<Problem> importDevices(const std::vector<Device>& ds, const Actor& actor, int64_t now);
  size_t deviceCount() const;

  // --- targeting, rings, rollout, pins ---
  std::optional<Problem> putRule(std::string_view name, std::string_view version, const TargetRule& rule,
                                 const Actor& actor, int64_t now);
  TargetRule rule(std::string_view name, std::string_view version) const;  // unrestricted when none was set
  std::optional<Problem> putRings(const RingPlan& plan, const Actor& actor, int64_t now);
  RingPlan rings() const;  // the global plan: OS targets (scope macOS); packages use planFor()

  // --- release policy per package (see the top of this file) ---
  // The versions whose Start a change of mode wrote (names, newest first).
  struct PolicyChange {
    std::vector<std::string> keptReleased;  // on_publish -> manual: Start at their publish time
    std::vector<std::string> released;      // manual -> on_publish: Start now
  };
  // Replaces the package's policy; `change` (may be null) gets what the
  // switch of mode wrote. One batch, one audit entry ("ring-policy").
  std::optional<Problem> putPolicy(std::string_view name, const ReleasePolicy& policy, const Actor& actor, int64_t now,
                                   PolicyChange* change);
  std::optional<ReleasePolicy> policy(std::string_view name) const;
  // NotFound when the package has no policy ("ring-policy-delete").
  std::optional<Problem> removePolicy(std::string_view name, const Actor& actor, int64_t now, PolicyChange* change);
  // The package's effective plan (its policy over the global plan): what
  // every per-package use of the rings takes. One lock and one copy of
  // one ring list; `policy` (may be null) gets the package's own policy
  // from the same moment.
  RingPlan planFor(std::string_view package, std::optional<ReleasePolicy>* policy = nullptr) const;
  // POST .../rollout/release: a Start event at e.at, written only when the
  // version is not released yet (Exists, saying since when, otherwise: an
  // explicit Start, or the implicit one of an on_publish package at
  // `published`). Audit action "rollout-release".
  std::optional<Problem> releaseVersion(std::string_view name, std::string_view version, int64_t published,
                                        const RolloutEvent& e, const Actor& actor);
  std::optional<Problem> addEvent(std::string_view name, std::string_view version, const RolloutEvent& e,
                                  const Actor& actor);
  std::vector<RolloutEvent> events(std::string_view name, std::string_view version) const;
  // rule() and events() for each of one package's `versions`, in their
  // order, under one lock and one walk of each map's range for the
  // package: the installs answer asks for every version of every package,
  // 1,000 lock round trips per call at 500 versions otherwise.
  struct VersionRecords {
    TargetRule rule;
    std::vector<RolloutEvent> events;
  };
  std::vector<VersionRecords> versionRecords(std::string_view name, const std::vector<std::string_view>& versions) const;
  std::optional<Problem> putPin(std::string_view name, const Pin& pin, const Actor& actor, int64_t now);
  std::optional<Pin> pin(std::string_view name) const;
  std::optional<Problem> removePin(std::string_view name, const Actor& actor, int64_t now);

  // --- OS targets per ring (os_target.h) ---
  // NotFound when the ring is not in the ring plan (put) or has no target (remove).
  std::optional<Problem> putOsTarget(std::string_view ring, const OsTarget& t, const Actor& actor, int64_t now);
  std::optional<OsTarget> osTarget(std::string_view ring) const;
  std::map<std::string, OsTarget, std::less<>> osTargets() const;
  std::optional<Problem> removeOsTarget(std::string_view ring, const Actor& actor, int64_t now);

  // --- following a hub (a branch; catalog.h, change_feed.h) ---
  // Catalog::applyReplicated for the hub's change `c`, then the view of the
  // fleet's records it wrote, under this store's lock (the writers' order:
  // this lock, then the catalog's).
  std::optional<Problem> applyReplicated(const Change& c, std::string_view hub, int64_t now);

  // Bumped by every write (release_index.h rebuilds when it or the
  // catalog's generation moved).
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  const Catalog& catalog() const { return *catalog_; }

  // What the installs answer reads (release_index.h), rebuilt when the
  // catalog or the fleet's records changed since the last build.
  std::shared_ptr<const ReleaseIndex> releaseIndex() const;

  // Every device in serial order, shared: copied once per change of the
  // fleet (generation) rather than once per health count or scrape.
  std::shared_ptr<const std::vector<Device>> deviceSnapshot() const;

 private:
  FleetStore(std::shared_ptr<db::Database> database, Catalog* catalog);
  Result<void> load();
  // Under mu_ (or at load): one record of a fleet family into the view;
  // nullptr json: deleted. False when it does not parse (left out).
  bool applyRecord(db::Family f, std::string_view key, const nlohmann::json* j);
  std::optional<Problem> write(db::Batch batch, AuditEntry entry);
  // Under mu_: the Start events a switch of mode from `from` to `to` adds
  // to the package's published versions' logs, put in `batch`; applied to
  // events_ by the caller once written.
  std::vector<std::pair<std::string, std::vector<RolloutEvent>>> switchStarts(std::string_view name, ReleaseMode from,
                                                                              ReleaseMode to, int64_t now,
                                                                              db::Batch& batch, PolicyChange* change);

  std::shared_ptr<db::Database> db_;
  Catalog* catalog_;
  db::Family devicesF_, rulesF_, ringsF_, rolloutF_, pinsF_, osTargetsF_, policiesF_;
  mutable std::mutex mu_;
  std::map<std::string, Device, std::less<>> devices_;
  std::map<std::string, TargetRule, std::less<>> rules_;  // name \0 version
  RingPlan rings_;
  std::map<std::string, ReleasePolicy, std::less<>> policies_;  // package name -> its policy
  std::map<std::string, std::vector<RolloutEvent>, std::less<>> events_;  // name \0 version
  std::map<std::string, Pin, std::less<>> pins_;
  std::map<std::string, OsTarget, std::less<>> osTargets_;  // ring -> target
  std::atomic<uint64_t> generation_{0};
  mutable std::mutex indexMu_;  // held while the index is checked or built (never with mu_ held)
  mutable std::shared_ptr<const ReleaseIndex> index_;
  mutable std::mutex snapshotMu_;  // as indexMu_, for the device snapshot
  mutable std::shared_ptr<const std::vector<Device>> snapshot_;
  mutable uint64_t snapshotGeneration_ = 0;
};

}  // namespace orchard::catalog
