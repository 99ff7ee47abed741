// file_util: the few POSIX file helpers the store needs, and the one place
// where errno becomes an orchard::Error for cache/.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace orchard::cache {

struct ObjectMeta;

// ENOENT -> NotFound, ENOSPC/EDQUOT -> NoSpace, EEXIST -> Exists, else Io.
// `context` must be a static string.
Error errnoError(int err, const char* context) noexcept;

// mkdir -p with mode 0755. Existing directories are fine. On failure,
// `failedPath` (if given) is set to the path whose mkdir or stat failed,
// for a message that names it.
Result<void> makeDirs(const std::string& path, std::string* failedPath = nullptr);

// XXH3-64 of `length` bytes of `fd` at `offset`, read with pread through a
// 256 KiB buffer of the calling thread (the checksum of one block, see
// ObjectMeta::sums). Corrupt if the file ends before offset + length.
// spareCache (the scrub): bytes that were not in the page cache are dropped
// from it again once read, so a pass over the whole store does not push
// the hot objects out; bytes that were cached stay. It turns readahead off
// on `fd` (pass a descriptor of the caller's own).
Result<uint64_t> checksumRange(int fd, uint64_t offset, uint64_t length, bool spareCache = false);

// Gives a Complete meta about to be published its verification marks
// (ObjectMeta::verified: none without checksums; checksums that do not
// cover the object are dropped, and it is then served unverified).
void prepareMarks(ObjectMeta* meta);

// Checks the blocks of [offset, offset + length) of `meta` that its marks
// do not show as passed yet against its checksums, reading `fd`, and marks
// those that pass. ok() if there is nothing to check against. Corrupt with
// *badBlock set if a block does not match (or the file ends inside it);
// another error if a read failed (which says nothing about the bytes).
Result<void> checkBlocks(const ObjectMeta& meta, int fd, uint64_t offset, uint64_t length, uint64_t* badBlock);

// Removes everything inside `path` (files and, recursively, directories),
// keeping `path` itself. Returns how many entries were removed.
Result<uint64_t> clearDir(const std::string& path);

}  // namespace orchard::cache
