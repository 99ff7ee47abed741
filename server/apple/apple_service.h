// AppleService: Apple's software update catalog on the box (issue 14).
//
// - The catalog (apple.catalog_url) is read through the box itself
//   (BoxFetch: cached and revalidated like any object, so a second read is
//   a 304 at the origin), parsed (catalog/apple/sucatalog.h) and kept in
//   memory as a shared, immutable snapshot; read again every
//   apple.catalog_refresh or on demand. A catalog that fails to fetch or
//   parse leaves the last good one in place.
// - Product titles, versions and builds come from each product's .dist
//   (English) or .smd, fetched through the box on first need and memoised.
// - Mirror jobs: server/apple/mirror.h.
//
// Threads: the methods are called from the admin routes' worker pool and
// block on the box's own HTTP (never from a loop).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalog/apple/product_info.h"
#include "catalog/apple/sucatalog.h"
#include "common/result.h"
#include "db/database.h"
#include "server/apple/box_fetch.h"
#include "server/apple/job_pool.h"

namespace orchard::server {

struct ServerContext;
class MirrorManager;

// Whether the box holds one package's bytes.
struct Holding {
  enum class State : uint8_t { Absent, Partial, Complete };
  State state = State::Absent;
  uint64_t bytes = 0;  // bytes held (durable blocks of a partial)
  int percent = 0;     // of the catalog Size
  std::string objectPath;  // Complete: the object file (hard-link source)
  static const char* name(State s);
};

struct LoadedCatalog {
  catalog::apple::SuCatalog catalog;
  std::string url;        // apple.catalog_url it came from
  int64_t loadedAt = 0;   // Unix seconds
  std::string cacheStatus;  // the box's Cache-Status for the read (hit, revalidated, ...)
  size_t skipped = 0;     // products left out as malformed
};

class AppleService {
 public:
  AppleService(ServerContext* ctx, std::shared_ptr<db::Database> db);
  ~AppleService();
  AppleService(const AppleService&) = delete;
  AppleService& operator=(const AppleService&) = delete;

  // The refresh thread (reads the catalog soon after start, then every
  // apple.catalog_refresh) and the mirror manager.
  void start();
  void stop();

  // The current catalog, loading it first when none was loaded yet (or
  // `refresh`). Errors only when no catalog was ever loaded. The first call
  // also starts the periodic refresh: a box whose admin never asks for
  // Apple's catalog never fetches it.
  Result<std::shared_ptr<const LoadedCatalog>> catalog(bool refresh = false);
  std::shared_ptr<const LoadedCatalog> catalogIfLoaded() const;  // null before the first good load
  std::string lastError() const;  // why the last load failed ("" after a good one)

  // Title, version and build of a product (from its .dist, else .smd),
  // memoised per product id; empty fields when neither could be read.
  catalog::apple::ProductInfo info(const catalog::apple::CatalogProduct& p);

  // What the store holds of a package URL.
  Holding holding(const catalog::apple::CatalogPackage& pkg) const;
  Holding holdingOfUrl(const std::string& url, uint64_t expectedSize) const;

  // The largest package of a mirrored installer (InstallAssistant.pkg), for
  // publishing it into the catalog: its URL, size and the product's info.
  // NotFound when the product is unknown; Invalid when it is not an
  // installer or its mirror is not complete.
  struct Installer {
    std::string productId;
    std::string url;
    std::string filename;  // last path segment of the URL
    uint64_t size = 0;
    catalog::apple::ProductInfo info;
  };
  Result<Installer> mirroredInstaller(const std::string& productId, std::string* why);

  const BoxFetch& fetcher() const { return fetch_; }
  // Where the routes run their work (OffLoopAnswer::Runner).
  bool runRouteWork(std::function<void()> task) { return pool_.run(std::move(task)); }
  MirrorManager* mirrors() { return mirrors_.get(); }
  ServerContext* context() const { return ctx_; }

 private:
  void refreshLoop();
  Result<std::shared_ptr<const LoadedCatalog>> load();

  ServerContext* ctx_;
  BoxFetch fetch_;
  JobPool pool_{3};
  std::unique_ptr<MirrorManager> mirrors_;
  mutable std::mutex mu_;
  std::shared_ptr<const LoadedCatalog> current_;
  std::string lastError_;
  std::map<std::string, catalog::apple::ProductInfo> info_;
  std::mutex loadMu_;  // one load at a time
  std::condition_variable cv_;
  bool stopping_ = false;
  bool demanded_ = false;  // catalog() was called: refresh it every apple.catalog_refresh
  std::thread thread_;
};

}  // namespace orchard::server
