// The change feed's JSON forms and the branch's decisions (see
// change_feed.h). Hard parts: everything here parses what a hub (or
// something posing as one) sent, so every field is checked for type and
// size before use and nothing is sized by a declared count.
#include "catalog/change_feed.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace orchard::catalog {

using nlohmann::json;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool isSha(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

const std::vector<std::string>& replicatedFamilies() {
  static const std::vector<std::string> kFamilies = {
      "catalog.versions", "catalog.rules", "catalog.rings", "catalog.rollout",
      "catalog.pins",     "catalog.os_targets", "catalog.release_policies"};
  return kFamilies;
}

bool isReplicatedFamily(std::string_view family) {
  const auto& fs = replicatedFamilies();
  return std::find(fs.begin(), fs.end(), family) != fs.end();
}

std::string hexEncode(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0xf];
  }
  return out;
}

std::optional<std::string> hexDecode(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hexValue(hex[i]), lo = hexValue(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

json changeJson(const Change& c) {
  json ops = json::array();
  for (const ChangeOp& op : c.ops) {
    json o{{"f", op.family}, {"k", hexEncode(op.key)}};
    if (op.value) o["v"] = *op.value;
    else o["d"] = true;
    ops.push_back(std::move(o));
  }
  return json{{"seq", c.seq}, {"time", c.time}, {"ops", std::move(ops)}};
}

std::string changeText(const Change& c) { return dump(changeJson(c)); }

std::variant<Change, std::string> changeFromJson(const json& j) {
  if (!j.is_object()) return std::string("a change must be a JSON object");
  Change c;
  bool haveSeq = false, haveOps = false;
  for (const auto& [k, v] : j.items()) {
    if (k == "seq") {
      if (!v.is_number_unsigned() || v.get<uint64_t>() == 0) return std::string("seq: a positive integer");
      c.seq = v.get<uint64_t>();
      haveSeq = true;
    } else if (k == "time") {
      if (!v.is_number_integer()) return std::string("time: an integer (Unix seconds)");
      c.time = v.get<int64_t>();
    } else if (k == "ops") {
      if (!v.is_array()) return std::string("ops: a list");
      if (v.size() > kMaxOpsPerChange) return "ops: at most " + std::to_string(kMaxOpsPerChange) + " per change";
      haveOps = true;
      for (const auto& o : v) {
        if (!o.is_object()) return std::string("ops: each op is an object");
        ChangeOp op;
        bool haveF = false, haveK = false, del = false, haveV = false;
        for (const auto& [ok, ov] : o.items()) {
          if (ok == "f") {
            if (!ov.is_string() || !isReplicatedFamily(ov.get_ref<const std::string&>()))
              return std::string("ops.f: not a replicated family");
            op.family = ov.get<std::string>();
            haveF = true;
          } else if (ok == "k") {
            if (!ov.is_string() || ov.get_ref<const std::string&>().size() > 2 * kMaxKeyBytes)
              return std::string("ops.k: a hex key of at most ") + std::to_string(kMaxKeyBytes) + " bytes";
            auto key = hexDecode(ov.get_ref<const std::string&>());
            if (!key || key->empty()) return std::string("ops.k: a non-empty hex key");
            op.key = std::move(*key);
            haveK = true;
          } else if (ok == "v") {
            if (!ov.is_string() || ov.get_ref<const std::string&>().size() > kMaxValueBytes)
              return std::string("ops.v: a string of at most ") + std::to_string(kMaxValueBytes) + " bytes";
            op.value = ov.get<std::string>();
            haveV = true;
          } else if (ok == "d") {
            if (!ov.is_boolean() || !ov.get<bool>()) return std::string("ops.d: true");
            del = true;
          } else {
            return "ops: unknown field " + ok.substr(0, 40);
          }
        }
        if (!haveF || !haveK) return std::string("ops: each op needs f and k");
        if (haveV == del) return std::string("ops: each op has either v or d");
        c.ops.push_back(std::move(op));
      }
    } else {
      return "unknown field " + k.substr(0, 40);
    }
  }
  if (!haveSeq || !haveOps) return std::string("a change needs seq and ops");
  return c;
}

std::variant<ChangePage, std::string> parseChangePage(std::string_view body, uint64_t since) {
  if (body.size() > kMaxPageBytes) return std::string("the page is larger than the limit");
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::string("the answer is not a JSON object");
  ChangePage page;
  auto last = j.find("last");
  if (last == j.end() || !last->is_number_unsigned()) return std::string("last: a sequence number");
  page.last = last->get<uint64_t>();
  if (auto more = j.find("more"); more != j.end()) {
    if (!more->is_boolean()) return std::string("more: true or false");
    page.more = more->get<bool>();
  }
  auto changes = j.find("changes");
  if (changes == j.end() || !changes->is_array()) return std::string("changes: a list");
  if (changes->size() > kMaxChangesPerPage)
    return "changes: at most " + std::to_string(kMaxChangesPerPage) + " per page";
  uint64_t prev = since;
  for (const auto& cj : *changes) {
    auto c = changeFromJson(cj);
    if (auto* why = std::get_if<std::string>(&c)) return "a change: " + *why;
    Change& ch = std::get<Change>(c);
    if (ch.seq <= prev) return "changes out of order (" + std::to_string(ch.seq) + " after " + std::to_string(prev) + ")";
    if (ch.seq > page.last) return std::string("a change past the feed's last");
    prev = ch.seq;
    page.changes.push_back(std::move(ch));
  }
  return page;
}

std::vector<Change> baselineChanges(const std::vector<ChangeOp>& records) {
  std::vector<Change> out;
  size_t bytes = 0;
  for (const ChangeOp& op : records) {
    const size_t size = op.key.size() * 2 + (op.value ? op.value->size() : 0) + op.family.size() + 16;
    if (out.empty() || (bytes + size > kBaselineChangeBytes && !out.back().ops.empty()) ||
        out.back().ops.size() >= kMaxOpsPerChange) {
      out.emplace_back();
      bytes = 0;
    }
    out.back().ops.push_back(op);
    bytes += size;
  }
  return out;
}

const char* versionStepName(VersionStep s) {
  switch (s) {
    case VersionStep::UpdateVisible: return "update-visible";
    case VersionStep::Pend: return "pend";
    case VersionStep::PendAndHide: return "pend-and-hide";
    case VersionStep::Remove: return "remove";
  }
  return "?";
}

VersionStep decideVersion(const VersionHeld& held, const std::optional<std::string>& sha) {
  if (!sha) return VersionStep::Remove;
  if (held.visibleSha) return *held.visibleSha == *sha ? VersionStep::UpdateVisible : VersionStep::PendAndHide;
  return VersionStep::Pend;
}

std::optional<RecordBytes> recordBytes(std::string_view recordJson) {
  json j = json::parse(recordJson, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  RecordBytes r;
  auto str = [&](const char* k, std::string* out) {
    auto it = j.find(k);
    if (it == j.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
  };
  if (!str("name", &r.name) || !str("version", &r.version) || !str("filename", &r.filename) ||
      !str("sha256", &r.sha256) || !isSha(r.sha256))
    return std::nullopt;
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_unsigned()) return std::nullopt;
  r.size = size->get<uint64_t>();
  return r;
}

std::string followStateText(const FollowState& s) { return dump(json{{"hub", s.hub}, {"applied", s.applied}}); }

std::optional<FollowState> followStateFromText(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("hub") || !j["hub"].is_string() || !j.contains("applied") ||
      !j["applied"].is_number_unsigned())
    return std::nullopt;
  return FollowState{j["hub"].get<std::string>(), j["applied"].get<uint64_t>()};
}

uint64_t resumeFrom(const std::optional<FollowState>& state, std::string_view hub, std::optional<uint64_t> hubLast) {
  if (!state || state->hub != hub) return 0;
  if (hubLast && *hubLast < state->applied) return 0;
  return state->applied;
}

bool wantedHere(std::string_view package, int64_t published, const std::vector<Ring>& rings,
                int64_t promoteAfterSecs, bool onPublish, std::vector<RolloutEvent> events,
                const std::vector<Device>& devices, int64_t now) {
  const bool explicitStart = std::any_of(events.begin(), events.end(),
                                         [](const RolloutEvent& e) { return e.kind == RolloutEventKind::Start; });
  if (!explicitStart && onPublish) events.insert(events.begin(), RolloutEvent{published, RolloutEventKind::Start, ""});
  const RolloutView view = viewAt(rings, events, now, promoteAfterSecs);
  if (!view.started || view.rolledBack) return false;
  return std::any_of(devices.begin(), devices.end(),
                     [&](const Device& d) { return inRing(d, rings, view.ring, package); });
}

}  // namespace orchard::catalog
