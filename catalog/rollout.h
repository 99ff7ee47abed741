// Release control for one package (issue "Catalog, part 2"): staged
// percentages, rings and their promotion over time, pins, and the installs
// answer for one device ("which version does this Mac get now, and why").
// Pure functions of records (fleet.h) and `now` (Unix seconds): no I/O, no
// clock reads. Whether a version's rule admits a device is decided by
// catalog/targeting (checkRule) and passed in (VersionCandidate::ruleVerdict),
// so the two parts meet only through values.
//
// A version's rollout is an event log, replayed by viewAt():
//
//   event     before Start   running          paused           halted        rolled back
//   Start     -> running     (ignored)        (ignored)        (ignored)     (ignored)
//   Pause     (ignored)      -> paused        (ignored)        (ignored)     (ignored)
//   Resume    (ignored)      (ignored)        -> running       -> running    (ignored)
//   Promote   (ignored)      ring+1, clock 0  ring+1, clock 0  (ignored)     (ignored)
//   Halt      (ignored)      -> halted        -> halted        (ignored)     (ignored)
//   Rollback  (ignored)      -> rolled back   -> rolled back   -> rolled back (ignored)
//
// Ring clock: a ring's promotion is due once the version has spent
// promoteAfter seconds *running* in it (Ring::promoteAfterSecs, else the
// package default; <= 0 means no automatic promotion). Pausing stops the
// clock and resuming restarts it with the time already spent kept: paused
// on day 1 of a 2-day ring and resumed on day 3, promotion is due on day 4.
// Promoting (by hand or automatically) moves to the next ring with its clock
// at zero; the last ring is never left.
//
// Halt ("no new devices"): the ring index and its percentage stop where they
// are, the clock stops, and the view says halted. The devices already
// inside the frozen ring keep being offered the version (the box cannot
// tell who has installed it; re-offering it to those who have is harmless);
// no device outside it is added, and those get why = halted. Resume lifts a
// halt like a pause.
//
// Rollback: the version is withdrawn for good (publish a new one to go
// forward). chooseVersion skips it, so the next older eligible version is
// offered again; the ring it had reached stays in the view, because it says
// which devices may already have the withdrawn bytes (downgradeNeeded).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catalog/fleet.h"

namespace orchard::catalog {

// The staged-rollout scope for OS targets; packages use their name.
inline constexpr std::string_view kOsScope = "macOS";
inline constexpr uint32_t kStageBuckets = 10000;

// A deterministic bucket in [0, 10000): the first 8 bytes (big-endian) of
// SHA-256(scope + '\0' + serial), mod 10000. The scope is the package name,
// not the version, so a device early for 1.0 is early for 1.1.
uint32_t stageBucket(std::string_view serial, std::string_view scope);

// bucket < round(percent * 100); percent is clamped to [0, 100]. Monotone in
// percent by construction: raising it only adds devices.
bool inStage(std::string_view serial, std::string_view scope, double percent);

// Is the device in ring `ringIndex`, i.e. in any ring 0..ringIndex? A ring
// holds the devices in one of its groups, and (either) those inStage of its
// cumulative percentage. A ring with neither groups nor a percentage holds
// everyone (absent means unrestricted, as in a rule). ringIndex past the end
// means the last ring; no rings means everyone.
bool inRing(const Device& device, const std::vector<Ring>& rings, size_t ringIndex,
            std::string_view scope);

// The first ring holding the device (its ring for OS targets, with kOsScope),
// or nullopt when no ring does.
std::optional<size_t> ringOf(const Device& device, const std::vector<Ring>& rings,
                             std::string_view scope);

enum class RolloutEventKind { Start, Pause, Resume, Promote, Halt, Rollback };
const char* rolloutEventName(RolloutEventKind k);  // "start", "pause", ...

struct RolloutEvent {
  int64_t at = 0;  // Unix seconds
  RolloutEventKind kind = RolloutEventKind::Start;
  std::string reason;  // the admin's words, or the health check's ("failures 30 % > 20 %")
  bool operator==(const RolloutEvent&) const = default;
};

// A version's rollout as of `now` (see the state table above).
struct RolloutView {
  bool started = false;
  size_t ring = 0;  // index into the rings (0 when there are none)
  bool paused = false;
  bool halted = false;
  bool rolledBack = false;
  int64_t startedAt = 0;
  int64_t enteredRingAt = 0;  // when the current ring was entered
  int64_t ringTimeSecs = 0;   // running (unpaused, unhalted) time spent in the current ring
  std::optional<int64_t> nextPromotionAt;  // only while running below the last ring with a clock
  std::vector<std::pair<int64_t, size_t>> promotions;  // (when, ring entered), manual and automatic
  std::string reason;  // of the latest Pause, Halt or Rollback in force
  bool operator==(const RolloutView&) const = default;
};

// Replays `events` (stably sorted by `at`; those after `now` ignored) and
// the automatic promotions they imply up to `now`.
RolloutView viewAt(const std::vector<Ring>& rings, const std::vector<RolloutEvent>& events,
                   int64_t now, int64_t defaultPromoteAfterSecs);

// One published version of the package as chooseVersion sees it.
struct VersionCandidate {
  std::string version;
  TargetRule rule;
  std::vector<RolloutEvent> events;
  // Filled by the caller from checkRule(rule, device): nullopt = the rule
  // admits the device, else why not and a detail for the helpdesk.
  std::optional<std::pair<WhyNot, std::string>> ruleVerdict;
  // Or, when set, chooseVersion checks `rule` against the device itself
  // (ruleWhyNot, building the detail only for the reason it reports) and
  // ruleVerdict is not read: the installs answer's path, where a verdict
  // text per version per device would be most of the work.
  bool checkRule = false;
  bool isPkg = true;  // a .pkg cannot be uninstalled by macOS: a rollback needs a downgrade
};

// The installs answer for one device and one package.
struct InstallChoice {
  std::optional<std::string> version;  // nullopt: nothing for this device now
  std::string install;                 // the chosen version's rule.install ("required" | "optional")
  std::optional<int64_t> deadline;     // the chosen version's rule.deadline
  std::string ring;                    // name of the version's current ring ("" without rings)
  // With a version: "pin", "ring" or "rule" (what chose it). Without: a
  // documented why-not code (whyNotCode: not_in_group, ..., no_version).
  std::string whyCode;
  std::string whyDetail;
  // A newer .pkg this device may already have (the rule admitted it and it
  // was inside the ring that version had reached) was rolled back: macOS
  // has no supported uninstall, so the admin must downgrade by other means.
  bool downgradeNeeded = false;
  std::string rolledBackVersion;  // the newest such version, when downgradeNeeded
};

// The newest version (by compareVersions) that is not rolled back, whose
// rule admits the device, and whose current ring holds it (scope =
// packageName). Without rings the rule's rolloutPercent is the one ring
// (absent = 100). A pin that names the device (serial or group) caps the
// choice at the pinned version, and the pinned version itself is given
// whatever its ring, pause or halt (not against its rule or a rollback).
// A version not yet started (no Start event) is offered to no one.
// When nothing is chosen, the why is the most useful one: a timing reason
// (not_yet_in_ring, paused, halted) over a rule reason, a rule reason over
// channel (a version on another channel was never meant for this device),
// and the newest version's within the same rank; no_version when there are
// no candidates.
// sortedNewestFirst: `versions` is already in that order (the release
// index keeps it so), and the sort is skipped.
InstallChoice chooseVersion(const Device& device, std::string_view packageName,
                            std::span<const VersionCandidate> versions, const std::vector<Ring>& rings,
                            const std::optional<Pin>& pin, int64_t now, int64_t defaultPromoteAfterSecs,
                            bool sortedNewestFirst = false);

// Does the pin name this device (by serial or by one of its groups)?
bool pinApplies(const Pin& pin, const Device& device);

}  // namespace orchard::catalog
