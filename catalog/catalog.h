// Catalog: the published packages of this box, their bytes on disk and
// their records in the box's RocksDB. No sockets: the HTTP handlers
// (server/catalog/) call it from their thread pool.
//
// Bytes: each distinct file is stored once, by its SHA-256, at
// <dir>/blobs/<first two hex>/<sha256>; a version record names its blob. A
// blob is unlinked when the last version naming it is deleted (a download
// already running keeps its open descriptor and finishes). Uploads stream
// into <dir>/tmp/ and are renamed into place only when whole, hashed and
// fsynced. open() sweeps <dir>/tmp and removes blobs no record names, so a
// kill -9 at any point leaves no visible package and no garbage.
//
// Records (families, all written with durable batches):
//   catalog.versions   name \0 version -> PackageVersion JSON (package.h)
//   catalog.audit      8-byte big-endian sequence -> AuditEntry JSON
//   catalog.downloads  name \0 version -> decimal count (best effort)
//   catalog.changes    8-byte big-endian sequence -> change JSON (change_feed.h)
//   catalog.pending    name \0 version -> {"seq", "record"} (a branch: waiting for bytes)
//   catalog.follow     "state" -> {"hub", "applied"} (a branch: its feed position)
//   catalog.sites      site -> its last report (a hub: GET /api/v1/sites)
// A publish or a delete is one batch: the version record and its audit
// entry together, so the log never disagrees with the catalog.
//
// Change feed (change_feed.h): every batch written here (the fleet's
// through recordChange) that touches a replicated family also gets, in
// the same batch, an entry of catalog.changes with those records, so a
// branch that applies the feed in order holds what the hub holds. A box
// whose feed is empty at open but whose catalog is not writes a baseline
// first (every replicated record, cut into changes of about 1 MiB).
//
// Following (a branch, catalog.follow): applyReplicated() writes one
// change of the hub's feed, its follow state (the hub's seq) and an audit
// entry in one durable batch, so a kill -9 between two changes resumes
// after the last one applied and never applies one twice. A version record
// from the hub becomes pending (catalog.pending, with the seq that brought
// it) and is not in the view: no installs answer, manifest, /pkgs or
// package list shows it until importReplica() has its bytes here, hashed
// to the record's SHA-256, and makes it visible (the version record in,
// the pending one out, one batch).
//
// Space: published bytes count against `limit` (catalog.limit), never
// against the cache's. An upload reserves its declared size when it begins
// (NoSpace: the HTTP 507) and gives back what it did not use when it ends;
// the same bytes published twice take their space once.
//
// Imports (importFile): a file already on this file system (a complete
// cache object, which is immutable: a refetch makes a new file) becomes a
// package without a copy of its bytes: it is hard-linked into <dir>/tmp,
// hashed there like an upload, and committed the same way (renamed into
// blobs/), so the blob shares the cache object's inode. The cache may then
// unlink its own name (evict, refetch, purge) without touching the package;
// the bytes count against `limit` like any published blob. On another file
// system (EXDEV) or where links are refused (EPERM) the file is copied
// into <dir>/tmp instead (a warning in the log).
//
// Concurrency: every method may be called from any thread. One mutex
// guards the in-memory view; disk and database work happen outside it
// except the commit's rename + batch, which must be atomic with the view.
// Two uploads of one name/version: the second to begin is refused (Busy)
// while the first runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "catalog/change_feed.h"
#include "catalog/delivery.h"
#include "catalog/package.h"
#include "common/result.h"
#include "db/database.h"
#include "db/write_queue.h"

namespace orchard::catalog {

inline constexpr const char* kVersionsFamily = "catalog.versions";
inline constexpr const char* kAuditFamily = "catalog.audit";
inline constexpr const char* kDownloadsFamily = "catalog.downloads";
// Every family the catalog keeps (for Database::open and repair).
std::vector<std::string> families();

// A refusal with a reason for the admin. code: Invalid (400), Exists
// (409: another file under that version), Busy (409: a publish of it is
// running), NoSpace (507), NotFound (404), Io (500).
struct Problem {
  Errc code = Errc::Io;
  std::string detail;
};

// Who made a change, for the audit log.
struct Actor {
  std::string client;  // address of the client
  std::string token;   // identity of the token used ("admin")
};

struct AuditEntry {
  uint64_t seq = 0;
  int64_t time = 0;    // Unix seconds
  std::string action;  // "publish", "import", "delete"
  std::string object;  // "name/version"
  std::string client;
  std::string token;
  std::string detail;  // e.g. the sha256 published
};

class Catalog;

// An upload in progress: bytes go to a temp file, hashed as they pass
// (SHA-256 of the whole and of each kChunkSize chunk). write() and finish()
// block on disk: call them off the event loops. Destroying an Upload that
// was not committed removes its temp file and gives back its reservation.
class Upload {
 public:
  ~Upload();
  Upload(const Upload&) = delete;
  Upload& operator=(const Upload&) = delete;

  // Appends bytes. NoSpace when the disk is full or more arrive than the
  // declared size; Io otherwise.
  std::optional<Problem> write(const char* data, size_t n);
  // write()'s two halves, which touch disjoint state: the file and the
  // whole-file digest (with the count and its checks), and the chunk
  // digests. The two of one piece may run at once on two threads (each
  // half's calls in piece order); SHA-256 twice on one thread is the
  // publish's ceiling otherwise.
  std::optional<Problem> writeWhole(const char* data, size_t n);
  void hashChunks(const char* data, size_t n);
  // All bytes are in: checks the count against the declared size and the
  // checksum against the expected one (Invalid on a mismatch), fsyncs the
  // file. After it, sha256() and chunks() hold the file's digests.
  std::optional<Problem> finish();

  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }
  const std::string& filename() const { return filename_; }
  uint64_t received() const { return received_; }
  uint64_t declared() const { return declared_; }
  const std::string& sha256() const { return sha_; }
  const std::vector<std::string>& chunks() const { return chunks_; }
  // The temp file, whole after finish(): what the metadata reader reads.
  const std::string& path() const { return path_; }
  Catalog* catalog() const { return catalog_; }
  // An import whose temp file is a hard link to its source (false: a copy,
  // or not an import).
  bool linked() const { return linked_; }

 private:
  friend class Catalog;
  // createFile: false for an import, whose temp file adopt() makes.
  Upload(Catalog* c, std::string name, std::string version, std::string filename, uint64_t declared,
         std::string expectSha, uint64_t reserved, bool createFile = true);
  // An import's bytes: links `source` into <dir>/tmp (a copy on EXDEV or
  // EPERM), checks its size against the declared one, hashes it with the
  // same two halves as write() and finish()es it. NotFound when the source
  // is gone (the caller may fetch it again).
  std::optional<Problem> adopt(const std::string& source);
  // Feeds the bytes of `fd` (from its start to its end) through
  // takeWhole(data, n, write) and hashChunks(), the two halves of each
  // piece on two threads at once.
  std::optional<Problem> feed(int fd, bool write);
  // writeWhole() with the write optional (an adopted link holds the bytes).
  std::optional<Problem> takeWhole(const char* data, size_t n, bool write);
  struct Hashers;
  Catalog* catalog_;
  std::string name_, version_, filename_;
  uint64_t declared_;
  std::string expectSha_;  // lower-case hex, or empty
  uint64_t reserved_;      // bytes held against the limit
  std::string path_;
  int fd_ = -1;
  uint64_t received_ = 0;
  uint64_t chunkFill_ = 0;
  std::unique_ptr<Hashers> hash_;
  std::string sha_;
  std::vector<std::string> chunks_;
  bool finished_ = false;
  bool committed_ = false;
  bool linked_ = false;
  std::string action_ = "publish";  // the audit entry's action
  std::string note_;                // appended to the audit entry's detail
};

struct CatalogOptions {
  std::string dir;     // storage.dir/packages
  uint64_t limit = 0;  // catalog.limit in bytes
};

class Catalog {
 public:
  // Opens the catalog's view of `database` (which must have families()),
  // creating dir, sweeping temp files and unreferenced blobs. A record that
  // does not parse or names a missing blob is logged and left out of the
  // view (never served).
  static Result<std::unique_ptr<Catalog>> open(const CatalogOptions& options, std::shared_ptr<db::Database> database);
  ~Catalog();

  void setLimit(uint64_t bytes) { limit_.store(bytes, std::memory_order_relaxed); }
  uint64_t limit() const { return limit_.load(std::memory_order_relaxed); }
  uint64_t usedBytes() const;  // distinct published blobs + reservations

  // --- publishing ---
  // What begin() found when the version exists already with the expected
  // checksum: nothing to upload (the publish is idempotent).
  struct Begun {
    std::unique_ptr<Upload> upload;                   // set: stream the body into it
    std::shared_ptr<const PackageVersion> identical;  // set: already published with these bytes
  };
  // Decided from the request head: Exists when the version is published
  // with other bytes (only knowable here when expectSha is given; otherwise
  // commit() decides), Busy when another upload of it runs, NoSpace when
  // `size` does not fit in the limit (a blob already stored under
  // expectSha needs no space).
  std::variant<Begun, Problem> begin(std::string_view name, std::string_view version, std::string_view filename,
                                     uint64_t size, std::string_view expectSha);
  // Makes a finished upload visible: its blob moved into place, then the
  // version record (metadata, signature, warnings filled by the caller in
  // `draft`) and an audit entry in one durable batch. Returns the record
  // and whether it is new (false: the same bytes were published already,
  // nothing changed). Exists when the version holds other bytes.
  struct Committed {
    std::shared_ptr<const PackageVersion> version;
    bool created = false;
  };
  std::variant<Committed, Problem> commit(std::unique_ptr<Upload> upload, PackageVersion draft, const Actor& actor,
                                          int64_t now);

  // --- importing ---
  // A file on this file system published as name/version/filename without
  // a copy of its bytes (see "Imports" above). The file itself is left as
  // it is; removing it afterwards leaves the package intact.
  struct ImportSource {
    std::string path;       // the file (a complete cache object)
    uint64_t size = 0;      // what it must measure: Invalid otherwise
    std::string expectSha;  // lower-case hex the bytes must hash to, or empty
    std::string note;       // for the audit entry ("from http://...")
  };
  // Called once the file is whole and hashed in <dir>/tmp (`path`), before
  // the commit: fills the draft's metadata, signature and warnings (as the
  // publish handler does from an upload's file). A problem refuses the
  // import. May be empty.
  using ImportPrepare = std::function<std::optional<Problem>(const std::string& path, PackageVersion* draft)>;
  struct Imported {
    std::shared_ptr<const PackageVersion> version;
    bool created = false;  // false: the same bytes were published already
    bool linked = false;   // new, and its bytes came by a hard link to the source (false: copied)
  };
  // begin()'s refusals (Exists, Busy, NoSpace: the 507) decided first, then
  // the link (or copy) and hashing, the size and checksum checks (Invalid),
  // `prepare`, and commit()'s rename and durable batch (audit action
  // "import"). Idempotent: the same bytes again change nothing (created
  // false); other bytes under the version are Exists. NotFound when the
  // source is gone. A refusal at any point leaves no temp file, no blob and
  // no record. Blocks on disk (the hashing reads the whole file): call it
  // off the event loops.
  std::variant<Imported, Problem> importFile(std::string_view name, std::string_view version,
                                             std::string_view filename, const ImportSource& source,
                                             const ImportPrepare& prepare, const Actor& actor, int64_t now);

  // --- reading (in memory) ---
  std::shared_ptr<const PackageVersion> find(std::string_view name, std::string_view version) const;
  // Versions of one package, newest first by versionLess (version.h).
  std::vector<std::shared_ptr<const PackageVersion>> versions(std::string_view name) const;
  std::vector<std::string> names() const;  // sorted
  // Bumped by every change of the view (publish, metadata, delete), after
  // it, under the lock the readers take: a copy built from the view after
  // reading generation() is at least that new.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  size_t versionCount() const;
  std::string blobPath(std::string_view sha256) const;

  // --- editing ---
  // Replaces the metadata of a published version with what edit() makes of
  // a copy (a problem from edit() refuses the change: Invalid), in one
  // durable batch with its audit entry. NotFound when there is no such
  // version. The bytes, and so the chunk hashes, never change.
  using MetadataEdit = std::function<std::optional<std::string>(PackageMetadata*)>;
  std::variant<std::shared_ptr<const PackageVersion>, Problem> updateMetadata(std::string_view name,
                                                                              std::string_view version,
                                                                              const MetadataEdit& edit,
                                                                              const Actor& actor, int64_t now);

  // --- deleting ---
  // The version is gone from the view at once; its blob is unlinked when no
  // other version names it. NotFound when there is no such version.
  std::optional<Problem> remove(std::string_view name, std::string_view version, const Actor& actor, int64_t now);

  // Another concern's change (the fleet's records) written as one durable
  // batch together with its audit entry (seq and time filled here), so the
  // one audit log stays in order with the catalog's own changes.
  std::optional<Problem> recordChange(db::Batch batch, AuditEntry entry);

  // --- counters and the audit log ---
  // A download of the version finished (any thread; the count is written
  // off the caller's thread).
  void noteDownload(std::string_view name, std::string_view version);
  uint64_t downloads(std::string_view name, std::string_view version) const;
  // Per client network, since start (delivery.h).
  DeliveryCounters& deliveries() { return deliveries_; }
  // Entries with seq > after, oldest first, at most `limit`.
  Result<std::vector<AuditEntry>> audit(uint64_t after, size_t limit) const;

  // --- the change feed (a hub: change_feed.h) ---
  // The newest change written (0: none).
  uint64_t lastChange() const { return lastChange_.load(std::memory_order_acquire); }
  // The JSON texts of changes with seq > after, oldest first: at most
  // `limit`, and no more once `maxBytes` are taken (one at least). *more:
  // changes past the page exist.
  Result<std::vector<std::string>> changes(uint64_t after, size_t limit, size_t maxBytes, bool* more) const;
  // Called on the writer's thread right after each write that added a
  // change, under the catalog's lock: it may only wake something (the long
  // polls' waiter), never call back into the catalog. May be empty.
  void setChangeHook(std::function<void()> hook);

  // --- following a hub (a branch) ---
  std::optional<FollowState> followState() const;
  // Writes the hub's change `c` (see the top of this file) with the follow
  // state {hub, c.seq} and an audit entry ("replicate") in one durable
  // batch, then the view. `fleetOps` gets the ops of the fleet's families,
  // in order, for FleetStore's view (FleetStore::applyReplicated calls
  // this under its own lock). An op that does not make sense (a version
  // record that does not parse, a key that does not match it) is left out
  // and logged; the change still counts as applied.
  std::optional<Problem> applyReplicated(const Change& c, std::string_view hub, int64_t now,
                                         std::vector<ChangeOp>* fleetOps);
  // Sets the follow state alone (a hub whose feed went back: from 0).
  std::optional<Problem> setFollowState(const FollowState& s);
  struct PendingVersion {
    uint64_t seq = 0;  // the hub's change that brought it
    std::shared_ptr<const PackageVersion> record;
    std::shared_ptr<std::atomic<uint64_t>> held;  // bytes fetched so far (progress, best effort)
  };
  // Oldest first by seq.
  std::vector<PendingVersion> pending() const;
  size_t pendingCount() const;
  // Makes the pending `record` visible with the bytes of `source` (a
  // complete cache object, linked as importFile does): the bytes must
  // measure record.size and hash to record.sha256 (Invalid otherwise),
  // and the record must still be pending with those bytes (NotFound: a
  // later change removed or replaced it). One batch: the version record,
  // the pending one deleted, the audit entry ("replicate-bytes").
  std::variant<Imported, Problem> importReplica(const PackageVersion& record, const ImportSource& source, int64_t now);
  // A pending version whose bytes are stored already (another version
  // holds the same blob) made visible without a fetch: true when it was.
  bool promoteIfStored(std::string_view name, std::string_view version, int64_t now);

  // --- sites (a hub: the branches' last reports, GET /api/v1/sites) ---
  std::optional<Problem> putSite(std::string_view site, std::string_view reportJson);
  Result<std::vector<std::pair<std::string, std::string>>> sites() const;  // site -> report, by site

 private:
  friend class Upload;
  Catalog(CatalogOptions options, std::shared_ptr<db::Database> database);
  Result<void> load();
  // begin() with the choice of creating the upload's temp file (an import
  // makes its own).
  std::variant<Begun, Problem> reserve(std::string_view name, std::string_view version, std::string_view filename,
                                       uint64_t size, std::string_view expectSha, bool createFile);
  void release(uint64_t reserved, const std::string& key);  // an upload ended
  // Under mu_: the audit entry, and the change entry of the batch's
  // replicated records (when it has some), appended to the batch.
  void appendAudit(db::Batch* batch, AuditEntry entry);
  // Under mu_: a durable write of a batch appendAudit finished; on success
  // the feed's last seq moves and the change hook is called (see
  // hook).
  Result<void> writeDurable(db::Batch&& batch);
  Result<void> writeBaseline();  // at open, see the top of this file
  // Under mu_: the blob of a finished upload into place (or dropped when
  // the same bytes are stored already: *haveBlob).
  std::optional<Problem> placeBlob(Upload* up, const std::string& sha, bool* haveBlob);
  void dropBlobRef(const PackageVersion& rec);  // under mu_: unlinks the blob with its last version

  CatalogOptions options_;
  std::shared_ptr<db::Database> db_;
  db::Family versionsF_, auditF_, downloadsF_, changesF_, pendingF_, followF_, sitesF_;
  std::vector<bool> replicated_;  // by family id: copied into the change feed
  std::atomic<uint64_t> limit_{0};
  std::atomic<uint64_t> generation_{0};
  std::unique_ptr<db::WriteQueue> counts_;  // download counts, off the callers' threads

  mutable std::mutex mu_;
  // name -> version -> record
  std::map<std::string, std::map<std::string, std::shared_ptr<const PackageVersion>>, std::less<>> view_;
  std::unordered_map<std::string, uint32_t> blobRefs_;  // sha256 -> versions naming it
  uint64_t blobBytes_ = 0;                              // sum of distinct blob sizes
  uint64_t reserved_ = 0;                               // uploads in flight
  std::unordered_map<std::string, bool> uploading_;     // name \0 version of uploads in flight
  std::unordered_map<std::string, uint64_t> downloads_; // name \0 version -> count
  uint64_t nextSeq_ = 1;
  uint64_t nextChange_ = 1;
  std::atomic<uint64_t> lastChange_{0};
  std::function<void()> changeHook_;
  std::map<std::string, PendingVersion, std::less<>> pending_;  // name \0 version
  std::optional<FollowState> follow_;
  DeliveryCounters deliveries_;
};

}  // namespace orchard::catalog
