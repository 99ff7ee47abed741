// SHA-256 of a file, read in fixed-size pieces (package files reach 15 GB,
// so never the whole file in memory). OpenSSL EVP does the hashing.
#pragma once

#include <cstdio>
#include <cstdint>
#include <functional>
#include <string>

namespace orchard::ctl {

// Hashes `file` from its current position to its end and rewinds it.
// Returns the lower-case hex digest, or "" with `*error` set (errno text).
// `onProgress` (may be empty) hears (bytes hashed, `size`) after each piece.
std::string sha256File(std::FILE* file, uint64_t size, const std::function<void(uint64_t, uint64_t)>& onProgress,
                       std::string* error);

}  // namespace orchard::ctl
