// Catalog: the in-memory view of the published versions, their blobs and
// the durable batches that change them (see catalog.h). Hard parts: the
// order of a commit (blob renamed into place and its directory fsynced,
// then one durable batch, then the view), so that a crash between any two
// steps leaves either nothing visible or everything, and the sweep at
// open() removes what a crash left half done; a blob shared by two
// versions counts once against the limit and is unlinked only with the
// last version naming it.
#include "catalog/catalog.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "cache/file_util.h"
#include "catalog/version.h"
#include "common/log.h"

namespace orchard::catalog {

namespace {

std::string versionKey(std::string_view name, std::string_view version) {
  std::string k(name);
  k += '\0';
  k += version;
  return k;
}

std::string seqKey(uint64_t seq) {
  std::string k(8, '\0');
  for (int i = 7; i >= 0; --i) {
    k[static_cast<size_t>(i)] = static_cast<char>(seq & 0xff);
    seq >>= 8;
  }
  return k;
}

uint64_t seqOf(std::string_view k) {
  uint64_t v = 0;
  for (char c : k.substr(0, 8)) v = (v << 8) | static_cast<unsigned char>(c);
  return v;
}

bool isHexSha(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

void fsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

// Calls fn(name) for each entry of dir but "." and "..".
template <typename Fn>
void eachEntry(const std::string& dir, Fn fn) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    fn(std::string(e->d_name));
  }
  ::closedir(d);
}

nlohmann::json auditJson(const AuditEntry& e) {
  return nlohmann::json{{"seq", e.seq},       {"time", e.time},     {"action", e.action}, {"object", e.object},
                        {"client", e.client}, {"token", e.token},   {"detail", e.detail}};
}

}  // namespace

std::vector<std::string> families() {
  return {kVersionsFamily, kAuditFamily,  kDownloadsFamily, kChangesFamily,
          kPendingFamily,  kFollowFamily, kSitesFamily};
}

Catalog::Catalog(CatalogOptions options, std::shared_ptr<db::Database> database)
    : options_(std::move(options)), db_(std::move(database)) {
  limit_.store(options_.limit);
  versionsF_ = db_->family(kVersionsFamily);
  auditF_ = db_->family(kAuditFamily);
  downloadsF_ = db_->family(kDownloadsFamily);
  changesF_ = db_->family(kChangesFamily);
  pendingF_ = db_->family(kPendingFamily);
  followF_ = db_->family(kFollowFamily);
  sitesF_ = db_->family(kSitesFamily);
  const std::vector<std::string> names = db_->familyNames();
  replicated_.resize(names.size());
  for (size_t i = 0; i < names.size(); ++i) replicated_[i] = isReplicatedFamily(names[i]);
}

Catalog::~Catalog() = default;

Result<std::unique_ptr<Catalog>> Catalog::open(const CatalogOptions& options, std::shared_ptr<db::Database> database) {
  if (options.dir.empty()) return Error{Errc::Invalid, 0, "catalog open: empty dir"};
  for (const std::string& f : families())
    if (!database->family(f).valid()) return Error{Errc::Invalid, 0, "catalog open: database without the catalog families"};
  for (const char* sub : {"", "/tmp", "/blobs"})
    if (auto r = cache::makeDirs(options.dir + sub); !r) return r.error();
  std::unique_ptr<Catalog> c(new Catalog(options, std::move(database)));
  if (auto r = c->load(); !r) return r.error();
  c->counts_ = std::make_unique<db::WriteQueue>(*c->db_);
  return c;
}

Result<void> Catalog::load() {
  // Temp files are uploads a crash cut short: nothing names them.
  uint64_t swept = 0;
  eachEntry(options_.dir + "/tmp", [&](const std::string& n) {
    if (::unlink((options_.dir + "/tmp/" + n).c_str()) == 0) ++swept;
  });
  if (swept) OLOG_INFO("catalog: removed %llu unfinished uploads", static_cast<unsigned long long>(swept));

  uint64_t bad = 0;
  auto r = db_->forEach(versionsF_, [&](std::string_view key, std::string_view value) {
    auto j = nlohmann::json::parse(value, nullptr, false);
    auto v = packageVersionFromJson(j);
    if (!v || versionKey(v->name, v->version) != key || !isHexSha(v->sha256)) {
      ++bad;
      OLOG_WARN("catalog: record %s does not parse: left out", std::string(key.substr(0, key.find('\0'))).c_str());
      return;
    }
    struct stat st;
    if (::stat(blobPath(v->sha256).c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) != v->size) {
      ++bad;
      OLOG_WARN("catalog: %s %s: its file %s is missing or has the wrong size: left out", v->name.c_str(),
                v->version.c_str(), v->sha256.c_str());
      return;
    }
    if (blobRefs_[v->sha256]++ == 0) blobBytes_ += v->size;
    auto rec = std::make_shared<const PackageVersion>(std::move(*v));
    view_[rec->name][rec->version] = rec;
  });
  if (!r) return r.error();
  r = db_->forEach(downloadsF_, [&](std::string_view key, std::string_view value) {
    downloads_[std::string(key)] = std::strtoull(std::string(value).c_str(), nullptr, 10);
  });
  if (!r) return r.error();
  auto last = db_->lastKey(auditF_);
  if (!last) return last.error();
  if (last->has_value()) nextSeq_ = seqOf(**last) + 1;
  auto lastChange = db_->lastKey(changesF_);
  if (!lastChange) return lastChange.error();
  if (lastChange->has_value()) {
    nextChange_ = seqOf(**lastChange) + 1;
    lastChange_.store(nextChange_ - 1);
  } else if (auto b = writeBaseline(); !b) {
    return b.error();
  }
  r = db_->forEach(pendingF_, [&](std::string_view key, std::string_view value) {
    auto j = nlohmann::json::parse(value, nullptr, false);
    if (!j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned() || !j.contains("record") ||
        !j["record"].is_string()) {
      ++bad;
      return;
    }
    auto v = packageVersionFromJson(nlohmann::json::parse(j["record"].get<std::string>(), nullptr, false));
    if (!v || versionKey(v->name, v->version) != key || !isHexSha(v->sha256)) {
      ++bad;
      return;
    }
    pending_[std::string(key)] = PendingVersion{j["seq"].get<uint64_t>(), std::make_shared<const PackageVersion>(std::move(*v)),
                                                std::make_shared<std::atomic<uint64_t>>(0)};
  });
  if (!r) return r.error();
  auto state = db_->get(followF_, "state");
  if (!state) return state.error();
  if (state->has_value()) follow_ = followStateFromText(**state);

  // Blobs no record names: a crash between the rename and the batch, or
  // between a delete's batch and its unlink.
  uint64_t orphans = 0;
  eachEntry(options_.dir + "/blobs", [&](const std::string& sub) {
    const std::string dir = options_.dir + "/blobs/" + sub;
    eachEntry(dir, [&](const std::string& n) {
      if (blobRefs_.count(n)) return;
      if (::unlink((dir + "/" + n).c_str()) == 0) ++orphans;
    });
  });
  if (orphans) OLOG_INFO("catalog: removed %llu package files no version names", static_cast<unsigned long long>(orphans));
  size_t versions = 0;
  for (const auto& [n, vs] : view_) versions += vs.size();
  OLOG_INFO("catalog: %zu packages, %zu versions, %llu bytes%s", view_.size(), versions,
            static_cast<unsigned long long>(blobBytes_), bad ? " (some records left out: see above)" : "");
  if (!pending_.empty()) OLOG_INFO("catalog: %zu versions from the hub wait for their bytes", pending_.size());
  return ok();
}

Result<void> Catalog::writeBaseline() {
  std::vector<ChangeOp> records;
  for (const std::string& f : replicatedFamilies()) {
    const db::Family fam = db_->family(f);
    if (!fam.valid()) continue;  // the fleet's families: opened by the server beside ours
    auto r = db_->forEach(fam, [&](std::string_view k, std::string_view v) {
      records.push_back(ChangeOp{f, std::string(k), std::string(v)});
    });
    if (!r) return r.error();
  }
  if (records.empty()) return ok();
  db::Batch batch;
  const int64_t now = static_cast<int64_t>(::time(nullptr));
  std::vector<Change> changes = baselineChanges(records);
  for (Change& c : changes) {
    c.seq = nextChange_++;
    c.time = now;
    batch.put(changesF_, seqKey(c.seq), changeText(c));
  }
  if (auto r = db_->write(std::move(batch), /*durable=*/true); !r) return r.error();
  lastChange_.store(nextChange_ - 1);
  OLOG_INFO("catalog: change feed started with a baseline of %zu records in %zu changes", records.size(),
            changes.size());
  return ok();
}

std::string Catalog::blobPath(std::string_view sha) const {
  std::string p = options_.dir + "/blobs/";
  p += sha.substr(0, 2);
  p += '/';
  p += sha;
  return p;
}

uint64_t Catalog::usedBytes() const {
  std::lock_guard lock(mu_);
  return blobBytes_ + reserved_;
}

std::variant<Catalog::Begun, Problem> Catalog::begin(std::string_view name, std::string_view version,
                                                     std::string_view filename, uint64_t size,
                                                     std::string_view expectSha) {
  return reserve(name, version, filename, size, expectSha, /*createFile=*/true);
}

std::variant<Catalog::Begun, Problem> Catalog::reserve(std::string_view name, std::string_view version,
                                                       std::string_view filename, uint64_t size,
                                                       std::string_view expectSha, bool createFile) {
  std::lock_guard lock(mu_);
  const std::string key = versionKey(name, version);
  if (auto n = view_.find(name); n != view_.end()) {
    if (auto v = n->second.find(std::string(version)); v != n->second.end() && !expectSha.empty()) {
      if (v->second->sha256 == expectSha && v->second->size == size) return Begun{nullptr, v->second};
      return Problem{Errc::Exists, std::string(name) + " " + std::string(version) +
                                       " is published with other bytes (sha256 " + v->second->sha256 +
                                       "); publish a new version or delete this one first"};
    }
  }
  if (uploading_.count(key))
    return Problem{Errc::Busy, "a publish of " + std::string(name) + " " + std::string(version) + " is in progress"};
  const bool stored = !expectSha.empty() && blobRefs_.count(std::string(expectSha));
  const uint64_t need = stored ? 0 : size;
  const uint64_t lim = limit();
  if (blobBytes_ + reserved_ + need > lim)
    return Problem{Errc::NoSpace, "the package (" + std::to_string(size) + " bytes) does not fit in catalog.limit (" +
                                      std::to_string(lim) + " bytes, " + std::to_string(blobBytes_ + reserved_) +
                                      " used)"};
  reserved_ += need;
  uploading_[key] = true;
  std::unique_ptr<Upload> up(new Upload(this, std::string(name), std::string(version), std::string(filename), size,
                                        std::string(expectSha), need, createFile));
  return Begun{std::move(up), nullptr};
}

std::variant<Catalog::Imported, Problem> Catalog::importFile(std::string_view name, std::string_view version,
                                                             std::string_view filename, const ImportSource& source,
                                                             const ImportPrepare& prepare, const Actor& actor,
                                                             int64_t now) {
  if (!source.expectSha.empty() && !isHexSha(source.expectSha))
    return Problem{Errc::Invalid, "the expected sha256 must be 64 lower-case hexadecimal digits"};
  auto begun = reserve(name, version, filename, source.size, source.expectSha, /*createFile=*/false);
  if (auto* p = std::get_if<Problem>(&begun)) return std::move(*p);
  auto& b = std::get<Begun>(begun);
  if (b.identical) return Imported{b.identical, false, false};
  std::unique_ptr<Upload> up = std::move(b.upload);
  up->action_ = "import";
  up->note_ = source.note;
  // From here every return drops `up`: its temp file (link or copy) is
  // unlinked and its reservation given back.
  if (auto p = up->adopt(source.path)) return std::move(*p);
  PackageVersion draft;
  if (prepare)
    if (auto p = prepare(up->path(), &draft)) return std::move(*p);
  const bool linked = up->linked();
  auto committed = commit(std::move(up), std::move(draft), actor, now);
  if (auto* p = std::get_if<Problem>(&committed)) return std::move(*p);
  auto& c = std::get<Committed>(committed);
  return Imported{c.version, c.created, c.created && linked};
}

void Catalog::release(uint64_t reserved, const std::string& key) {
  std::lock_guard lock(mu_);
  reserved_ -= std::min(reserved_, reserved);
  uploading_.erase(key);
}

void Catalog::appendAudit(db::Batch* batch, AuditEntry e) {
  Change c;
  for (const db::Batch::Op& op : batch->ops()) {
    if (op.family.id >= replicated_.size() || !replicated_[op.family.id]) continue;
    c.ops.push_back(ChangeOp{db_->familyNames()[op.family.id], op.key,
                             op.del ? std::nullopt : std::optional<std::string>(op.value)});
  }
  const int64_t time = e.time;
  e.seq = nextSeq_++;
  batch->put(auditF_, seqKey(e.seq), auditJson(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (c.ops.empty()) return;
  c.seq = nextChange_++;
  c.time = time;
  batch->put(changesF_, seqKey(c.seq), changeText(c));
}

Result<void> Catalog::writeDurable(db::Batch&& batch) {
  auto r = db_->write(std::move(batch), /*durable=*/true);
  if (r && lastChange_.load(std::memory_order_relaxed) != nextChange_ - 1) {
    lastChange_.store(nextChange_ - 1, std::memory_order_release);
    if (changeHook_) changeHook_();
  }
  return r;
}

void Catalog::setChangeHook(std::function<void()> hook) {
  std::lock_guard lock(mu_);
  changeHook_ = std::move(hook);
}

std::variant<Catalog::Committed, Problem> Catalog::commit(std::unique_ptr<Upload> up, PackageVersion draft,
                                                          const Actor& actor, int64_t now) {
  if (!up->finished_) return Problem{Errc::Invalid, "the upload is not finished"};
  draft.name = up->name();
  draft.version = up->version();
  draft.filename = up->filename();
  draft.size = up->received();
  draft.sha256 = up->sha256();
  draft.chunks = up->chunks();
  draft.published = now;
  draft.publishedBy = actor.token;
  const std::string key = versionKey(draft.name, draft.version);
  const std::string blob = blobPath(draft.sha256);

  std::lock_guard lock(mu_);
  if (auto n = view_.find(draft.name); n != view_.end()) {
    if (auto v = n->second.find(draft.version); v != n->second.end()) {
      if (v->second->sha256 == draft.sha256) return Committed{v->second, false};  // the Upload's dtor cleans up
      return Problem{Errc::Exists, draft.name + " " + draft.version + " is published with other bytes (sha256 " +
                                       v->second->sha256 + ")"};
    }
  }
  bool haveBlob = false;
  if (auto p = placeBlob(up.get(), draft.sha256, &haveBlob)) return std::move(*p);
  db::Batch batch;
  nlohmann::json j;
  toJson(j, draft);
  batch.put(versionsF_, key, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  std::string detail = "sha256 " + draft.sha256 + ", " + std::to_string(draft.size) + " bytes";
  if (up->action_ == "import") detail += up->linked() ? ", linked" : ", copied";
  if (!up->note_.empty()) detail += ", " + up->note_;
  appendAudit(&batch, AuditEntry{0, now, up->action_, draft.name + "/" + draft.version, actor.client, actor.token,
                                 std::move(detail)});
  if (auto r = writeDurable(std::move(batch)); !r) {
    if (!haveBlob) ::unlink(blob.c_str());
    return Problem{Errc::Io, "cannot record the package: " + r.error().message()};
  }
  up->committed_ = true;
  reserved_ -= std::min(reserved_, up->reserved_);
  uploading_.erase(key);
  if (blobRefs_[draft.sha256]++ == 0) blobBytes_ += draft.size;
  auto rec = std::make_shared<const PackageVersion>(std::move(draft));
  view_[rec->name][rec->version] = rec;
  generation_.fetch_add(1, std::memory_order_release);
  return Committed{rec, true};
}

std::optional<Problem> Catalog::placeBlob(Upload* up, const std::string& sha, bool* haveBlob) {
  *haveBlob = blobRefs_.count(sha) > 0;
  if (*haveBlob) {
    ::unlink(up->path().c_str());  // the same bytes are stored already
    up->path_.clear();
    return std::nullopt;
  }
  const std::string dir = options_.dir + "/blobs/" + sha.substr(0, 2);
  if (auto r = cache::makeDirs(dir); !r) return Problem{Errc::Io, "cannot create " + dir + ": " + r.error().message()};
  if (::rename(up->path().c_str(), blobPath(sha).c_str()) != 0)
    return Problem{Errc::Io, std::string("cannot move the upload into place: ") + std::strerror(errno)};
  up->path_.clear();  // renamed: nothing to remove
  fsyncDir(dir);
  return std::nullopt;
}

void Catalog::dropBlobRef(const PackageVersion& rec) {
  auto it = blobRefs_.find(rec.sha256);
  if (it == blobRefs_.end() || --it->second > 0) return;
  blobRefs_.erase(it);
  blobBytes_ -= std::min(blobBytes_, rec.size);
  // Running downloads hold the file open and finish; a crash before this
  // unlink leaves an orphan that open() sweeps.
  if (::unlink(blobPath(rec.sha256).c_str()) != 0 && errno != ENOENT)
    OLOG_WARN("catalog: cannot remove %s: %s", blobPath(rec.sha256).c_str(), std::strerror(errno));
}

std::shared_ptr<const PackageVersion> Catalog::find(std::string_view name, std::string_view version) const {
  std::lock_guard lock(mu_);
  auto n = view_.find(name);
  if (n == view_.end()) return nullptr;
  auto v = n->second.find(std::string(version));
  return v == n->second.end() ? nullptr : v->second;
}

std::vector<std::shared_ptr<const PackageVersion>> Catalog::versions(std::string_view name) const {
  std::vector<std::shared_ptr<const PackageVersion>> out;
  {
    std::lock_guard lock(mu_);
    auto n = view_.find(name);
    if (n == view_.end()) return out;
    for (const auto& [v, rec] : n->second) out.push_back(rec);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return versionLess(b->version, a->version); });
  return out;
}

size_t Catalog::versionCount() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [name, vs] : view_) n += vs.size();
  return n;
}

std::vector<std::string> Catalog::names() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [n, vs] : view_) out.push_back(n);
  return out;
}

std::variant<std::shared_ptr<const PackageVersion>, Problem> Catalog::updateMetadata(std::string_view name,
                                                                                     std::string_view version,
                                                                                     const MetadataEdit& edit,
                                                                                     const Actor& actor, int64_t now) {
  std::lock_guard lock(mu_);
  auto n = view_.find(name);
  if (n == view_.end()) return Problem{Errc::NotFound, "no package " + std::string(name)};
  auto v = n->second.find(std::string(version));
  if (v == n->second.end()) return Problem{Errc::NotFound, "no version " + std::string(version) + " of " + std::string(name)};
  PackageVersion next = *v->second;
  if (auto p = edit(&next.metadata)) return Problem{Errc::Invalid, *p};
  db::Batch batch;
  nlohmann::json j;
  toJson(j, next);
  batch.put(versionsF_, versionKey(name, version), j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  appendAudit(&batch, AuditEntry{0, now, "update-metadata", next.name + "/" + next.version, actor.client, actor.token,
                                 "title " + next.metadata.title + ", bundle " + next.metadata.bundleId + " " +
                                     next.metadata.bundleVersion});
  if (auto r = writeDurable(std::move(batch)); !r)
    return Problem{Errc::Io, "cannot record the change: " + r.error().message()};
  auto rec = std::make_shared<const PackageVersion>(std::move(next));
  v->second = rec;
  generation_.fetch_add(1, std::memory_order_release);
  return rec;
}

std::optional<Problem> Catalog::remove(std::string_view name, std::string_view version, const Actor& actor,
                                       int64_t now) {
  std::lock_guard lock(mu_);
  auto n = view_.find(name);
  if (n == view_.end()) return Problem{Errc::NotFound, "no package " + std::string(name)};
  auto v = n->second.find(std::string(version));
  if (v == n->second.end()) return Problem{Errc::NotFound, "no version " + std::string(version) + " of " + std::string(name)};
  const std::shared_ptr<const PackageVersion> rec = v->second;
  db::Batch batch;
  const std::string key = versionKey(name, version);
  batch.del(versionsF_, key);
  batch.del(downloadsF_, key);
  appendAudit(&batch, AuditEntry{0, now, "delete", rec->name + "/" + rec->version, actor.client, actor.token,
                                 "sha256 " + rec->sha256});
  if (auto r = writeDurable(std::move(batch)); !r)
    return Problem{Errc::Io, "cannot record the delete: " + r.error().message()};
  n->second.erase(v);
  if (n->second.empty()) view_.erase(n);
  generation_.fetch_add(1, std::memory_order_release);
  downloads_.erase(key);
  dropBlobRef(*rec);
  return std::nullopt;
}

std::optional<Problem> Catalog::recordChange(db::Batch batch, AuditEntry entry) {
  std::lock_guard lock(mu_);
  appendAudit(&batch, std::move(entry));
  if (auto r = writeDurable(std::move(batch)); !r)
    return Problem{Errc::Io, "cannot record the change: " + r.error().message()};
  return std::nullopt;
}

void Catalog::noteDownload(std::string_view name, std::string_view version) {
  const std::string key = versionKey(name, version);
  uint64_t count;
  {
    std::lock_guard lock(mu_);
    auto n = view_.find(name);
    if (n == view_.end() || !n->second.count(std::string(version))) return;
    count = ++downloads_[key];
  }
  db::Batch b;
  b.put(downloadsF_, key, std::to_string(count));
  counts_->post(std::move(b));
}

uint64_t Catalog::downloads(std::string_view name, std::string_view version) const {
  std::lock_guard lock(mu_);
  auto it = downloads_.find(versionKey(name, version));
  return it == downloads_.end() ? 0 : it->second;
}

Result<std::vector<AuditEntry>> Catalog::audit(uint64_t after, size_t limit) const {
  std::vector<AuditEntry> out;
  auto r = db_->scanFrom(auditF_, seqKey(after + 1), [&](std::string_view, std::string_view value) {
    auto j = nlohmann::json::parse(value, nullptr, false);
    if (j.is_object()) {
      AuditEntry e;
      e.seq = j.value("seq", uint64_t{0});
      e.time = j.value("time", int64_t{0});
      e.action = j.value("action", "");
      e.object = j.value("object", "");
      e.client = j.value("client", "");
      e.token = j.value("token", "");
      e.detail = j.value("detail", "");
      out.push_back(std::move(e));
    }
    return out.size() < limit;
  });
  if (!r) return r.error();
  return out;
}

// ---- the change feed ----

Result<std::vector<std::string>> Catalog::changes(uint64_t after, size_t limit, size_t maxBytes, bool* more) const {
  std::vector<std::string> out;
  size_t bytes = 0;
  *more = false;
  auto r = db_->scanFrom(changesF_, seqKey(after + 1), [&](std::string_view, std::string_view value) {
    if (out.size() >= limit || (!out.empty() && bytes + value.size() > maxBytes)) {
      *more = true;
      return false;
    }
    bytes += value.size();
    out.emplace_back(value);
    return true;
  });
  if (!r) return r.error();
  return out;
}

// ---- following a hub ----

std::optional<FollowState> Catalog::followState() const {
  std::lock_guard lock(mu_);
  return follow_;
}

std::optional<Problem> Catalog::setFollowState(const FollowState& st) {
  std::lock_guard lock(mu_);
  db::Batch batch;
  batch.put(followF_, "state", followStateText(st));
  if (auto r = writeDurable(std::move(batch)); !r)
    return Problem{Errc::Io, "cannot record the follow state: " + r.error().message()};
  follow_ = st;
  return std::nullopt;
}

namespace {

std::string pendingText(uint64_t seq, std::string_view record) {
  return nlohmann::json{{"seq", seq}, {"record", std::string(record)}}.dump(-1, ' ', false,
                                                                           nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::optional<Problem> Catalog::applyReplicated(const Change& c, std::string_view hub, int64_t now,
                                                std::vector<ChangeOp>* fleetOps) {
  // What one version key holds after the change's ops (they may name a key
  // twice): the view's and pending's state, changed op by op.
  struct Touched {
    std::shared_ptr<const PackageVersion> visible;
    std::optional<PendingVersion> pending;
  };
  std::lock_guard lock(mu_);
  std::map<std::string, Touched> touched;
  auto held = [&](const std::string& key) -> Touched& {
    auto it = touched.find(key);
    if (it != touched.end()) return it->second;
    Touched t;
    const size_t zero = key.find('\0');
    if (zero != std::string::npos)
      if (auto n = view_.find(std::string_view(key).substr(0, zero)); n != view_.end())
        if (auto v = n->second.find(key.substr(zero + 1)); v != n->second.end()) t.visible = v->second;
    if (auto p = pending_.find(key); p != pending_.end()) t.pending = p->second;
    return touched.emplace(key, std::move(t)).first->second;
  };
  db::Batch batch;
  size_t versionsOps = 0, skipped = 0;
  for (const ChangeOp& op : c.ops) {
    if (op.family != kVersionsFamily) {
      const db::Family f = db_->family(op.family);
      if (!f.valid()) {
        ++skipped;
        continue;
      }
      if (op.value) batch.put(f, op.key, *op.value);
      else batch.del(f, op.key);
      fleetOps->push_back(op);
      continue;
    }
    ++versionsOps;
    std::optional<PackageVersion> rec;
    if (op.value) {
      if (auto parsed = packageVersionFromJson(nlohmann::json::parse(*op.value, nullptr, false)))
        rec = std::move(parsed).value();
      if (!rec || versionKey(rec->name, rec->version) != op.key || !isHexSha(rec->sha256)) {
        ++skipped;
        OLOG_WARN("catalog: the hub's change %llu holds a version record that does not parse: left out",
                  static_cast<unsigned long long>(c.seq));
        continue;
      }
    }
    Touched& t = held(op.key);
    VersionHeld h;
    if (t.visible) h.visibleSha = t.visible->sha256;
    if (t.pending) h.pendingSha = t.pending->record->sha256;
    switch (decideVersion(h, rec ? std::optional<std::string>(rec->sha256) : std::nullopt)) {
      case VersionStep::UpdateVisible:
        batch.put(versionsF_, op.key, *op.value);
        t.visible = std::make_shared<const PackageVersion>(std::move(*rec));
        if (t.pending) batch.del(pendingF_, op.key);
        t.pending.reset();
        break;
      case VersionStep::PendAndHide:
        batch.del(versionsF_, op.key);
        t.visible = nullptr;
        [[fallthrough]];
      case VersionStep::Pend: {
        batch.put(pendingF_, op.key, pendingText(c.seq, *op.value));
        auto progress = std::make_shared<std::atomic<uint64_t>>(0);
        t.pending = PendingVersion{c.seq, std::make_shared<const PackageVersion>(std::move(*rec)), progress};
        break;
      }
      case VersionStep::Remove:
        batch.del(versionsF_, op.key);
        batch.del(pendingF_, op.key);
        batch.del(downloadsF_, op.key);
        t.visible = nullptr;
        t.pending.reset();
        break;
    }
  }
  batch.put(followF_, "state", followStateText(FollowState{std::string(hub), c.seq}));
  appendAudit(&batch, AuditEntry{0, now, "replicate", "change/" + std::to_string(c.seq), "", "hub " + std::string(hub),
                                 std::to_string(c.ops.size()) + " records (" + std::to_string(versionsOps) +
                                     " versions" + (skipped ? ", " + std::to_string(skipped) + " left out" : "") + ")"});
  if (auto r = writeDurable(std::move(batch)); !r)
    return Problem{Errc::Io, "cannot record the hub's change: " + r.error().message()};
  follow_ = FollowState{std::string(hub), c.seq};
  bool viewChanged = false;
  for (auto& [key, t] : touched) {
    const size_t zero = key.find('\0');
    const std::string name = key.substr(0, zero), version = key.substr(zero + 1);
    std::shared_ptr<const PackageVersion> old;
    if (auto n = view_.find(name); n != view_.end())
      if (auto v = n->second.find(version); v != n->second.end()) old = v->second;
    if (old != t.visible) {
      viewChanged = true;
      if (t.visible) {
        view_[name][version] = t.visible;  // the same bytes (UpdateVisible): the blob's count is unchanged
      } else {
        view_[name].erase(version);
        if (view_[name].empty()) view_.erase(name);
        downloads_.erase(key);
        dropBlobRef(*old);
      }
    }
    if (t.pending) pending_[key] = *t.pending;
    else pending_.erase(key);
  }
  if (viewChanged) generation_.fetch_add(1, std::memory_order_release);
  return std::nullopt;
}

std::vector<Catalog::PendingVersion> Catalog::pending() const {
  std::vector<PendingVersion> out;
  {
    std::lock_guard lock(mu_);
    for (const auto& [k, p] : pending_) out.push_back(p);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.seq < b.seq; });
  return out;
}

size_t Catalog::pendingCount() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

std::variant<Catalog::Imported, Problem> Catalog::importReplica(const PackageVersion& record,
                                                                const ImportSource& source, int64_t now) {
  const std::string key = versionKey(record.name, record.version);
  {
    std::lock_guard lock(mu_);
    auto p = pending_.find(key);
    if (p == pending_.end() || p->second.record->sha256 != record.sha256)
      return Problem{Errc::NotFound, record.name + " " + record.version + " is no longer waiting for these bytes"};
  }
  auto begun = reserve(record.name, record.version, record.filename, record.size, record.sha256, /*createFile=*/false);
  if (auto* p = std::get_if<Problem>(&begun)) return std::move(*p);
  auto& b = std::get<Begun>(begun);
  if (b.identical) return Imported{b.identical, false, false};
  std::unique_ptr<Upload> up = std::move(b.upload);
  up->action_ = "replicate-bytes";
  if (auto p = up->adopt(source.path)) return std::move(*p);  // size and sha256 checked there
  const bool linked = up->linked();

  std::lock_guard lock(mu_);
  auto p = pending_.find(key);
  if (p == pending_.end() || p->second.record->sha256 != record.sha256)
    return Problem{Errc::NotFound, record.name + " " + record.version + " is no longer waiting for these bytes"};
  bool haveBlob = false;
  if (auto pr = placeBlob(up.get(), record.sha256, &haveBlob)) return std::move(*pr);
  db::Batch batch;
  nlohmann::json j;
  toJson(j, record);
  batch.put(versionsF_, key, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  batch.del(pendingF_, key);
  appendAudit(&batch, AuditEntry{0, now, "replicate-bytes", record.name + "/" + record.version, "", "hub",
                                 "sha256 " + record.sha256 + ", " + std::to_string(record.size) + " bytes, " +
                                     (linked ? "linked" : "copied") + (source.note.empty() ? "" : ", " + source.note)});
  if (auto r = writeDurable(std::move(batch)); !r) {
    if (!haveBlob) ::unlink(blobPath(record.sha256).c_str());
    return Problem{Errc::Io, "cannot record the package: " + r.error().message()};
  }
  up->committed_ = true;
  reserved_ -= std::min(reserved_, up->reserved_);
  uploading_.erase(key);
  if (blobRefs_[record.sha256]++ == 0) blobBytes_ += record.size;
  auto rec = std::make_shared<const PackageVersion>(record);
  view_[rec->name][rec->version] = rec;
  pending_.erase(p);
  generation_.fetch_add(1, std::memory_order_release);
  return Imported{rec, true, linked};
}

bool Catalog::promoteIfStored(std::string_view name, std::string_view version, int64_t now) {
  const std::string key = versionKey(name, version);
  std::lock_guard lock(mu_);
  auto p = pending_.find(key);
  if (p == pending_.end()) return false;
  const PackageVersion& record = *p->second.record;
  if (!blobRefs_.count(record.sha256)) return false;
  // Another version names a blob of this SHA-256 (verified when it came).
  db::Batch batch;
  nlohmann::json j;
  toJson(j, record);
  batch.put(versionsF_, key, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  batch.del(pendingF_, key);
  appendAudit(&batch, AuditEntry{0, now, "replicate-bytes", record.name + "/" + record.version, "", "hub",
                                 "sha256 " + record.sha256 + ", stored already"});
  if (auto r = writeDurable(std::move(batch)); !r) return false;
  ++blobRefs_[record.sha256];
  auto rec = p->second.record;
  view_[rec->name][rec->version] = rec;
  pending_.erase(p);
  generation_.fetch_add(1, std::memory_order_release);
  return true;
}

// ---- sites ----

std::optional<Problem> Catalog::putSite(std::string_view site, std::string_view reportJson) {
  if (auto r = db_->put(sitesF_, site, reportJson); !r)
    return Problem{Errc::Io, "cannot record the site's report: " + r.error().message()};
  return std::nullopt;
}

Result<std::vector<std::pair<std::string, std::string>>> Catalog::sites() const {
  std::vector<std::pair<std::string, std::string>> out;
  auto r = db_->forEach(sitesF_, [&](std::string_view k, std::string_view v) {
    if (out.size() < 10000) out.emplace_back(std::string(k), std::string(v));
  });
  if (!r) return r.error();
  return out;
}

}  // namespace orchard::catalog
