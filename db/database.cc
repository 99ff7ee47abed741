// Database: the RocksDB wrapper (see database.h). Its hard parts: opening
// with every family the database already has as well as the requested ones
// (RocksDB refuses to open a database with a family left out), the one
// translation of rocksdb::Status (statusError()), the repair, which tries
// the fix that loses nothing before RocksDB's salvage, and table options
// that keep point reads (the cache's hit path since issue 9) at a few
// microseconds: partitioned index and filters, a block cache whose shards
// can hold the index block of an older, unpartitioned table.
#include "db/database.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "common/log.h"

namespace orchard::db {

namespace {

// The one translation of rocksdb::Status. `context` must be a static string.
Error statusError(const rocksdb::Status& s, const char* context) {
  int sys = static_cast<int>(s.code()) * 100 + static_cast<int>(s.subcode());
  Errc code = Errc::Io;
  if (s.IsNotFound() || s.IsPathNotFound()) {
    code = Errc::NotFound;
  } else if (s.IsCorruption()) {
    code = Errc::Corrupt;
  } else if (s.IsNoSpace() || s.IsMemoryLimit()) {
    code = Errc::NoSpace;
  } else if (s.IsTimedOut()) {
    code = Errc::Timeout;
  } else if (s.IsBusy() || s.IsTryAgain() || s.IsIncomplete()) {
    code = Errc::Busy;
  } else if (s.IsInvalidArgument()) {
    code = Errc::Invalid;
  } else if (s.IsNotSupported()) {
    code = Errc::Unsupported;
  } else if (s.IsShutdownInProgress() || s.IsAborted()) {
    code = Errc::Closed;
  }
  OLOG_RATE(log::Level::Warn, "rocksdb %s: %s", context, s.ToString().c_str());
  return Error{code, sys, context};
}

rocksdb::Slice slice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

// "default" first, then the families already in the database at `path`,
// then the requested ones not among them. Empty with *bad set if a
// requested name is empty, "default" or given twice.
std::vector<std::string> familiesToOpen(const rocksdb::DBOptions& db, const std::string& path,
                                        const std::vector<std::string>& requested, bool* bad) {
  *bad = false;
  std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName};
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db, path, &existing).ok()) {  // fails on a new database: none yet
    for (const std::string& e : existing)
      if (e != rocksdb::kDefaultColumnFamilyName) names.push_back(e);
  }
  for (size_t i = 0; i < requested.size(); ++i) {
    const std::string& r = requested[i];
    if (r.empty() || r == rocksdb::kDefaultColumnFamilyName ||
        std::find(requested.begin(), requested.begin() + static_cast<std::ptrdiff_t>(i), r) !=
            requested.begin() + static_cast<std::ptrdiff_t>(i)) {
      *bad = true;
      return {};
    }
    if (std::find(names.begin(), names.end(), r) == names.end()) names.push_back(r);
  }
  return names;
}

rocksdb::DBOptions dbOptions(const Options& options) {
  rocksdb::DBOptions db;
  db.create_if_missing = true;
  db.create_missing_column_families = true;
  db.max_background_jobs = options.backgroundJobs;
  db.max_open_files = 512;
  db.keep_log_file_num = 4;
  db.max_log_file_size = 8ull << 20;
  db.max_total_wal_size = 64ull << 20;
  db.bytes_per_sync = 1ull << 20;
  return db;
}

}  // namespace

// ---- Batch ----

void Batch::put(Family family, std::string_view key, std::string_view value) {
  ops_.push_back({family, false, std::string(key), std::string(value)});
}

void Batch::del(Family family, std::string_view key) { ops_.push_back({family, true, std::string(key), {}}); }

// ---- Database ----

struct Database::Impl {
  std::shared_ptr<rocksdb::Cache> blockCache;
  rocksdb::DB* db = nullptr;
  std::vector<std::string> names;                    // by Family::id; [0] is "default"
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // by Family::id
  rocksdb::WriteOptions writeOptions;                 // WAL on, sync=false

  rocksdb::ColumnFamilyHandle* handle(Family f) const { return f.id < handles.size() ? handles[f.id] : nullptr; }

  ~Impl() {
    if (db == nullptr) return;
    // With the WAL on, RocksDB leaves the memtables in the log at close; a
    // flush puts them in table files, which is what a repair can salvage:
    // it drops log records of families other than "default".
    for (size_t i = 1; i < handles.size(); ++i) {
      rocksdb::Status f = db->Flush(rocksdb::FlushOptions(), handles[i]);
      if (!f.ok()) OLOG_WARN("rocksdb flush of %s at close: %s", names[i].c_str(), f.ToString().c_str());
    }
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    rocksdb::Status s = db->Close();
    if (!s.ok()) OLOG_WARN("rocksdb close: %s", s.ToString().c_str());
    delete db;
  }
};

Database::Database(std::string path, std::unique_ptr<Impl> impl) : path_(std::move(path)), impl_(std::move(impl)) {}
Database::~Database() = default;

Result<std::unique_ptr<Database>> Database::open(const std::string& path, const std::vector<std::string>& families,
                                                 const Options& options) {
  auto impl = std::make_unique<Impl>();
  // Four shards: a shard must hold the largest index block of a table
  // written before partitioned indexes (a 64 MB table of the cache family
  // has a ~1.5 MB one); with RocksDB's default of 64 shards of 512 KiB it
  // never stayed cached and every point read re-read and parsed it (~0.4 ms).
  impl->blockCache = rocksdb::NewLRUCache(options.blockCacheBytes, /*num_shard_bits=*/2);
  rocksdb::DBOptions db = dbOptions(options);

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = impl->blockCache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  // Point reads are the cache's hit path (the record of a hit not in the
  // store's record cache): index and filter partitioned in 4 KiB blocks that
  // live in the block cache like data, with only their top level pinned.
  table.index_type = rocksdb::BlockBasedTableOptions::IndexType::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.pin_top_level_index_and_filter = true;

  rocksdb::ColumnFamilyOptions cf;
  cf.write_buffer_size = options.writeBufferBytes;
  cf.max_write_buffer_number = 2;
  cf.level_compaction_dynamic_level_bytes = true;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::ColumnFamilyOptions defaultCf = cf;
  defaultCf.write_buffer_size = 1ull << 20;  // unused family (RocksDB requires it): keep it tiny

  bool bad = false;
  impl->names = familiesToOpen(db, path, families, &bad);
  if (bad) return Error{Errc::Invalid, 0, "database open: bad family name"};
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& n : impl->names) descriptors.emplace_back(n, n == impl->names[0] ? defaultCf : cf);
  rocksdb::Status s = rocksdb::DB::Open(db, path, descriptors, &impl->handles, &impl->db);
  if (!s.ok()) {
    impl->db = nullptr;
    impl->handles.clear();
    return statusError(s, "database open");
  }
  impl->writeOptions.sync = false;
  impl->writeOptions.disableWAL = false;
  return std::unique_ptr<Database>(new Database(path, std::move(impl)));
}

Family Database::family(std::string_view name) const {
  for (size_t i = 0; i < impl_->names.size(); ++i)
    if (impl_->names[i] == name) return Family{static_cast<uint32_t>(i)};
  return Family{};
}

std::vector<std::string> Database::familyNames() const { return impl_->names; }

Result<void> Database::put(Family family, std::string_view key, std::string_view value) {
  auto* h = impl_->handle(family);
  if (h == nullptr) return Error{Errc::Invalid, 0, "database put: no such family"};
  rocksdb::Status s = impl_->db->Put(impl_->writeOptions, h, slice(key), slice(value));
  if (!s.ok()) return statusError(s, "database put");
  return ok();
}

Result<void> Database::del(Family family, std::string_view key) {
  auto* h = impl_->handle(family);
  if (h == nullptr) return Error{Errc::Invalid, 0, "database delete: no such family"};
  rocksdb::Status s = impl_->db->Delete(impl_->writeOptions, h, slice(key));
  if (!s.ok()) return statusError(s, "database delete");
  return ok();
}

Result<void> Database::deleteRange(Family family, std::string_view from, std::string_view to) {
  auto* h = impl_->handle(family);
  if (h == nullptr) return Error{Errc::Invalid, 0, "database delete range: no such family"};
  if (from >= to) return ok();
  rocksdb::Status s = impl_->db->DeleteRange(impl_->writeOptions, h, slice(from), slice(to));
  if (!s.ok()) return statusError(s, "database delete range");
  return ok();
}

Result<std::optional<std::string>> Database::get(Family family, std::string_view key) const {
  auto* h = impl_->handle(family);
  if (h == nullptr) return Error{Errc::Invalid, 0, "database get: no such family"};
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), h, slice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return statusError(s, "database get");
  return std::optional<std::string>(std::move(value));
}

Result<void> Database::write(Batch&& batch, bool durable) {
  if (batch.ops_.empty()) return ok();
  rocksdb::WriteBatch wb;
  for (const auto& op : batch.ops_) {
    auto* h = impl_->handle(op.family);
    if (h == nullptr) return Error{Errc::Invalid, 0, "database batch: no such family"};
    rocksdb::Status s = op.del ? wb.Delete(h, op.key) : wb.Put(h, op.key, op.value);
    if (!s.ok()) return statusError(s, "database batch");
  }
  rocksdb::WriteOptions wo = impl_->writeOptions;
  wo.sync = durable;
  rocksdb::Status s = impl_->db->Write(wo, &wb);
  if (!s.ok()) return statusError(s, "database write");
  return ok();
}

Result<void> Database::scanFrom(Family family, std::string_view from,
                                const std::function<bool(std::string_view, std::string_view)>& fn) const {
  auto* h = impl_->handle(family);
  if (h == nullptr) return Error{Errc::Invalid, 0, "database scan: no such family"};
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), h));
  for (it->Seek(slice(from)); it->Valid(); it->Next()) {
    rocksdb::Slice k = it->key();
    rocksdb::Slice v = it->value();
    if (!fn(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size()))) break;
  }
  if (!it->status().ok()) return statusError(it->status(), "database scan");
  return ok();
}

Result<std::optional<std::string>> Database::lastKey(Family family) const {
  auto* h = impl_->handle(family);
  if (h == nullptr) return Error{Errc::Invalid, 0, "database scan: no such family"};
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), h));
  it->SeekToLast();
  if (!it->status().ok()) return statusError(it->status(), "database scan");
  if (!it->Valid()) return std::optional<std::string>();
  return std::optional<std::string>(it->key().ToString());
}

uint64_t Database::estimatedKeys(Family family) const {
  auto* h = impl_->handle(family);
  uint64_t n = 0;
  if (h == nullptr || !impl_->db->GetIntProperty(h, rocksdb::DB::Properties::kEstimateNumKeys, &n)) return 0;
  return n;
}

Result<void> Database::forEach(Family family,
                               const std::function<void(std::string_view, std::string_view)>& fn) const {
  auto* h = impl_->handle(family);
  if (h == nullptr) return Error{Errc::Invalid, 0, "database scan: no such family"};
  const rocksdb::Snapshot* snap = impl_->db->GetSnapshot();
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  ro.snapshot = snap;
  Result<void> result = ok();
  {
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, h));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      rocksdb::Slice k = it->key();
      rocksdb::Slice v = it->value();
      fn(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size()));
    }
    if (!it->status().ok()) result = statusError(it->status(), "database scan");
  }
  impl_->db->ReleaseSnapshot(snap);
  return result;
}

// ---- repair ----

namespace {

// Rewrites <path>/CURRENT to name the newest MANIFEST-<n> there (via a
// temp file and a rename). False if there is none or the write failed.
bool pointCurrentAtNewestManifest(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return false;
  std::string newest;
  unsigned long long best = 0;
  while (struct dirent* e = ::readdir(d)) {
    unsigned long long n = 0;
    int used = 0;
    if (std::sscanf(e->d_name, "MANIFEST-%llu%n", &n, &used) == 1 && e->d_name[used] == '\0' &&
        (newest.empty() || n > best)) {
      best = n;
      newest = e->d_name;
    }
  }
  ::closedir(d);
  if (newest.empty()) return false;
  const std::string tmp = path + "/CURRENT.repair";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const std::string text = newest + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), (path + "/CURRENT").c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

Result<void> repair(const std::string& path, const std::vector<std::string>& families) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Error{Errc::NotFound, ENOENT, "database repair: no database"};
  rocksdb::DBOptions db;
  db.create_if_missing = false;
  rocksdb::ColumnFamilyOptions cf;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = {{rocksdb::kDefaultColumnFamilyName, cf}};
  for (const std::string& f : families) descriptors.emplace_back(f, cf);
  // First the cheap fix that loses nothing: a damaged CURRENT pointed at the
  // newest MANIFEST again, if the database then opens (its logs replayed).
  if (pointCurrentAtNewestManifest(path)) {
    bool bad = false;
    std::vector<std::string> names = familiesToOpen(db, path, families, &bad);
    std::vector<rocksdb::ColumnFamilyDescriptor> all;
    for (const std::string& n : names) all.emplace_back(n, cf);
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* opened = nullptr;
    if (!bad && rocksdb::DB::Open(db, path, all, &handles, &opened).ok()) {
      for (auto* h : handles) opened->DestroyColumnFamilyHandle(h);
      (void)opened->Close();
      delete opened;
      OLOG_INFO("database repair: %s/CURRENT rewritten, the database opens again", path.c_str());
      return ok();
    }
  }
  // Then RocksDB's repair: rebuilds the metadata from the table files and
  // logs it finds (log records of families other than "default" are lost:
  // see ~Impl). Families it finds but was not told of are kept too.
  rocksdb::Status s = rocksdb::RepairDB(path, db, descriptors, cf);
  if (!s.ok()) return statusError(s, "database repair");
  return ok();
}

}  // namespace orchard::db
