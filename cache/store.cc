// Store: opening a store (the public entry points of store.h); the
// FileStore that implements it lives in file_store*.cc (file_store.h names
// the parts).
//
// Hard parts: every failure at start names the path it concerns in the log
// (an operator reads it in the journal), and an index that does not open
// says how to recover; the database may be opened by the caller (the
// server, which shares it with other concerns) or here.
#include "cache/store.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

#include "cache/file_store.h"
#include "cache/file_util.h"
#include "cache/index.h"
#include "common/log.h"

namespace orchard::cache {

namespace {

Result<void> makeStoreDir(const std::string& dir, const char* sub) {
  std::string failed;
  if (Result<void> r = makeDirs(dir + sub, &failed); !r) {
    OLOG_ERROR("store: cannot create directory %s: %s (storage.dir is %s)", failed.c_str(),
               r.error().message().c_str(), dir.c_str());
    return Error{r.error().code, r.error().sys, "store open: cannot create a storage directory (the log names it)"};
  }
  return ok();
}

}  // namespace

Result<std::shared_ptr<db::Database>> openStoreDatabase(const std::string& storageDir,
                                                       const std::vector<std::string>& extraFamilies) {
  if (storageDir.empty()) return Error{Errc::Invalid, 0, "store open: empty dir"};
  if (Result<void> r = makeStoreDir(storageDir, ""); !r) return r.error();
  const std::string indexPath = storageDir + "/index";
  std::vector<std::string> families = {kCacheFamily, kSummaryFamily};
  families.insert(families.end(), extraFamilies.begin(), extraFamilies.end());
  Result<std::unique_ptr<db::Database>> database = db::Database::open(indexPath, families);
  if (!database) {
    OLOG_ERROR("store: cannot open the index %s: %s. To recover, stop orchardd and either run "
               "`orchardd --repair-index` (with the same --config) to salvage it, or move %s aside: orchardd then "
               "starts with an empty index and the start-up reconciliation removes the object files no record "
               "names (the cache refills from the origins)",
               indexPath.c_str(), database.error().message().c_str(), indexPath.c_str());
    return Error{database.error().code, database.error().sys,
                 "store open: the index (storage.dir/index) is corrupt or unreadable; run orchardd --repair-index or "
                 "move it aside (the log says more)"};
  }
  return std::shared_ptr<db::Database>(std::move(database).value());
}

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options, std::shared_ptr<db::Database> database) {
  if (options.dir.empty()) return Error{Errc::Invalid, 0, "store open: empty dir"};
  for (const char* sub : {"", "/objects", "/tmp"}) {
    if (Result<void> r = makeStoreDir(options.dir, sub); !r) return r.error();
  }
  // objects/00 .. objects/ff exist from the start: no mkdir on a miss.
  for (int i = 0; i < 256; ++i) {
    char sub[16];
    std::snprintf(sub, sizeof sub, "/objects/%02x", i);
    if (::mkdir((options.dir + sub).c_str(), 0755) != 0 && errno != EEXIST) {
      int err = errno;
      OLOG_ERROR("store: cannot create directory %s%s: %s", options.dir.c_str(), sub,
                 errnoError(err, "mkdir").message().c_str());
      return errnoError(err, "store open: mkdir objects/xx (the log names it)");
    }
  }
  Result<uint64_t> cleared = clearDir(options.dir + "/tmp");
  if (!cleared) return cleared.error();
  if (*cleared > 0) OLOG_INFO("store: removed %llu leftover temp files", static_cast<unsigned long long>(*cleared));

  if (!database) {
    Result<std::shared_ptr<db::Database>> opened = openStoreDatabase(options.dir);
    if (!opened) return opened.error();
    database = std::move(opened).value();
  }
  if (!database->family(kCacheFamily).valid()) return Error{Errc::Invalid, 0, "store open: database without the cache family"};
  auto store = std::make_unique<FileStore>(options, std::move(database));
  store->health().setRoot(options.dir);
  if (Result<void> r = store->load(); !r) return r.error();
  store->start();
  return std::unique_ptr<Store>(std::move(store));
}

Result<void> repairStoreIndex(const std::string& storageDir) { return repairIndex(storageDir + "/index"); }

}  // namespace orchard::cache
