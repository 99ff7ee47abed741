// StatusStore (see status_store.h): one record per device, merged in
// memory and written whole; the verbatim report is kept only on disk.
#include "catalog/status_store.h"

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace orchard::catalog {

using nlohmann::json;

std::vector<std::string> statusFamilies() { return {kStatusFamily}; }

StatusStore::StatusStore(std::shared_ptr<db::Database> database) : db_(std::move(database)) {
  statusF_ = db_->family(kStatusFamily);
}

Result<std::unique_ptr<StatusStore>> StatusStore::open(std::shared_ptr<db::Database> database) {
  if (!database->family(kStatusFamily).valid())
    return Error{Errc::Invalid, 0, "status open: database without the catalog.status family"};
  std::unique_ptr<StatusStore> s(new StatusStore(std::move(database)));
  size_t bad = 0;
  auto r = s->db_->forEach(s->statusF_, [&](std::string_view k, std::string_view v) {
    auto st = deviceStatusFromJson(json::parse(v, nullptr, false));
    if (!st) {
      ++bad;
      return;
    }
    st->lastReport = nullptr;
    s->view_[std::string(k)] = std::move(*st);
  });
  if (!r) return r.error();
  if (bad) OLOG_WARN("status: %zu device records do not parse: left out", bad);
  return s;
}

std::optional<Problem> StatusStore::record(std::string_view serial, const StatusReport& report, int64_t now,
                                           const std::function<std::optional<std::string>(const PackageStatus&)>& resolve) {
  std::lock_guard lock(mu_);
  DeviceStatus next;
  if (auto it = view_.find(serial); it != view_.end()) next = it->second;
  mergeReport(next, report, now, resolve);
  const std::string value = deviceStatusToJson(next).dump(-1, ' ', false, json::error_handler_t::replace);
  if (auto w = db_->put(statusF_, serial, value); !w) return Problem{Errc::Io, "status write: " + w.error().message()};
  next.lastReport = nullptr;
  view_[std::string(serial)] = std::move(next);
  return std::nullopt;
}

Result<std::optional<DeviceStatus>> StatusStore::load(std::string_view serial) const {
  auto v = db_->get(statusF_, serial);
  if (!v) return v.error();
  if (!v.value()) return std::optional<DeviceStatus>();
  return deviceStatusFromJson(json::parse(*v.value(), nullptr, false));
}

std::map<std::string, DeviceStatus, std::less<>> StatusStore::view() const {
  std::lock_guard lock(mu_);
  return view_;
}

void StatusStore::visit(const std::function<void(const std::map<std::string, DeviceStatus, std::less<>>&)>& fn) const {
  std::lock_guard lock(mu_);
  fn(view_);
}

}  // namespace orchard::catalog
