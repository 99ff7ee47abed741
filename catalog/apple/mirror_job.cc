#include "catalog/apple/mirror_job.h"

#include <nlohmann/json.hpp>

#include "catalog/apple/sucatalog.h"
#include "common/log.h"
#include "common/time_window.h"

namespace orchard::catalog::apple {

using nlohmann::json;

namespace {

constexpr size_t kMaxItems = 100'000;
// A URL the box can fetch for itself: the rules of the content-cache form.
bool validUrl(const std::string& u) { return contentCacheUrl("", u).has_value(); }

template <typename T>
bool take(const json& j, const char* k, T* out) {
  auto it = j.find(k);
  if (it == j.end()) return true;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return false;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return false;
  } else {
    if (!it->is_number_integer() && !it->is_number_unsigned()) return false;
  }
  *out = it->get<T>();
  return true;
}

}  // namespace

std::vector<std::string> appleFamilies() { return {kMirrorsFamily, kPrewarmFamily}; }

const char* jobStateName(JobState s) {
  switch (s) {
    case JobState::Queued: return "queued";
    case JobState::Running: return "running";
    case JobState::Waiting: return "waiting";
    case JobState::Done: return "done";
    case JobState::Failed: return "failed";
  }
  return "queued";
}

std::optional<JobState> jobStateFrom(std::string_view s) {
  for (JobState st : {JobState::Queued, JobState::Running, JobState::Waiting, JobState::Done, JobState::Failed})
    if (s == jobStateName(st)) return st;
  return std::nullopt;
}

std::string toJson(const MirrorJob& job) {
  json items = json::array();
  for (const MirrorItem& i : job.items) {
    items.push_back({{"url", i.url},
                     {"size", i.size},
                     {"integrity_url", i.integrityUrl},
                     {"state", jobStateName(i.state)},
                     {"attempts", i.attempts},
                     {"reason", i.reason},
                     {"sha256", i.sha256}});
  }
  json j = {{"id", job.id},           {"kind", job.kind},           {"state", jobStateName(job.state)},
            {"reason", job.reason},   {"created_at", job.createdAt}, {"finished_at", job.finishedAt},
            {"items", std::move(items)}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<MirrorJob> mirrorJobFromJson(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  const Error bad{Errc::Corrupt, 0, "mirror job record does not parse"};
  if (!j.is_object()) return bad;
  MirrorJob job;
  std::string state;
  if (!take(j, "id", &job.id) || !take(j, "kind", &job.kind) || !take(j, "state", &state) ||
      !take(j, "reason", &job.reason) || !take(j, "created_at", &job.createdAt) ||
      !take(j, "finished_at", &job.finishedAt))
    return bad;
  auto st = jobStateFrom(state);
  if (!st || job.id.empty()) return bad;
  job.state = *st;
  auto it = j.find("items");
  if (it == j.end() || !it->is_array() || it->size() > kMaxItems) return bad;
  for (const json& e : *it) {
    if (!e.is_object()) return bad;
    MirrorItem item;
    std::string s;
    if (!take(e, "url", &item.url) || !take(e, "size", &item.size) || !take(e, "integrity_url", &item.integrityUrl) ||
        !take(e, "state", &s) || !take(e, "attempts", &item.attempts) || !take(e, "reason", &item.reason) ||
        !take(e, "sha256", &item.sha256))
      return bad;
    auto ist = jobStateFrom(s);
    if (!ist || item.url.empty()) return bad;
    item.state = *ist;
    job.items.push_back(std::move(item));
  }
  return job;
}

std::string toJson(const PrewarmList& list) {
  json j = {{"name", list.name},         {"urls", list.urls},
            {"products", list.products}, {"window", list.window},
            {"interval_ms", list.intervalMs}, {"updated_at", list.updatedAt}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<PrewarmList> prewarmFromJson(std::string_view text, std::string* why) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) {
    *why = "the body is not a JSON object";
    return std::nullopt;
  }
  PrewarmList l;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k != "urls" && k != "products" && k != "window" && k != "interval" && k != "interval_ms" && k != "name" &&
        k != "updated_at") {
      *why = "unknown field \"" + k + "\"";
      return std::nullopt;
    }
  }
  auto strings = [&](const char* key, std::vector<std::string>* out, bool urls) {
    auto it = j.find(key);
    if (it == j.end()) return true;
    if (!it->is_array() || it->size() > kMaxItems) {
      *why = std::string(key) + " must be an array of strings (at most 100000)";
      return false;
    }
    for (const json& e : *it) {
      if (!e.is_string() || e.get_ref<const std::string&>().empty()) {
        *why = std::string(key) + " must be an array of non-empty strings";
        return false;
      }
      const std::string& s = e.get_ref<const std::string&>();
      if (urls && !validUrl(s)) {
        *why = "not an absolute http(s) URL: " + s.substr(0, 200);
        return false;
      }
      if (!urls && (s.size() > 64 || s.find_first_of(" /?#\\\"") != std::string::npos)) {
        *why = "not a product id: " + s.substr(0, 64);
        return false;
      }
      out->push_back(s);
    }
    return true;
  };
  if (!strings("urls", &l.urls, true) || !strings("products", &l.products, false)) return std::nullopt;
  if (l.urls.empty() && l.products.empty()) {
    *why = "give urls, products or both";
    return std::nullopt;
  }
  if (!take(j, "name", &l.name) || !take(j, "updated_at", &l.updatedAt)) {
    *why = "name and updated_at must be a string and an integer";
    return std::nullopt;
  }
  if (auto it = j.find("window"); it != j.end()) {
    if (!it->is_string() || (!it->get_ref<const std::string&>().empty() &&
                             !TimeWindow::parse(it->get_ref<const std::string&>()))) {
      *why = "window must be \"HH:MM-HH:MM\" (or \"\" for apple.mirror_window)";
      return std::nullopt;
    }
    l.window = it->get<std::string>();
  }
  if (auto it = j.find("interval_ms"); it != j.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1000) {
      *why = "interval_ms must be an integer >= 1000";
      return std::nullopt;
    }
    l.intervalMs = it->get<int64_t>();
  }
  if (auto it = j.find("interval"); it != j.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1) {
      *why = "interval must be a whole number of seconds >= 1";
      return std::nullopt;
    }
    l.intervalMs = it->get<int64_t>() * 1000;
  }
  return l;
}

AppleRecords::AppleRecords(std::shared_ptr<db::Database> db)
    : db_(std::move(db)), jobsF_(db_->family(kMirrorsFamily)), prewarmF_(db_->family(kPrewarmFamily)) {}

Result<void> AppleRecords::putJob(const MirrorJob& job) {
  db::Batch b;
  b.put(jobsF_, job.id, toJson(job));
  return db_->write(std::move(b), true);
}

Result<void> AppleRecords::removeJob(std::string_view id) {
  db::Batch b;
  b.del(jobsF_, id);
  return db_->write(std::move(b), true);
}

std::vector<MirrorJob> AppleRecords::jobs() const {
  std::vector<MirrorJob> out;
  auto r = db_->forEach(jobsF_, [&](std::string_view key, std::string_view value) {
    auto j = mirrorJobFromJson(value);
    if (!j || j->id != key) {
      OLOG_WARN("apple: mirror job record %.*s does not parse: skipped", static_cast<int>(key.size()), key.data());
      return;
    }
    out.push_back(std::move(j).value());
  });
  if (!r) OLOG_WARN("apple: cannot read the mirror job records: %s", r.error().message().c_str());
  return out;
}

Result<void> AppleRecords::putPrewarm(const PrewarmList& list) {
  db::Batch b;
  b.put(prewarmF_, list.name, toJson(list));
  return db_->write(std::move(b), true);
}

Result<void> AppleRecords::removePrewarm(std::string_view name) {
  db::Batch b;
  b.del(prewarmF_, name);
  return db_->write(std::move(b), true);
}

std::vector<PrewarmList> AppleRecords::prewarmLists() const {
  std::vector<PrewarmList> out;
  auto r = db_->forEach(prewarmF_, [&](std::string_view key, std::string_view value) {
    std::string why;
    auto l = prewarmFromJson(value, &why);
    if (!l || l->name != key) {
      OLOG_WARN("apple: prewarm record %.*s does not parse: skipped", static_cast<int>(key.size()), key.data());
      return;
    }
    out.push_back(std::move(*l));
  });
  if (!r) OLOG_WARN("apple: cannot read the prewarm records: %s", r.error().message().c_str());
  return out;
}

}  // namespace orchard::catalog::apple
