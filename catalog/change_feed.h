// The catalog's change feed: what a hub box serves at
// GET /api/v1/catalog/changes and a branch box (catalog.follow) applies in
// order. Pure: the JSON forms, their checks, and the decisions a branch
// makes when it applies a change; the records and batches are Catalog's
// (catalog.h) and FleetStore's, the HTTP is server/catalog/.
//
// A change is the replicated records one durable batch wrote, in the order
// it wrote them, copied into the same batch as an entry of
// catalog.changes (8-byte big-endian seq -> change JSON):
//   {"seq": N, "time": T, "ops": [{"f": "catalog.versions", "k": "<hex>", "v": "<record>"},
//                                 {"f": "catalog.pins", "k": "<hex>", "d": true}, ...]}
// Keys hold \0 (name \0 version), so they travel as lower-case hex; values
// are the records' own bytes (JSON text) as a JSON string. Only the
// catalog's shared records are replicated (replicatedFamilies()): package
// versions, targeting rules, rings, rollout logs, pins, OS targets and
// release policies. Devices, status reports, download counts, the audit
// log and the box's own follow state stay per box.
//
// A page of the feed:
//   {"changes": [change, ...], "last": L, "more": true|false}
// `last` is the hub's newest seq (its whole feed, not the page's).
//
// Branch-side decisions (planApply): a version record is never made
// visible by the feed itself. A put of catalog.versions becomes a pending
// record (catalog.pending) until its bytes are here and verified, except
// when the very same bytes are visible already (a metadata edit: the
// visible record is replaced at once). A delete of a version removes it
// whether pending or visible. Every other op is written as it came.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "catalog/fleet.h"
#include "catalog/rollout.h"

namespace orchard::catalog {

inline constexpr const char* kChangesFamily = "catalog.changes";  // seq -> change JSON (this box's feed)
inline constexpr const char* kPendingFamily = "catalog.pending";  // name \0 version -> pending JSON (a branch)
inline constexpr const char* kFollowFamily = "catalog.follow";    // "state" -> follow state JSON (a branch)
inline constexpr const char* kSitesFamily = "catalog.sites";      // site -> its last report (a hub)

// Bounds of the feed, both sides.
inline constexpr size_t kMaxChangesPerPage = 1000;
inline constexpr size_t kPageBytes = 4u << 20;           // a page stops growing past this (one change at least)
inline constexpr size_t kMaxPageBytes = 64u << 20;       // a branch refuses a larger answer
inline constexpr size_t kMaxOpsPerChange = 100000;
inline constexpr size_t kMaxKeyBytes = 4096;
inline constexpr size_t kMaxValueBytes = 16u << 20;
inline constexpr size_t kBaselineChangeBytes = 1u << 20; // a baseline is cut into changes of about this size

// The families a change carries.
const std::vector<std::string>& replicatedFamilies();
bool isReplicatedFamily(std::string_view family);

struct ChangeOp {
  std::string family;
  std::string key;                   // raw bytes (hex only on the wire)
  std::optional<std::string> value;  // nullopt: delete
  bool operator==(const ChangeOp&) const = default;
};

struct Change {
  uint64_t seq = 0;
  int64_t time = 0;
  std::vector<ChangeOp> ops;
  bool operator==(const Change&) const = default;
};

std::string hexEncode(std::string_view bytes);
std::optional<std::string> hexDecode(std::string_view hex);  // lower- or upper-case; nullopt when not hex

// The JSON text of a change (what catalog.changes holds and the feed sends).
std::string changeText(const Change& c);
nlohmann::json changeJson(const Change& c);
// A change from its JSON: seq > 0, every op of a replicated family, a hex
// key of 1..kMaxKeyBytes bytes, exactly one of "v" (a string of at most
// kMaxValueBytes) and "d": true, unknown fields refused. The reason otherwise.
std::variant<Change, std::string> changeFromJson(const nlohmann::json& j);

struct ChangePage {
  std::vector<Change> changes;
  uint64_t last = 0;
  bool more = false;
};
// A feed page for a request with `since`: the changes strictly increasing
// and each > since, last >= every change's seq, at most kMaxChangesPerPage.
// The reason (for the branch's last_error) otherwise.
std::variant<ChangePage, std::string> parseChangePage(std::string_view body, uint64_t since);

// The baseline of a box whose feed is empty but whose catalog is not: every
// replicated record as puts, cut into changes of about kBaselineChangeBytes
// (seq and time left 0: the Catalog numbers them).
std::vector<Change> baselineChanges(const std::vector<ChangeOp>& records);

// --- the branch's decisions ---

// What a branch holds of one version when a change names it.
struct VersionHeld {
  std::optional<std::string> visibleSha;  // published here (bytes present)
  std::optional<std::string> pendingSha;  // waiting for its bytes
};

enum class VersionStep {
  UpdateVisible,   // the same bytes are visible: replace the record at once
  Pend,            // keep the record pending until its bytes are here
  PendAndHide,     // other bytes than the visible ones: the visible one goes, the new one waits
  Remove,          // a delete: gone, pending or visible
};
const char* versionStepName(VersionStep s);

// sha: the new record's sha256 (put), nullopt for a delete.
VersionStep decideVersion(const VersionHeld& held, const std::optional<std::string>& sha);

// The sha256 and size of a version record's JSON text (the fields a branch
// needs to plan), or nullopt when it is not a usable record.
struct RecordBytes {
  std::string name, version, filename, sha256;
  uint64_t size = 0;
};
std::optional<RecordBytes> recordBytes(std::string_view recordJson);

// The follow state a branch keeps (catalog.follow "state"): the hub it
// follows and the last seq of that hub's feed it applied.
struct FollowState {
  std::string hub;
  uint64_t applied = 0;
  bool operator==(const FollowState&) const = default;
};
std::string followStateText(const FollowState& s);
std::optional<FollowState> followStateFromText(std::string_view text);

// Where a branch resumes: its state's seq when it follows the same hub and
// the hub's feed has not gone back behind it (a hub whose database was
// replaced starts its numbers again: the branch then takes it from 0,
// every put again, which changes nothing already applied); 0 otherwise.
uint64_t resumeFrom(const std::optional<FollowState>& state, std::string_view hub, std::optional<uint64_t> hubLast);

// Is a pending version offered now to one of this box's devices (so its
// bytes are fetched first)? Its rollout replayed at `now` (with the
// implicit Start at `published` when the package's release is on_publish)
// is started and not rolled back, and some device is inside the ring it
// reached (inRing, scope = the package name).
bool wantedHere(std::string_view package, int64_t published, const std::vector<Ring>& rings,
                int64_t promoteAfterSecs, bool onPublish, std::vector<RolloutEvent> events,
                const std::vector<Device>& devices, int64_t now);

}  // namespace orchard::catalog
