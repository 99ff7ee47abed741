// Release control for one package: staged buckets, ring membership, the
// rollout event log replayed into a view, and the installs choice for one
// device (see rollout.h for the state table and the rules).
//
// The hard parts:
//  - viewAt interleaves two kinds of time: the admin's events and the
//    automatic promotions they imply. It advances a cursor `t` from event to
//    event; while the rollout runs, each ring's clock accrues and a
//    promotion fires at the exact second it is due (so several rings can be
//    crossed between two events, and the promotions list stays honest).
//  - chooseVersion must explain an empty answer: every skipped version
//    leaves a ranked reason, and the best-ranked, newest one is reported.
//  - downgradeNeeded: with no install reports here, "may already have the
//    withdrawn .pkg" means the rule admitted the device and it was inside
//    the ring the version had reached when it was rolled back.
#include "catalog/rollout.h"

#include "catalog/targeting.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "catalog/digest.h"
#include "catalog/version.h"

namespace orchard::catalog {

namespace {


bool hasGroup(const Device& d, const std::string& g) {
  return std::find(d.groups.begin(), d.groups.end(), g) != d.groups.end();
}

// The buckets below which a percentage admits: round(percent * 100), in
// [0, 10000]; NaN and negatives admit none.
uint32_t stageLimit(double percent) {
  if (!(percent > 0)) return 0;
  if (percent >= 100) return kStageBuckets;
  return static_cast<uint32_t>(std::lround(percent * 100));
}

// `bucket` is the device's stageBucket for the scope, computed once by the
// caller: a SHA-256 per ring per version would dominate chooseVersion.
bool ringHolds(const Ring& r, const Device& d, uint32_t bucket) {
  if (r.groups.empty() && !r.percent) return true;
  for (const auto& g : r.groups)
    if (hasGroup(d, g)) return true;
  return r.percent && bucket < stageLimit(*r.percent);
}

bool inRingWithBucket(const Device& d, const std::vector<Ring>& rings, size_t ringIndex, uint32_t bucket) {
  if (rings.empty()) return true;
  size_t last = std::min(ringIndex, rings.size() - 1);
  for (size_t i = 0; i <= last; ++i)
    if (ringHolds(rings[i], d, bucket)) return true;
  return false;
}

std::string percentText(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g %%", p);
  return buf;
}

}  // namespace

uint32_t stageBucket(std::string_view serial, std::string_view scope) {
  std::string input;
  input.reserve(scope.size() + 1 + serial.size());
  input.append(scope);
  input.push_back('\0');
  input.append(serial);
  Sha256Digest d = sha256(input);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | d[static_cast<size_t>(i)];
  return static_cast<uint32_t>(v % kStageBuckets);
}

bool inStage(std::string_view serial, std::string_view scope, double percent) {
  uint32_t limit = stageLimit(percent);
  if (limit == 0 || limit == kStageBuckets) return limit != 0;
  return stageBucket(serial, scope) < limit;
}

// The same answer as inRingWithBucket, hashing the serial only when a
// partial percentage decides: /metrics asks this for every device and
// package, and a group or a 100 % ring answers without the SHA-256.
bool inRing(const Device& device, const std::vector<Ring>& rings, size_t ringIndex,
            std::string_view scope) {
  if (rings.empty()) return true;
  const size_t last = std::min(ringIndex, rings.size() - 1);
  uint32_t limit = 0;  // the widest percentage among the rings 0..last
  for (size_t i = 0; i <= last; ++i) {
    const Ring& r = rings[i];
    if (r.groups.empty() && !r.percent) return true;
    for (const auto& g : r.groups)
      if (hasGroup(device, g)) return true;
    if (r.percent) limit = std::max(limit, stageLimit(*r.percent));
  }
  if (limit == 0 || limit == kStageBuckets) return limit != 0;
  return stageBucket(device.serial, scope) < limit;
}

std::optional<size_t> ringOf(const Device& device, const std::vector<Ring>& rings,
                             std::string_view scope) {
  const uint32_t bucket = stageBucket(device.serial, scope);
  for (size_t i = 0; i < rings.size(); ++i)
    if (ringHolds(rings[i], device, bucket)) return i;
  return std::nullopt;
}

const char* rolloutEventName(RolloutEventKind k) {
  switch (k) {
    case RolloutEventKind::Start: return "start";
    case RolloutEventKind::Pause: return "pause";
    case RolloutEventKind::Resume: return "resume";
    case RolloutEventKind::Promote: return "promote";
    case RolloutEventKind::Halt: return "halt";
    case RolloutEventKind::Rollback: return "rollback";
  }
  return "start";
}

RolloutView viewAt(const std::vector<Ring>& rings, const std::vector<RolloutEvent>& events,
                   int64_t now, int64_t defaultPromoteAfterSecs) {
  // Logs are appended in time order, so the copy and sort are rarely needed
  // (the installs answer replays every version's log for every device).
  auto byTime = [](const RolloutEvent& a, const RolloutEvent& b) { return a.at < b.at; };
  std::vector<RolloutEvent> sorted;
  if (!std::is_sorted(events.begin(), events.end(), byTime)) {
    sorted = events;
    std::stable_sort(sorted.begin(), sorted.end(), byTime);
  }
  const std::vector<RolloutEvent>& ev = sorted.empty() ? events : sorted;
  const size_t last = rings.empty() ? 0 : rings.size() - 1;
  auto promoteAfter = [&](size_t r) {
    return r < rings.size() && rings[r].promoteAfterSecs ? *rings[r].promoteAfterSecs
                                                         : defaultPromoteAfterSecs;
  };
  RolloutView v;
  auto running = [&] { return v.started && !v.paused && !v.halted && !v.rolledBack; };
  auto enter = [&](size_t ring, int64_t at) {
    v.ring = ring;
    v.enteredRingAt = at;
    v.ringTimeSecs = 0;
    v.promotions.emplace_back(at, ring);
  };
  int64_t t = 0;  // the clock has been accounted for up to t
  auto advance = [&](int64_t to) {
    while (running() && v.ring < last) {
      int64_t need = promoteAfter(v.ring);
      if (need <= 0) break;
      int64_t due = t + (need - v.ringTimeSecs);
      if (due > to) break;
      t = due;
      enter(v.ring + 1, due);
    }
    if (running()) v.ringTimeSecs += to - t;
    t = to;
  };

  for (const auto& e : ev) {
    if (e.at > now) break;
    advance(e.at);
    switch (e.kind) {
      case RolloutEventKind::Start:
        if (!v.started) {
          v.started = true;
          v.startedAt = v.enteredRingAt = e.at;
        }
        break;
      case RolloutEventKind::Pause:
        if (running()) {
          v.paused = true;
          v.reason = e.reason;
        }
        break;
      case RolloutEventKind::Resume:
        if (v.started && !v.rolledBack && (v.paused || v.halted)) {
          v.paused = v.halted = false;
          v.reason.clear();
        }
        break;
      case RolloutEventKind::Promote:
        if (v.started && !v.halted && !v.rolledBack && v.ring < last) enter(v.ring + 1, e.at);
        break;
      case RolloutEventKind::Halt:
        if (v.started && !v.halted && !v.rolledBack) {
          v.halted = true;
          v.paused = false;
          v.reason = e.reason;
        }
        break;
      case RolloutEventKind::Rollback:
        if (v.started && !v.rolledBack) {
          v.rolledBack = true;
          v.paused = v.halted = false;
          v.reason = e.reason;
        }
        break;
    }
  }
  advance(std::max(now, t));
  if (running() && v.ring < last && promoteAfter(v.ring) > 0)
    v.nextPromotionAt = now + (promoteAfter(v.ring) - v.ringTimeSecs);
  return v;
}

bool pinApplies(const Pin& pin, const Device& device) {
  if (std::find(pin.devices.begin(), pin.devices.end(), device.serial) != pin.devices.end())
    return true;
  for (const auto& g : pin.groups)
    if (hasGroup(device, g)) return true;
  return false;
}

InstallChoice chooseVersion(const Device& device, std::string_view packageName,
                            std::span<const VersionCandidate> versions, const std::vector<Ring>& rings,
                            const std::optional<Pin>& pin, int64_t now, int64_t defaultPromoteAfterSecs,
                            bool sortedNewestFirst) {
  InstallChoice out;
  std::vector<const VersionCandidate*> order;
  order.reserve(versions.size());
  for (const auto& c : versions) order.push_back(&c);
  if (!sortedNewestFirst)
    std::sort(order.begin(), order.end(), [](const VersionCandidate* a, const VersionCandidate* b) {
      int c = compareVersions(a->version, b->version);
      return c != 0 ? c > 0 : versionLess(b->version, a->version);
    });
  const bool pinned = pin && pinApplies(*pin, device);
  const uint32_t bucket = stageBucket(device.serial, packageName);

  // The best reason so far for giving nothing: lower rank wins, then the
  // newer version (the first noted). 0 timing, 1 rule, 2 channel, 3 none.
  // The detail is built only when the reason is kept: most versions of a
  // package are skipped for a device, and their texts are never read.
  int bestRank = 4;
  WhyNot bestWhy = WhyNot::NoVersion;
  std::string bestDetail;
  auto note = [&](int rank, WhyNot w, auto&& detail) {
    if (rank >= bestRank) return;
    bestRank = rank;
    bestWhy = w;
    bestDetail = detail();
  };
  const VersionCandidate* rolledBack = nullptr;  // the newest rolled-back version
  auto rolledBackNote = [&] { return rolledBack->version + " was rolled back"; };

  // Without rings the rule's rollout_percent is the one ring.
  std::vector<Ring> oneRing;
  if (rings.empty()) oneRing.push_back(Ring{"", {}, 100.0, {}});

  for (const VersionCandidate* c : order) {
    const std::string& ver = c->version;
    if (pinned && compareVersions(ver, pin->version) > 0) {
      note(3, WhyNot::NoVersion,
           [&] { return "pinned to " + pin->version + ": no version at or below it is eligible"; });
      continue;
    }
    if (rings.empty()) oneRing[0].percent = c->rule.rolloutPercent.value_or(100.0);
    const std::vector<Ring>& rs = rings.empty() ? oneRing : rings;
    const RolloutView v = viewAt(rs, c->events, now, defaultPromoteAfterSecs);
    const bool inside = inRingWithBucket(device, rs, v.ring, bucket);
    const std::string& ringName = rs[std::min(v.ring, rs.size() - 1)].name;
    auto where = [&] {
      return rings.empty() ? "staged rollout at " + percentText(*rs[0].percent) : "ring " + ringName;
    };
    // The rule's verdict: given by the caller, or checked here (code first,
    // the detail only if it is the one reported).
    std::optional<WhyNot> why;
    if (c->checkRule) why = ruleWhyNot(c->rule, device);
    else if (c->ruleVerdict) why = c->ruleVerdict->first;
    auto ruleDetail = [&] {
      return ver + ": " + (c->checkRule ? ruleWhyNotDetail(c->rule, device, *why) : c->ruleVerdict->second);
    };

    if (v.rolledBack) {
      if (c->isPkg && !why && inside && !out.downgradeNeeded) {
        out.downgradeNeeded = true;
        out.rolledBackVersion = ver;
      }
      if (!rolledBack) rolledBack = c;
      note(3, WhyNot::NoVersion, [&] { return rolledBackNote() + "; no older version is eligible"; });
      continue;
    }
    if (why) {
      note(*why == WhyNot::Channel ? 2 : 1, *why, ruleDetail);
      continue;
    }
    if (!v.started) {
      note(0, WhyNot::NotYetInRing, [&] { return ver + " is not released yet"; });
      continue;
    }
    const bool isPin = pinned && compareVersions(ver, pin->version) == 0;
    if (isPin || inside) {
      out.version = ver;
      out.install = c->rule.install;
      out.deadline = c->rule.deadline;
      out.ring = rings.empty() ? std::string() : ringName;
      out.whyCode = isPin ? "pin" : rings.empty() ? "rule" : "ring";
      out.whyDetail = isPin ? "pinned to " + pin->version : ver + " in " + where();
      if (out.downgradeNeeded)
        out.whyDetail += "; " + out.rolledBackVersion +
                         " was rolled back and may be installed: downgrade needed (a .pkg cannot be uninstalled)";
      else if (rolledBack)
        out.whyDetail += "; " + rolledBackNote();
      return out;
    }
    if (v.halted) {
      note(0, WhyNot::Halted, [&] {
        return ver + " is halted at " + where() + ": no new devices" + (v.reason.empty() ? "" : " (" + v.reason + ")");
      });
    } else if (v.paused) {
      note(0, WhyNot::Paused,
           [&] { return ver + " is paused at " + where() + (v.reason.empty() ? "" : " (" + v.reason + ")"); });
    } else {
      note(0, WhyNot::NotYetInRing, [&] {
        std::string d = ver + " is at " + where() + "; this device is not in it yet";
        if (v.nextPromotionAt) d += " (next promotion at " + std::to_string(*v.nextPromotionAt) + ")";
        return d;
      });
    }
  }
  out.whyCode = whyNotCode(bestWhy);
  out.whyDetail = bestRank == 4 ? "no version of " + std::string(packageName) + " is published" : bestDetail;
  return out;
}

}  // namespace orchard::catalog
