// MemoryStore: a Store with no directory and no database, for tests and
// tools that need the Store contract without its durability: records in
// in-memory maps, object bytes in memfd_create() files (so that fds,
// pread, fstat and ensureVerified() work as on the file store).
//
// What it keeps of the contract: lookup/openObject/openForRead (each open a
// descriptor of its own, O_RDONLY, with its own offset), the partial and
// commit lifecycle with its size checks, Vary stubs, refresh, removal,
// block verification (corrupt objects are dropped and counted), scrubNow(),
// stats and health. What it does not do: survive its destruction (nothing
// is durable), evict (cacheLimit is not known to it: requestEviction() and
// the busy check are accepted and ignored), reconcile (reconciled() is
// true at once), or name files on disk (objectFilePath() names the memfd).
// Thread safety: every method may be called from any thread (one lock).
#pragma once

#include <memory>

#include "cache/store.h"

namespace orchard::cache {

std::unique_ptr<Store> makeMemoryStore();

}  // namespace orchard::cache
