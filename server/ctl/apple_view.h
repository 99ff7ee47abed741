// How `orchardctl apple ...` and `orchardctl prewarm ...` show the box's
// answers about Apple's content (INTERFACE.md "Apple content"), and the
// pure decisions `apple mirror` takes while it follows a job. Pure: JSON
// in, text (or a decision) out, so tests/unit/server/ctl/apple_view_test.cc
// pins every format. The commands that send the requests are in apple.cc.
//
// Every field is read defensively: a missing key, a null or a value of
// another type shows as "-" (or is left out), never as an exception.
//
//   apple products    catalog line, then ID KIND TITLE VERSION BUILD POSTED SIZE HELD MIRROR
//   apple show        the product's fields, then each package: STATE PERCENT HELD SIZE INTEGRITY URL
//   apple mirrors     window line, then ID STATE PERCENT HELD RATE ETA REASON
//   apple os-versions SET PLATFORM VERSION BUILD POSTED EXPIRES DEVICES, then the source line
//   prewarm list      NAME URLS PRODUCTS WINDOW INTERVAL STATE COVERAGE UPDATED
//   prewarm show      the list's fields, its URLs and products, then its items
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "server/ctl/progress.h"

namespace orchard::ctl {

// "2024-08-07" from "2024-08-07T17:00:00Z" (or from Unix seconds); another
// string as is; "-" when absent.
std::string dateOf(const nlohmann::json& value);
// An RFC 3339 string as is, Unix seconds as RFC 3339 UTC; "-" when absent.
std::string timeOf(const nlohmann::json& value);
// The last path segment of a URL, without its query ("InstallAssistant.pkg").
std::string fileName(const std::string& url);

// GET /api/v1/apple/products: one catalog line, then the table (or a line
// saying nothing matched).
std::string productsText(const nlohmann::json& answer);
// GET /api/v1/apple/products/{id}.
std::string productText(const nlohmann::json& product);
// GET /api/v1/apple/mirrors.
std::string mirrorsText(const nlohmann::json& answer);
// One job in a line: "mirror job 7: queued, 3 files, 12.0 GiB, held 0%"
// (plus "(already queued)" and a "note: ..." line when the box says so).
std::string jobText(const nlohmann::json& job);
// Why a job failed: its reason, then each failed item with its reason and
// verify failures; lines end in newlines.
std::string jobFailureText(const nlohmann::json& job);
// Why a job waits (outside apple.mirror_window) and what to do about it.
std::string jobWaitingText(const nlohmann::json& job);
// GET /api/v1/apple/os-versions: the table, then the source line.
std::string osVersionsText(const nlohmann::json& answer);
// GET /api/v1/prewarm.
std::string prewarmListText(const nlohmann::json& answer);
// GET /api/v1/prewarm/{name} (and the answer of a PUT).
std::string prewarmText(const nlohmann::json& list);

// Where a job is, for the progress bar: bytes done and total, and what the
// box reports (percent, rate, ETA, the file being fetched).
struct JobProgress {
  uint64_t done = 0;
  uint64_t total = 0;
  Reported reported;
};
JobProgress jobProgress(const nlohmann::json& job);

// What `apple mirror` does after reading a job.
enum class MirrorNext {
  Poll,     // queued or running (or waiting, with --wait-window): read it again in 500 ms
  Done,     // exit 0
  Failed,   // failed, or a state this orchardctl does not know: exit 1 with the reason
  Waiting,  // outside the mirror window and no --wait-window: say why, exit 0
};
MirrorNext mirrorNext(const nlohmann::json& job, bool waitWindow);
const char* mirrorNextName(MirrorNext next);

// `prewarm put --interval`: "6h", "90m", "1h30m", "1d", a bare number of
// seconds; whole seconds above zero. nullopt (and *why) otherwise.
std::optional<int64_t> parseInterval(const std::string& text, std::string* why);
// `prewarm put --window`: "HH:MM-HH:MM" as apple.mirror_window takes it.
bool validWindow(const std::string& text);
// `import --sha256`: 64 hex digits.
bool validSha256(const std::string& text);

}  // namespace orchard::ctl
