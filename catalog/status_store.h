// StatusStore: each device's delivery record (health.h DeviceStatus: its
// packages' latest states, softwareupdate items, the last report verbatim
// and its time) in its own column family, with an in-memory view of
// everything but the verbatim reports for the health counts. No sockets;
// the handlers write off the loops (one put per report; reports are not
// admin changes, so they get no audit entry; an auto-halt they cause does,
// through FleetStore::addEvent).
//
// Family:
//   catalog.status  serial -> deviceStatusToJson (health.h)
// A record that does not parse at open is logged and left out.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/health.h"
#include "common/result.h"
#include "db/database.h"

namespace orchard::catalog {

inline constexpr const char* kStatusFamily = "catalog.status";
std::vector<std::string> statusFamilies();  // the families open() needs, for the database's open

class StatusStore {
 public:
  static Result<std::unique_ptr<StatusStore>> open(std::shared_ptr<db::Database> database);

  // Folds `report` into the device's record at `now` (mergeReport) and
  // writes it; the view changes only after the write. Any thread.
  std::optional<Problem> record(std::string_view serial, const StatusReport& report, int64_t now,
                                const std::function<std::optional<std::string>(const PackageStatus&)>& resolve);
  // The device's record with its last report (read from the database; off the loops).
  Result<std::optional<DeviceStatus>> load(std::string_view serial) const;
  // Every record without its verbatim report, by serial.
  std::map<std::string, DeviceStatus, std::less<>> view() const;
  // fn(view) under the store's lock, without the copy view() makes: the
  // health counts read one record per device. fn must not call back into
  // this store (reports wait while it runs: keep it to counting).
  void visit(const std::function<void(const std::map<std::string, DeviceStatus, std::less<>>&)>& fn) const;

 private:
  explicit StatusStore(std::shared_ptr<db::Database> database);
  std::shared_ptr<db::Database> db_;
  db::Family statusF_;
  mutable std::mutex mu_;
  std::map<std::string, DeviceStatus, std::less<>> view_;  // lastReport left null
};

}  // namespace orchard::catalog
