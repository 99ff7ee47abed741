// Index: RocksDB wrapper for the cache index (see index.h). Every
// rocksdb::Status becomes an orchard::Error in statusError(), and nowhere else.
#include "cache/index.h"

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

#include <cstdio>

#include <vector>

#include "common/log.h"

namespace orchard::cache {

namespace {

constexpr const char* kCacheFamily = "cache";

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

}  // namespace

std::string encodeHashKey(const Hash128& h) {
  std::string k(16, '\0');
  for (int i = 0; i < 8; ++i) {
    k[i] = static_cast<char>(h.hi >> (56 - 8 * i));
    k[8 + i] = static_cast<char>(h.lo >> (56 - 8 * i));
  }
  return k;
}

bool decodeHashKey(std::string_view bytes, Hash128* out) {
  if (bytes.size() != 16) return false;
  uint64_t hi = 0, lo = 0;
  for (int i = 0; i < 8; ++i) {
    hi = (hi << 8) | static_cast<uint8_t>(bytes[i]);
    lo = (lo << 8) | static_cast<uint8_t>(bytes[8 + i]);
  }
  *out = Hash128{hi, lo};
  return true;
}

// ---- IndexBatch ----

struct IndexBatch::Impl {
  // Column family handles are only known to the Index, so a batch records
  // its ops and Index::write() turns them into one rocksdb::WriteBatch.
  struct Op {
    bool del;
    std::string key;
    std::string value;
  };
  std::vector<Op> ops;
};

IndexBatch::IndexBatch() : impl_(std::make_unique<Impl>()) {}
IndexBatch::~IndexBatch() = default;
IndexBatch::IndexBatch(IndexBatch&&) noexcept = default;
IndexBatch& IndexBatch::operator=(IndexBatch&&) noexcept = default;

void IndexBatch::put(const Hash128& hash, std::string_view bytes) {
  impl_->ops.push_back({false, encodeHashKey(hash), std::string(bytes)});
}
void IndexBatch::del(const Hash128& hash) { impl_->ops.push_back({true, encodeHashKey(hash), {}}); }
size_t IndexBatch::count() const { return impl_ ? impl_->ops.size() : 0; }

// ---- Index ----

struct Index::Impl {
  std::shared_ptr<rocksdb::Cache> blockCache;
  rocksdb::DB* db = nullptr;
  rocksdb::ColumnFamilyHandle* defaultCf = nullptr;
  rocksdb::ColumnFamilyHandle* cacheCf = nullptr;
  rocksdb::WriteOptions writeOptions;  // WAL on, sync=false

  ~Impl() {
    if (db == nullptr) return;
    // With the WAL on, RocksDB leaves the memtables in the log at close; a
    // flush puts them in a table file, which is what a repair
    // (repairIndex()) can salvage: it drops log records of families other
    // than "default".
    if (cacheCf) {
      rocksdb::Status f = db->Flush(rocksdb::FlushOptions(), cacheCf);
      if (!f.ok()) OLOG_WARN("rocksdb flush at close: %s", f.ToString().c_str());
    }
    if (defaultCf) db->DestroyColumnFamilyHandle(defaultCf);
    if (cacheCf) db->DestroyColumnFamilyHandle(cacheCf);
    rocksdb::Status s = db->Close();
    if (!s.ok()) OLOG_WARN("rocksdb close: %s", s.ToString().c_str());
    delete db;
  }
};

Index::Index(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Index::~Index() = default;

Result<std::unique_ptr<Index>> Index::open(const std::string& path, const IndexOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->blockCache = rocksdb::NewLRUCache(options.blockCacheBytes);

  rocksdb::DBOptions db;
  db.create_if_missing = true;
  db.create_missing_column_families = true;
  db.max_background_jobs = options.backgroundJobs;
  db.max_open_files = 512;
  db.keep_log_file_num = 4;
  db.max_log_file_size = 8ull << 20;
  db.max_total_wal_size = 64ull << 20;
  db.bytes_per_sync = 1ull << 20;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = impl->blockCache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;

  rocksdb::ColumnFamilyOptions cf;
  cf.write_buffer_size = options.writeBufferBytes;
  cf.max_write_buffer_number = 2;
  cf.level_compaction_dynamic_level_bytes = true;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  rocksdb::ColumnFamilyOptions defaultCfOptions = cf;
  defaultCfOptions.write_buffer_size = 1ull << 20;  // unused family: keep it tiny

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, defaultCfOptions},
      {kCacheFamily, cf},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s = rocksdb::DB::Open(db, path, families, &handles, &impl->db);
  if (!s.ok()) {
    impl->db = nullptr;
    return statusError(s, "index open");
  }
  impl->defaultCf = handles[0];
  impl->cacheCf = handles[1];
  impl->writeOptions.sync = false;
  impl->writeOptions.disableWAL = false;
  return std::unique_ptr<Index>(new Index(std::move(impl)));
}

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

Result<void> repairIndex(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return Error{Errc::NotFound, ENOENT, "index repair: no index"};
  rocksdb::DBOptions db;
  db.create_if_missing = false;
  rocksdb::ColumnFamilyOptions cf;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, cf},
      {kCacheFamily, cf},
  };
  // First the cheap fix that loses nothing: a damaged CURRENT pointed at the
  // newest MANIFEST again, if the database then opens (its logs replayed).
  if (pointCurrentAtNewestManifest(path)) {
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* opened = nullptr;
    rocksdb::Status o = rocksdb::DB::Open(db, path, families, &handles, &opened);
    if (o.ok()) {
      for (auto* h : handles) opened->DestroyColumnFamilyHandle(h);
      (void)opened->Close();
      delete opened;
      OLOG_INFO("index repair: %s/CURRENT rewritten, the index opens again", path.c_str());
      return ok();
    }
  }
  // Then RocksDB's repair: rebuilds the metadata from the table files and
  // logs it finds (log records of the "cache" family are lost: see ~Impl).
  rocksdb::Status s = rocksdb::RepairDB(path, db, families, cf);
  if (!s.ok()) return statusError(s, "index repair");
  return ok();
}

Result<void> Index::put(const Hash128& hash, std::string_view bytes) {
  IndexBatch b;
  b.put(hash, bytes);
  return write(std::move(b));
}

Result<void> Index::del(const Hash128& hash) {
  IndexBatch b;
  b.del(hash);
  return write(std::move(b));
}

Result<void> Index::delRaw(std::string_view key) {
  rocksdb::Status s = impl_->db->Delete(impl_->writeOptions, impl_->cacheCf, rocksdb::Slice(key.data(), key.size()));
  if (!s.ok()) return statusError(s, "index delete");
  return ok();
}

Result<void> Index::write(IndexBatch&& batch) {
  if (!batch.impl_ || batch.impl_->ops.empty()) return ok();
  rocksdb::WriteBatch wb;
  for (const auto& op : batch.impl_->ops) {
    rocksdb::Status s = op.del ? wb.Delete(impl_->cacheCf, op.key) : wb.Put(impl_->cacheCf, op.key, op.value);
    if (!s.ok()) return statusError(s, "index batch");
  }
  rocksdb::Status s = impl_->db->Write(impl_->writeOptions, &wb);
  if (!s.ok()) return statusError(s, "index write");
  return ok();
}

Result<void> Index::forEach(const std::function<void(const Hash128&, std::string_view)>& fn,
                            const std::function<void(std::string_view)>& onBadKey) {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;  // a full scan would only evict useful blocks
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cacheCf));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    rocksdb::Slice k = it->key();
    rocksdb::Slice v = it->value();
    Hash128 h;
    if (decodeHashKey(std::string_view(k.data(), k.size()), &h)) {
      fn(h, std::string_view(v.data(), v.size()));
    } else if (onBadKey) {
      onBadKey(std::string_view(k.data(), k.size()));
    }
  }
  if (!it->status().ok()) return statusError(it->status(), "index scan");
  return ok();
}

}  // namespace orchard::cache
