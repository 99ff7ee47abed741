// FleetStore (see fleet_store.h): the in-memory view of the fleet's
// records and the durable batches that change them. Hard parts: every
// change is written before the view changes (a failed write changes
// nothing), through Catalog::recordChange so that the audit entry and the
// record are one batch; the JSON forms of rings, pins and rollout events
// live here (the device's and the rule's in device.cc / targeting.cc).
#include "catalog/fleet_store.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "catalog/device.h"
#include "catalog/release_index.h"
#include "catalog/targeting.h"
#include "common/log.h"

namespace orchard::catalog {

using nlohmann::json;

namespace {

std::string key2(std::string_view a, std::string_view b) {
  std::string k(a);
  k += '\0';
  k += b;
  return k;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json ringJson(const Ring& r) {
  json j{{"name", r.name}, {"groups", r.groups}};
  if (r.percent) j["percent"] = *r.percent;
  if (r.promoteAfterSecs) j["promote_after_days"] = static_cast<double>(*r.promoteAfterSecs) / 86400.0;
  return j;
}

json eventJson(const RolloutEvent& e) {
  return json{{"at", e.at}, {"kind", rolloutEventName(e.kind)}, {"reason", e.reason}};
}

std::optional<RolloutEvent> eventFromJson(const json& j) {
  if (!j.is_object() || !j.contains("at") || !j["at"].is_number_integer() || !j.contains("kind") ||
      !j["kind"].is_string())
    return std::nullopt;
  for (auto k : {RolloutEventKind::Start, RolloutEventKind::Pause, RolloutEventKind::Resume, RolloutEventKind::Promote,
                 RolloutEventKind::Halt, RolloutEventKind::Rollback})
    if (j["kind"].get<std::string>() == rolloutEventName(k))
      return RolloutEvent{j["at"].get<int64_t>(), k, j.value("reason", std::string())};
  return std::nullopt;
}

json pinJson(const Pin& p) { return json{{"version", p.version}, {"groups", p.groups}, {"devices", p.devices}}; }

// promote_after_days (days, fractions allowed) into seconds, or the problem.
std::optional<std::string> daysFromJson(const json& v, const std::string& field, int64_t* secs) {
  if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 3650)
    return field + ": a number of days from 0 to 3650";
  *secs = static_cast<int64_t>(v.get<double>() * 86400.0);
  return std::nullopt;
}

// The ring list of the global plan and of a package's policy, one parser.
std::variant<std::vector<Ring>, std::string> ringsFromJson(const json& list) {
  if (!list.is_array() || list.size() > kMaxRings)
    return "rings: a list of at most " + std::to_string(kMaxRings) + " rings";
  std::vector<Ring> rings;
  double last = -1;
  for (const auto& r : list) {
    if (!r.is_object() || !r.contains("name") || !r["name"].is_string() || r["name"].get<std::string>().empty() ||
        r["name"].get<std::string>().size() > 64)
      return std::string("rings: each ring needs a name (1-64 bytes)");
    Ring ring;
    ring.name = r["name"].get<std::string>();
    for (const auto& [k, v] : r.items()) {
      if (k == "name") continue;
      if (k == "groups") {
        if (!v.is_array() || v.size() > 64) return "rings." + ring.name + ".groups: a list of group names";
        for (const auto& g : v) {
          if (!g.is_string() || g.get<std::string>().empty()) return "rings." + ring.name + ".groups: a list of group names";
          ring.groups.push_back(g.get<std::string>());
        }
      } else if (k == "percent") {
        if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 100)
          return "rings." + ring.name + ".percent: a number from 0 to 100";
        ring.percent = v.get<double>();
        if (*ring.percent < last) return "rings." + ring.name + ".percent: percentages are cumulative (never lower)";
        last = *ring.percent;
      } else if (k == "promote_after_days") {
        int64_t secs = 0;
        if (auto p = daysFromJson(v, "rings." + ring.name + ".promote_after_days", &secs)) return *p;
        ring.promoteAfterSecs = secs;
      } else {
        return "rings." + ring.name + ": unknown field " + k;
      }
    }
    for (const Ring& before : rings)
      if (before.name == ring.name) return "rings: two rings named " + ring.name;
    rings.push_back(std::move(ring));
  }
  return rings;
}

json ringsJson(const std::vector<Ring>& rings) {
  json out = json::array();
  for (const auto& r : rings) out.push_back(ringJson(r));
  return out;
}

double days(int64_t secs) { return static_cast<double>(secs) / 86400.0; }

}  // namespace

const char* releaseModeName(ReleaseMode m) { return m == ReleaseMode::Manual ? "manual" : "on_publish"; }

RingPlan effectivePlan(const RingPlan& global, const ReleasePolicy& policy) {
  RingPlan plan;
  plan.rings = policy.rings ? *policy.rings : global.rings;
  plan.promoteAfterSecs = policy.promoteAfterSecs.value_or(global.promoteAfterSecs);
  plan.release = policy.release.value_or(ReleaseMode::OnPublish);
  return plan;
}

std::variant<RingPlan, std::string> ringPlanFromJson(const json& j) {
  if (!j.is_object()) return std::string("rings: the body must be a JSON object {\"rings\": [...]}");
  for (const auto& [k, v] : j.items())
    if (k != "rings" && k != "promote_after_days") return "rings: unknown field " + k;
  RingPlan plan;
  if (auto it = j.find("promote_after_days"); it != j.end())
    if (auto p = daysFromJson(*it, "promote_after_days", &plan.promoteAfterSecs)) return *p;
  auto it = j.find("rings");
  if (it == j.end()) return "rings: a list of at most " + std::to_string(kMaxRings) + " rings";
  auto rings = ringsFromJson(*it);
  if (auto* p = std::get_if<std::string>(&rings)) return *p;
  plan.rings = std::move(std::get<std::vector<Ring>>(rings));
  return plan;
}

json ringPlanJson(const RingPlan& plan) {
  return json{{"rings", ringsJson(plan.rings)}, {"promote_after_days", days(plan.promoteAfterSecs)}};
}

std::variant<ReleasePolicy, std::string> releasePolicyFromJson(const json& j) {
  if (!j.is_object())
    return std::string("the body must be a JSON object {\"promote_after_days\", \"rings\", \"release\"} "
                       "(every field optional)");
  ReleasePolicy p;
  for (const auto& [k, v] : j.items()) {
    if (k == "promote_after_days") {
      int64_t secs = 0;
      if (auto e = daysFromJson(v, "promote_after_days", &secs)) return *e;
      p.promoteAfterSecs = secs;
    } else if (k == "rings") {
      auto rings = ringsFromJson(v);
      if (auto* e = std::get_if<std::string>(&rings)) return *e;
      p.rings = std::move(std::get<std::vector<Ring>>(rings));
    } else if (k == "release") {
      if (v == "on_publish") p.release = ReleaseMode::OnPublish;
      else if (v == "manual") p.release = ReleaseMode::Manual;
      else return std::string("release: \"on_publish\" or \"manual\"");
    } else {
      return "unknown field " + k + " (the fields are promote_after_days, rings and release)";
    }
  }
  return p;
}

json releasePolicyJson(const ReleasePolicy& p) {
  json j = json::object();
  if (p.promoteAfterSecs) j["promote_after_days"] = days(*p.promoteAfterSecs);
  if (p.rings) j["rings"] = ringsJson(*p.rings);
  if (p.release) j["release"] = releaseModeName(*p.release);
  return j;
}

json effectivePlanJson(std::string_view name, const RingPlan& effective, const std::optional<ReleasePolicy>& policy) {
  auto from = [&](bool set) { return set ? "package" : "global"; };
  json j = ringPlanJson(effective);
  j["name"] = std::string(name);
  j["release"] = releaseModeName(effective.release);
  j["from"] = {{"rings", from(policy && policy->rings)},
               {"promote_after_days", from(policy && policy->promoteAfterSecs)},
               {"release", from(policy && policy->release)}};
  j["policy"] = policy ? releasePolicyJson(*policy) : json();
  return j;
}

std::variant<Pin, std::string> pinFromJson(const json& j) {
  if (!j.is_object()) return std::string("pin: the body must be a JSON object");
  Pin p;
  for (const auto& [k, v] : j.items()) {
    if (k == "version") {
      if (!v.is_string() || v.get<std::string>().empty()) return std::string("version: the pinned version");
      p.version = v.get<std::string>();
    } else if (k == "groups" || k == "devices") {
      if (!v.is_array() || v.size() > 10000) return k + ": a list of names";
      for (const auto& e : v) {
        if (!e.is_string() || e.get<std::string>().empty()) return k + ": a list of names";
        (k == "groups" ? p.groups : p.devices).push_back(e.get<std::string>());
      }
    } else {
      return "pin: unknown field " + k;
    }
  }
  if (p.version.empty()) return std::string("version: the pinned version is required");
  return p;
}

json pinToJson(const Pin& p) { return pinJson(p); }
json rolloutEventToJson(const RolloutEvent& e) { return eventJson(e); }

std::vector<std::string> fleetFamilies() {
  return {kDevicesFamily, kRulesFamily, kRingsFamily, kRolloutFamily, kPinsFamily, kOsTargetsFamily,
          kReleasePoliciesFamily};
}

FleetStore::FleetStore(std::shared_ptr<db::Database> database, Catalog* catalog)
    : db_(std::move(database)), catalog_(catalog) {
  devicesF_ = db_->family(kDevicesFamily);
  rulesF_ = db_->family(kRulesFamily);
  ringsF_ = db_->family(kRingsFamily);
  rolloutF_ = db_->family(kRolloutFamily);
  pinsF_ = db_->family(kPinsFamily);
  osTargetsF_ = db_->family(kOsTargetsFamily);
  policiesF_ = db_->family(kReleasePoliciesFamily);
}

Result<std::unique_ptr<FleetStore>> FleetStore::open(std::shared_ptr<db::Database> database, Catalog* catalog) {
  for (const std::string& f : fleetFamilies())
    if (!database->family(f).valid()) return Error{Errc::Invalid, 0, "fleet open: database without the fleet families"};
  std::unique_ptr<FleetStore> s(new FleetStore(std::move(database), catalog));
  if (auto r = s->load(); !r) return r.error();
  return s;
}

Result<void> FleetStore::load() {
  size_t bad = 0;
  auto each = [&](db::Family f, auto fn) {
    return db_->forEach(f, [&](std::string_view k, std::string_view v) {
      json j = json::parse(v, nullptr, false);
      if (j.is_discarded() || !fn(k, j)) ++bad;
    });
  };
  for (db::Family f : {devicesF_, rulesF_, ringsF_, rolloutF_, pinsF_, osTargetsF_, policiesF_}) {
    auto r = each(f, [&](std::string_view k, const json& j) { return applyRecord(f, k, &j); });
    if (!r) return r.error();
  }
  if (bad) OLOG_WARN("fleet: %zu records do not parse: left out", bad);
  OLOG_INFO("fleet: %zu devices, %zu rules, %zu rings, %zu release policies, %zu pins", devices_.size(), rules_.size(),
            rings_.rings.size(), policies_.size(), pins_.size());
  return ok();
}

bool FleetStore::applyRecord(db::Family f, std::string_view k, const json* j) {
  const std::string key(k);
  if (f == devicesF_) {
    if (!j) return devices_.erase(key), true;
    auto d = deviceFromJson(*j, k);
    if (auto* dev = std::get_if<Device>(&d)) devices_[key] = std::move(*dev);
    return d.index() == 0;
  }
  if (f == rulesF_) {
    if (!j) return rules_.erase(key), true;
    auto rule = ruleFromJson(*j);
    if (auto* t = std::get_if<TargetRule>(&rule)) rules_[key] = std::move(*t);
    return rule.index() == 0;
  }
  if (f == ringsF_) {
    if (!j) return rings_ = RingPlan{}, true;
    auto plan = ringPlanFromJson(*j);
    if (auto* p = std::get_if<RingPlan>(&plan)) rings_ = std::move(*p);
    return plan.index() == 0;
  }
  if (f == rolloutF_) {
    if (!j) return events_.erase(key), true;
    if (!j->is_array()) return false;
    std::vector<RolloutEvent> es;
    for (const auto& e : *j)
      if (auto ev = eventFromJson(e)) es.push_back(*ev);
    events_[key] = std::move(es);
    return true;
  }
  if (f == pinsF_) {
    if (!j) return pins_.erase(key), true;
    auto p = pinFromJson(*j);
    if (auto* pin = std::get_if<Pin>(&p)) pins_[key] = std::move(*pin);
    return p.index() == 0;
  }
  if (f == osTargetsF_) {
    if (!j) return osTargets_.erase(key), true;
    auto t = osTargetFromJson(*j);
    if (auto* ot = std::get_if<OsTarget>(&t)) osTargets_[key] = std::move(*ot);
    return t.index() == 0;
  }
  if (f == policiesF_) {
    if (!j) return policies_.erase(key), true;
    auto p = releasePolicyFromJson(*j);
    if (auto* policy = std::get_if<ReleasePolicy>(&p)) policies_[key] = std::move(*policy);
    return p.index() == 0;
  }
  return false;
}

std::optional<Problem> FleetStore::applyReplicated(const Change& c, std::string_view hub, int64_t now) {
  std::vector<ChangeOp> ops;
  std::lock_guard lock(mu_);
  if (auto p = catalog_->applyReplicated(c, hub, now, &ops)) return p;
  size_t bad = 0;
  for (const ChangeOp& op : ops) {
    const db::Family f = db_->family(op.family);
    if (!op.value) {
      applyRecord(f, op.key, nullptr);
      continue;
    }
    json j = json::parse(*op.value, nullptr, false);
    if (j.is_discarded() || !applyRecord(f, op.key, &j)) ++bad;
  }
  if (bad)
    OLOG_WARN("fleet: %zu records of the hub's change %llu do not parse: left out of the view", bad,
              static_cast<unsigned long long>(c.seq));
  generation_.fetch_add(1, std::memory_order_release);
  return std::nullopt;
}

// Every writer holds mu_ from here until its view is updated, and the
// release index reads the records under mu_: an index built after reading
// the bumped generation sees the change.
std::optional<Problem> FleetStore::write(db::Batch batch, AuditEntry entry) {
  auto p = catalog_->recordChange(std::move(batch), std::move(entry));
  if (!p) generation_.fetch_add(1, std::memory_order_release);
  return p;
}

std::optional<Problem> FleetStore::putDevice(const Device& d, const Actor& actor, int64_t now, bool* created) {
  if (auto p = validateDevice(d)) return Problem{Errc::Invalid, *p};
  json j;
  toJson(j, d);
  std::lock_guard lock(mu_);
  *created = !devices_.count(d.serial);
  db::Batch b;
  b.put(devicesF_, d.serial, dump(j));
  if (auto p = write(std::move(b), AuditEntry{0, now, *created ? "device-add" : "device-update", "device/" + d.serial,
                                              actor.client, actor.token, ""}))
    return p;
  devices_[d.serial] = d;
  return std::nullopt;
}

std::optional<Device> FleetStore::device(std::string_view serial) const {
  std::lock_guard lock(mu_);
  auto it = devices_.find(serial);
  if (it == devices_.end()) return std::nullopt;
  return it->second;
}

std::optional<Problem> FleetStore::removeDevice(std::string_view serial, const Actor& actor, int64_t now) {
  std::lock_guard lock(mu_);
  auto it = devices_.find(serial);
  if (it == devices_.end()) return Problem{Errc::NotFound, "no device " + std::string(serial)};
  db::Batch b;
  b.del(devicesF_, serial);
  if (auto p = write(std::move(b), AuditEntry{0, now, "device-delete", "device/" + std::string(serial), actor.client,
                                              actor.token, ""}))
    return p;
  devices_.erase(it);
  return std::nullopt;
}

std::vector<Device> FleetStore::devices(std::string_view group, std::string_view site, size_t page, size_t pageSize,
                                        size_t* total) const {
  std::vector<Device> out;
  std::lock_guard lock(mu_);
  size_t n = 0;
  const size_t first = (page > 0 ? page - 1 : 0) * pageSize;
  for (const auto& [serial, d] : devices_) {
    if (!site.empty() && d.site != site) continue;
    if (!group.empty() && std::find(d.groups.begin(), d.groups.end(), group) == d.groups.end()) continue;
    if (n >= first && out.size() < pageSize) out.push_back(d);
    ++n;
  }
  *total = n;
  return out;
}

std::optional<Problem> FleetStore::importDevices(const std::vector<Device>& ds, const Actor& actor, int64_t now) {
  db::Batch b;
  for (const Device& d : ds) {
    json j;
    toJson(j, d);
    b.put(devicesF_, d.serial, dump(j));
  }
  std::lock_guard lock(mu_);
  if (auto p = write(std::move(b), AuditEntry{0, now, "device-import", "devices", actor.client, actor.token,
                                              std::to_string(ds.size()) + " devices"}))
    return p;
  for (const Device& d : ds) devices_[d.serial] = d;
  return std::nullopt;
}

size_t FleetStore::deviceCount() const {
  std::lock_guard lock(mu_);
  return devices_.size();
}

std::optional<Problem> FleetStore::putRule(std::string_view name, std::string_view version, const TargetRule& rule,
                                           const Actor& actor, int64_t now) {
  json j;
  toJson(j, rule);
  std::lock_guard lock(mu_);
  db::Batch b;
  b.put(rulesF_, key2(name, version), dump(j));
  if (auto p = write(std::move(b), AuditEntry{0, now, "targeting", std::string(name) + "/" + std::string(version),
                                              actor.client, actor.token, dump(j)}))
    return p;
  rules_[key2(name, version)] = rule;
  return std::nullopt;
}

TargetRule FleetStore::rule(std::string_view name, std::string_view version) const {
  std::lock_guard lock(mu_);
  auto it = rules_.find(key2(name, version));
  return it == rules_.end() ? TargetRule{} : it->second;
}

std::optional<Problem> FleetStore::putRings(const RingPlan& plan, const Actor& actor, int64_t now) {
  const json j = ringPlanJson(plan);
  std::lock_guard lock(mu_);
  db::Batch b;
  b.put(ringsF_, "rings", dump(j));
  if (auto p = write(std::move(b), AuditEntry{0, now, "rings", "rings", actor.client, actor.token, dump(j)})) return p;
  rings_ = plan;
  return std::nullopt;
}

RingPlan FleetStore::rings() const {
  std::lock_guard lock(mu_);
  return rings_;
}

namespace {

bool hasStart(const std::vector<RolloutEvent>& events) {
  return std::any_of(events.begin(), events.end(),
                     [](const RolloutEvent& e) { return e.kind == RolloutEventKind::Start; });
}

json eventsJson(const std::vector<RolloutEvent>& events) {
  json arr = json::array();
  for (const auto& ev : events) arr.push_back(eventJson(ev));
  return arr;
}

std::string joined(const std::vector<std::string>& xs) {
  std::string out;
  for (const auto& x : xs) out += (out.empty() ? "" : ", ") + x;
  return out;
}

// The audit detail of a policy change: the policy, and the versions whose
// Start the switch of mode wrote.
std::string policyDetail(const std::string& body, const FleetStore::PolicyChange& c) {
  std::string d = body;
  auto add = [&](const char* what, const std::vector<std::string>& versions) {
    if (!versions.empty()) d += (d.empty() ? "" : "; ") + std::string(what) + joined(versions);
  };
  add("kept released (Start at publish): ", c.keptReleased);
  add("released now: ", c.released);
  return d;
}

}  // namespace

std::vector<std::pair<std::string, std::vector<RolloutEvent>>> FleetStore::switchStarts(
    std::string_view name, ReleaseMode from, ReleaseMode to, int64_t now, db::Batch& batch, PolicyChange* change) {
  std::vector<std::pair<std::string, std::vector<RolloutEvent>>> out;
  if (from == to) return out;
  for (const auto& v : catalog_->versions(name)) {  // newest first
    std::string key = key2(name, v->version);
    auto it = events_.find(key);
    std::vector<RolloutEvent> next = it == events_.end() ? std::vector<RolloutEvent>() : it->second;
    if (hasStart(next)) continue;
    if (to == ReleaseMode::Manual) {
      // First, as candidatesFor puts the implicit one: the same replay.
      next.insert(next.begin(),
                  RolloutEvent{v->published, RolloutEventKind::Start, "published (release set to manual)"});
      change->keptReleased.push_back(v->version);
    } else {
      next.push_back(RolloutEvent{now, RolloutEventKind::Start, "released (release set to on_publish)"});
      change->released.push_back(v->version);
    }
    batch.put(rolloutF_, key, dump(eventsJson(next)));
    out.emplace_back(std::move(key), std::move(next));
  }
  return out;
}

std::optional<Problem> FleetStore::putPolicy(std::string_view name, const ReleasePolicy& policy, const Actor& actor,
                                             int64_t now, PolicyChange* change) {
  PolicyChange local;
  if (!change) change = &local;
  *change = {};
  const std::string body = dump(releasePolicyJson(policy));
  std::lock_guard lock(mu_);
  auto it = policies_.find(name);
  const ReleaseMode from =
      it == policies_.end() ? ReleaseMode::OnPublish : it->second.release.value_or(ReleaseMode::OnPublish);
  db::Batch b;
  b.put(policiesF_, name, body);
  auto starts = switchStarts(name, from, policy.release.value_or(ReleaseMode::OnPublish), now, b, change);
  if (auto p = write(std::move(b), AuditEntry{0, now, "ring-policy", "rings/" + std::string(name), actor.client,
                                              actor.token, policyDetail(body, *change)})) {
    *change = {};
    return p;
  }
  policies_[std::string(name)] = policy;
  for (auto& [key, events] : starts) events_[key] = std::move(events);
  return std::nullopt;
}

std::optional<ReleasePolicy> FleetStore::policy(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = policies_.find(name);
  if (it == policies_.end()) return std::nullopt;
  return it->second;
}

std::optional<Problem> FleetStore::removePolicy(std::string_view name, const Actor& actor, int64_t now,
                                                PolicyChange* change) {
  PolicyChange local;
  if (!change) change = &local;
  *change = {};
  std::lock_guard lock(mu_);
  auto it = policies_.find(name);
  if (it == policies_.end())
    return Problem{Errc::NotFound, "no release policy for " + std::string(name) + ": it follows the global plan"};
  db::Batch b;
  b.del(policiesF_, name);
  auto starts =
      switchStarts(name, it->second.release.value_or(ReleaseMode::OnPublish), ReleaseMode::OnPublish, now, b, change);
  if (auto p = write(std::move(b), AuditEntry{0, now, "ring-policy-delete", "rings/" + std::string(name), actor.client,
                                              actor.token, policyDetail("", *change)})) {
    *change = {};
    return p;
  }
  policies_.erase(it);
  for (auto& [key, events] : starts) events_[key] = std::move(events);
  return std::nullopt;
}

RingPlan FleetStore::planFor(std::string_view package, std::optional<ReleasePolicy>* policy) const {
  std::lock_guard lock(mu_);
  auto it = policies_.find(package);
  if (policy) *policy = it == policies_.end() ? std::nullopt : std::optional<ReleasePolicy>(it->second);
  return it == policies_.end() ? rings_ : effectivePlan(rings_, it->second);
}

std::optional<Problem> FleetStore::releaseVersion(std::string_view name, std::string_view version, int64_t published,
                                                  const RolloutEvent& e, const Actor& actor) {
  std::lock_guard lock(mu_);
  const std::string key = key2(name, version);
  auto it = events_.find(key);
  std::vector<RolloutEvent> next = it == events_.end() ? std::vector<RolloutEvent>() : it->second;
  const std::string what = std::string(version) + " of " + std::string(name);
  for (const auto& ev : next)
    if (ev.kind == RolloutEventKind::Start)
      return Problem{Errc::Exists, what + " is already released (started at " + std::to_string(ev.at) + ")"};
  auto p = policies_.find(name);
  if (p == policies_.end() || p->second.release.value_or(ReleaseMode::OnPublish) == ReleaseMode::OnPublish)
    return Problem{Errc::Exists, what + " is already released: " + std::string(name) +
                                     "'s release is on_publish, so it entered the first ring when published (at " +
                                     std::to_string(published) + ")"};
  next.push_back(e);
  db::Batch b;
  b.put(rolloutF_, key, dump(eventsJson(next)));
  if (auto pr = write(std::move(b), AuditEntry{0, e.at, "rollout-release",
                                               std::string(name) + "/" + std::string(version), actor.client,
                                               actor.token, e.reason}))
    return pr;
  events_[key] = std::move(next);
  return std::nullopt;
}

std::optional<Problem> FleetStore::addEvent(std::string_view name, std::string_view version, const RolloutEvent& e,
                                            const Actor& actor) {
  std::lock_guard lock(mu_);
  std::vector<RolloutEvent> next = events_[key2(name, version)];
  next.push_back(e);
  db::Batch b;
  b.put(rolloutF_, key2(name, version), dump(eventsJson(next)));
  if (auto p = write(std::move(b), AuditEntry{0, e.at, std::string("rollout-") + rolloutEventName(e.kind),
                                              std::string(name) + "/" + std::string(version), actor.client,
                                              actor.token, e.reason}))
    return p;
  events_[key2(name, version)] = std::move(next);
  return std::nullopt;
}

std::vector<RolloutEvent> FleetStore::events(std::string_view name, std::string_view version) const {
  std::lock_guard lock(mu_);
  auto it = events_.find(key2(name, version));
  return it == events_.end() ? std::vector<RolloutEvent>() : it->second;
}

std::vector<FleetStore::VersionRecords> FleetStore::versionRecords(std::string_view name,
                                                                   const std::vector<std::string_view>& versions) const {
  std::vector<VersionRecords> out(versions.size());
  std::string prefix(name);
  prefix += '\0';
  // Keys are name \0 version, so one package's records are contiguous.
  auto fill = [&](const auto& map, auto member) {
    for (auto it = map.lower_bound(prefix); it != map.end() && it->first.starts_with(prefix); ++it) {
      const std::string_view version = std::string_view(it->first).substr(prefix.size());
      for (size_t i = 0; i < versions.size(); ++i)
        if (versions[i] == version) out[i].*member = it->second;
    }
  };
  std::lock_guard lock(mu_);
  fill(rules_, &VersionRecords::rule);
  fill(events_, &VersionRecords::events);
  return out;
}

std::optional<Problem> FleetStore::putPin(std::string_view name, const Pin& pin, const Actor& actor, int64_t now) {
  std::lock_guard lock(mu_);
  db::Batch b;
  b.put(pinsF_, name, dump(pinJson(pin)));
  if (auto p = write(std::move(b), AuditEntry{0, now, "pin", std::string(name), actor.client, actor.token,
                                              "version " + pin.version}))
    return p;
  pins_[std::string(name)] = pin;
  return std::nullopt;
}

std::optional<Pin> FleetStore::pin(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = pins_.find(name);
  if (it == pins_.end()) return std::nullopt;
  return it->second;
}

std::optional<Problem> FleetStore::removePin(std::string_view name, const Actor& actor, int64_t now) {
  std::lock_guard lock(mu_);
  auto it = pins_.find(name);
  if (it == pins_.end()) return Problem{Errc::NotFound, "no pin for " + std::string(name)};
  db::Batch b;
  b.del(pinsF_, name);
  if (auto p = write(std::move(b), AuditEntry{0, now, "unpin", std::string(name), actor.client, actor.token, ""}))
    return p;
  pins_.erase(it);
  return std::nullopt;
}

std::optional<Problem> FleetStore::putOsTarget(std::string_view ring, const OsTarget& t, const Actor& actor,
                                               int64_t now) {
  const std::string body = dump(osTargetJson(t));
  std::lock_guard lock(mu_);
  if (std::none_of(rings_.rings.begin(), rings_.rings.end(), [&](const Ring& r) { return r.name == ring; }))
    return Problem{Errc::NotFound, "no ring " + std::string(ring) + " in the ring plan (PUT /api/v1/rings)"};
  db::Batch b;
  b.put(osTargetsF_, ring, body);
  if (auto p = write(std::move(b), AuditEntry{0, now, "os-target", "os-target/" + std::string(ring), actor.client,
                                              actor.token, body}))
    return p;
  osTargets_[std::string(ring)] = t;
  return std::nullopt;
}

std::optional<OsTarget> FleetStore::osTarget(std::string_view ring) const {
  std::lock_guard lock(mu_);
  auto it = osTargets_.find(ring);
  if (it == osTargets_.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, OsTarget, std::less<>> FleetStore::osTargets() const {
  std::lock_guard lock(mu_);
  return osTargets_;
}

std::optional<Problem> FleetStore::removeOsTarget(std::string_view ring, const Actor& actor, int64_t now) {
  std::lock_guard lock(mu_);
  auto it = osTargets_.find(ring);
  if (it == osTargets_.end()) return Problem{Errc::NotFound, "no OS target for ring " + std::string(ring)};
  db::Batch b;
  b.del(osTargetsF_, ring);
  if (auto p = write(std::move(b), AuditEntry{0, now, "os-target-delete", "os-target/" + std::string(ring),
                                              actor.client, actor.token, ""}))
    return p;
  osTargets_.erase(it);
  return std::nullopt;
}

std::shared_ptr<const ReleaseIndex> FleetStore::releaseIndex() const {
  std::lock_guard lock(indexMu_);
  const uint64_t catalogGeneration = catalog_->generation(), fleetGeneration = generation();
  if (!index_ || index_->catalogGeneration != catalogGeneration || index_->fleetGeneration != fleetGeneration)
    index_ = buildReleaseIndex(*catalog_, *this, catalogGeneration, fleetGeneration);
  return index_;
}

std::shared_ptr<const std::vector<Device>> FleetStore::deviceSnapshot() const {
  std::lock_guard lock(snapshotMu_);
  const uint64_t g = generation();
  if (!snapshot_ || snapshotGeneration_ != g) {
    auto all = std::make_shared<std::vector<Device>>();
    {
      std::lock_guard viewLock(mu_);
      all->reserve(devices_.size());
      for (const auto& [serial, d] : devices_) all->push_back(d);
    }
    snapshot_ = std::move(all);
    snapshotGeneration_ = g;
  }
  return snapshot_;
}

}  // namespace orchard::catalog
