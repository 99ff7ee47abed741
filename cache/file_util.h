// file_util: the few POSIX file helpers the store needs, and the one place
// where errno becomes an orchard::Error for cache/.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace orchard::cache {

// ENOENT -> NotFound, ENOSPC/EDQUOT -> NoSpace, EEXIST -> Exists, else Io.
// `context` must be a static string.
Error errnoError(int err, const char* context) noexcept;

// mkdir -p with mode 0755. Existing directories are fine.
Result<void> makeDirs(const std::string& path);

// Removes everything inside `path` (files and, recursively, directories),
// keeping `path` itself. Returns how many entries were removed.
Result<uint64_t> clearDir(const std::string& path);

}  // namespace orchard::cache
