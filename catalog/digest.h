// SHA-256 over a string and lower-case hex, shared by the catalog's pure
// code (staged-rollout buckets, declaration ServerTokens) and the upload
// path, so the hex encoding is written once. libcrypto's one-shot EVP
// digest: no state is kept, safe from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace orchard::catalog {

using Sha256Digest = std::array<unsigned char, 32>;

Sha256Digest sha256(std::string_view data);

// Lower-case hex of n bytes ("0123456789abcdef").
std::string hexLower(const unsigned char* p, size_t n);

// hexLower(sha256(data)): 64 characters.
std::string sha256Hex(std::string_view data);

}  // namespace orchard::catalog
