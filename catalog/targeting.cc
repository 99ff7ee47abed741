// Targeting rules (targeting.h): the JSON form, a strict RFC 3339 reader and
// writer for the deadline, and the check of one device against a rule.
// Hard parts: the calendar arithmetic is done by hand (no libc time zone
// state, no locale; days counted from year 0 of the proleptic Gregorian
// calendar so every year 0000-9999 works the same way), the order of the
// checks is part of the contract (the helpdesk hears the first reason,
// always the same one), and a detail names both what the rule wants and
// what the Mac has, bounded when lists are long.
#include "catalog/targeting.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "catalog/device.h"
#include "common/ascii.h"
#include "catalog/utf8.h"
#include "catalog/version.h"

namespace orchard::catalog {
namespace {

// ---- calendar ----------------------------------------------------------

constexpr int64_t kSecsPerDay = 86400;

constexpr bool isLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Days from 0000-01-01 to y-01-01, y >= 0: 365 a year plus one per leap
// year in [0, y) (multiples of 4, less those of 100, plus those of 400).
constexpr int64_t daysBeforeYear(int64_t y) { return 365 * y + (y + 3) / 4 - (y + 99) / 100 + (y + 399) / 400; }

constexpr int64_t kEpochDays = daysBeforeYear(1970);
static_assert(kEpochDays == 719528);

constexpr int kMonthDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

int monthLength(int64_t y, int m) { return m == 2 && isLeap(y) ? 29 : kMonthDays[m - 1]; }

// Days since 1970-01-01 of a valid date.
int64_t daysSinceEpoch(int64_t y, int m, int d) {
  int64_t days = daysBeforeYear(y) - kEpochDays;
  for (int k = 1; k < m; ++k) days += monthLength(y, k);
  return days + d - 1;
}

// ---- JSON --------------------------------------------------------------

std::optional<std::string> readList(const nlohmann::json& v, const std::string& key, std::vector<std::string>* out) {
  if (!v.is_array()) return key + ": must be an array of strings";
  if (v.size() > kMaxRuleListItems)
    return key + ": " + std::to_string(v.size()) + " items (at most " + std::to_string(kMaxRuleListItems) + ")";
  for (const auto& item : v) {
    if (!item.is_string()) return key + ": must be an array of strings";
    std::string s = item.get<std::string>();
    if (s.empty()) return key + ": an item is empty";
    if (auto p = textProblem(s, kMaxRuleItemBytes)) return key + ": " + *p;
    if (std::find(out->begin(), out->end(), s) != out->end()) return key + ": repeats " + printable(s);
    out->push_back(std::move(s));
  }
  return std::nullopt;
}

std::optional<std::string> readOs(const nlohmann::json& v, const std::string& key, std::string* out) {
  if (!v.is_string()) return key + ": must be a string like \"14.0\"";
  *out = v.get<std::string>();
  if (out->empty()) return key + ": is empty (leave it out for no limit)";
  if (auto p = osVersionProblem(*out)) return key + ": " + *p;
  return std::nullopt;
}

std::optional<std::string> readField(TargetRule* r, const std::string& key, const nlohmann::json& v) {
  if (key == "channels") return readList(v, key, &r->channels);
  if (key == "groups") return readList(v, key, &r->groups);
  if (key == "exclude_groups") return readList(v, key, &r->excludeGroups);
  if (key == "models") return readList(v, key, &r->models);
  if (key == "arch") {
    if (auto p = readList(v, key, &r->archs)) return p;
    for (const std::string& a : r->archs)
      if (a != "arm64" && a != "x86_64") return "arch: " + printable(a) + " is not arm64 or x86_64";
    return std::nullopt;
  }
  if (key == "min_os") return readOs(v, key, &r->minOs);
  if (key == "max_os") return readOs(v, key, &r->maxOs);
  if (key == "rollout_percent") {
    if (!v.is_number()) return std::string("rollout_percent: must be a number from 0 to 100");
    const double p = v.get<double>();
    if (!(p >= 0 && p <= 100)) return std::string("rollout_percent: must be from 0 to 100");
    r->rolloutPercent = p;
    return std::nullopt;
  }
  if (key == "install") {
    if (!v.is_string() || (v != "required" && v != "optional"))
      return std::string("install: must be \"required\" or \"optional\"");
    r->install = v.get<std::string>();
    return std::nullopt;
  }
  if (key == "deadline") {
    if (!v.is_string()) return std::string("deadline: must be an RFC 3339 string like \"2026-05-01T09:00:00Z\"");
    r->deadline = parseRfc3339(v.get<std::string>());
    if (!r->deadline) return std::string("deadline: is not an RFC 3339 date-time like \"2026-05-01T09:00:00Z\"");
    return std::nullopt;
  }
  return printable(key) +
         ": unknown targeting field (known: channels, groups, exclude_groups, min_os, max_os, arch, models, "
         "rollout_percent, install, deadline)";
}

// ---- checks ------------------------------------------------------------

bool contains(const std::vector<std::string>& v, std::string_view s) { return std::find(v.begin(), v.end(), s) != v.end(); }

// "finance, it and 3 more": at most `shown` names.
std::string names(const std::vector<std::string>& v, size_t shown = 5) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < shown; ++i) out += (i ? ", " : "") + v[i];
  if (v.size() > shown) out += " and " + std::to_string(v.size() - shown) + " more";
  return out;
}

// "group finance" / "groups finance, it".
std::string labelled(std::string_view what, const std::vector<std::string>& v) {
  return std::string(what) + (v.size() == 1 ? " " : "s ") + names(v);
}

std::string osOfMac(const Device& d) {
  return d.osVersion.empty() ? "this Mac's macOS version is not known" : "this Mac runs " + d.osVersion;
}



}  // namespace

std::optional<int64_t> parseRfc3339(std::string_view s) {
  int y, mo, d, h, mi, se;
  if (!asciiDigits(s, 0, 4, &y) || s.size() < 20 || s[4] != '-' || !asciiDigits(s, 5, 2, &mo) || s[7] != '-' ||
      !asciiDigits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !asciiDigits(s, 11, 2, &h) || s[13] != ':' ||
      !asciiDigits(s, 14, 2, &mi) || s[16] != ':' || !asciiDigits(s, 17, 2, &se))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > monthLength(y, mo) || h > 23 || mi > 59 || se > 60) return std::nullopt;
  size_t i = 19;
  if (s[i] == '.') {
    const size_t start = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return std::nullopt;
  }
  if (i >= s.size()) return std::nullopt;
  int64_t offset = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    ++i;
  } else if (s[i] == '+' || s[i] == '-') {
    int oh, om;
    if (!asciiDigits(s, i + 1, 2, &oh) || i + 3 >= s.size() || s[i + 3] != ':' || !asciiDigits(s, i + 4, 2, &om) ||
        oh > 23 || om > 59)
      return std::nullopt;
    offset = (s[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  return daysSinceEpoch(y, mo, d) * kSecsPerDay + h * 3600 + mi * 60 + se - offset;
}

std::optional<std::string> formatRfc3339(int64_t t) {
  constexpr int64_t kMin = -kEpochDays * kSecsPerDay;
  constexpr int64_t kMax = (daysBeforeYear(10000) - kEpochDays) * kSecsPerDay - 1;
  if (t < kMin || t > kMax) return std::nullopt;
  int64_t days = (t - kMin) / kSecsPerDay;  // since 0000-01-01, t - kMin >= 0
  const int64_t secs = (t - kMin) % kSecsPerDay;
  int64_t y = days * 400 / 146097;  // 146097 days in 400 years: close, then exact
  while (daysBeforeYear(y) > days) --y;
  while (daysBeforeYear(y + 1) <= days) ++y;
  days -= daysBeforeYear(y);
  int m = 1;
  while (days >= monthLength(y, m)) days -= monthLength(y, m++);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", static_cast<int>(y), m, static_cast<int>(days + 1),
                static_cast<int>(secs / 3600), static_cast<int>(secs / 60 % 60), static_cast<int>(secs % 60));
  return std::string(buf);
}

std::variant<TargetRule, std::string> ruleFromJson(const nlohmann::json& body) {
  if (!body.is_object()) return std::string("targeting: must be a JSON object");
  TargetRule r;
  for (const auto& [key, value] : body.items()) {
    if (value.is_null()) continue;
    if (auto p = readField(&r, key, value)) return *p;
  }
  if (!r.minOs.empty() && !r.maxOs.empty() && compareVersions(r.minOs, r.maxOs) > 0)
    return "min_os: " + r.minOs + " is above max_os " + r.maxOs;
  return r;
}

void toJson(nlohmann::json& out, const TargetRule& r) {
  out = nlohmann::json::object();
  const std::pair<const char*, const std::vector<std::string>*> lists[] = {
      {"channels", &r.channels}, {"groups", &r.groups}, {"exclude_groups", &r.excludeGroups},
      {"arch", &r.archs},        {"models", &r.models}};
  for (const auto& [key, v] : lists)
    if (!v->empty()) out[key] = *v;
  if (!r.minOs.empty()) out["min_os"] = r.minOs;
  if (!r.maxOs.empty()) out["max_os"] = r.maxOs;
  if (r.rolloutPercent) out["rollout_percent"] = *r.rolloutPercent;
  out["install"] = r.install;
  if (r.deadline) {
    // A deadline outside years 0000-9999 (ruleFromJson never makes one) is
    // shown as its Unix seconds rather than dropped.
    if (auto s = formatRfc3339(*r.deadline)) out["deadline"] = *s;
    else out["deadline"] = *r.deadline;
  }
}

const char* whyNotCode(WhyNot w) {
  switch (w) {
    case WhyNot::NotInGroup: return "not_in_group";
    case WhyNot::ExcludedGroup: return "excluded_group";
    case WhyNot::OsTooOld: return "os_too_old";
    case WhyNot::OsTooNew: return "os_too_new";
    case WhyNot::Arch: return "arch";
    case WhyNot::Model: return "model";
    case WhyNot::Channel: return "channel";
    case WhyNot::NotYetInRing: return "not_yet_in_ring";
    case WhyNot::Halted: return "halted";
    case WhyNot::Paused: return "paused";
    case WhyNot::NoVersion: return "no_version";
  }
  return "unknown";
}

std::optional<WhyNot> ruleWhyNot(const TargetRule& rule, const Device& d) {
  if (!rule.channels.empty() && !contains(rule.channels, d.channel)) return WhyNot::Channel;
  for (const std::string& g : d.groups)
    if (contains(rule.excludeGroups, g)) return WhyNot::ExcludedGroup;
  if (!rule.groups.empty() &&
      std::none_of(d.groups.begin(), d.groups.end(), [&](const std::string& g) { return contains(rule.groups, g); }))
    return WhyNot::NotInGroup;
  if (!rule.archs.empty() && !contains(rule.archs, d.arch)) return WhyNot::Arch;
  if (!rule.models.empty() && !contains(rule.models, d.model)) return WhyNot::Model;
  if (!rule.minOs.empty() && (d.osVersion.empty() || compareVersions(d.osVersion, rule.minOs) < 0))
    return WhyNot::OsTooOld;
  if (!rule.maxOs.empty() && (d.osVersion.empty() || compareVersions(d.osVersion, rule.maxOs) > 0))
    return WhyNot::OsTooNew;
  return std::nullopt;
}

std::string ruleWhyNotDetail(const TargetRule& rule, const Device& d, WhyNot why) {
  switch (why) {
    case WhyNot::Channel:
      return "offered on " + labelled("channel", rule.channels) + "; this Mac follows " +
             (d.channel.empty() ? "no channel" : d.channel);
    case WhyNot::ExcludedGroup:
      for (const std::string& g : d.groups)
        if (contains(rule.excludeGroups, g)) return "not for group " + g + "; this Mac is in " + g;
      return "excluded by group";
    case WhyNot::NotInGroup:
      return "for " + labelled("group", rule.groups) + " only; " +
             (d.groups.empty() ? "this Mac is in no group" : "this Mac is in " + names(d.groups));
    case WhyNot::Arch:
      return "built for " + names(rule.archs) + "; " +
             (d.arch.empty() ? "this Mac's architecture is not known" : "this Mac is " + d.arch);
    case WhyNot::Model:
      return "for " + labelled("model", rule.models) + "; " +
             (d.model.empty() ? "this Mac's model is not known" : "this Mac is a " + d.model);
    case WhyNot::OsTooOld: return "needs macOS " + rule.minOs + " or later; " + osOfMac(d);
    case WhyNot::OsTooNew: return "needs macOS " + rule.maxOs + " or earlier; " + osOfMac(d);
    default: return whyNotCode(why);
  }
}

std::optional<std::pair<WhyNot, std::string>> checkRule(const TargetRule& rule, const Device& d) {
  auto why = ruleWhyNot(rule, d);
  if (!why) return std::nullopt;
  return std::pair{*why, ruleWhyNotDetail(rule, d, *why)};
}

}  // namespace orchard::catalog
