// TokenTable: the admin API's bearer tokens as a loop checks them: each
// token's name and scope with the SHA-256 of its secret, never the secret
// itself. Built once per config snapshot (server/context.h: Snapshot) and
// read-only after, so any loop may look up in it without a lock.
//
// Lookup is constant time in what it could leak: the presented token is
// hashed first (so its length does not show), and its digest is compared
// with every entry's by CRYPTO_memcmp, without stopping at a match (so
// neither how much of a guess was right nor which entry matched shows in
// the time taken).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/tokens.h"

namespace orchard::server {

struct TokenEntry {
  std::string name;  // "admin", "jamf": what the audit log records
  config::Scope scope = config::Scope::Read;
  std::array<unsigned char, 32> digest{};  // SHA-256 of the secret
};

class TokenTable {
 public:
  TokenTable() = default;
  // The admin token (named "admin", scope admin; none when empty), then the
  // named tokens in order. Secrets are validated by the config already.
  static TokenTable build(std::string_view adminToken, const std::vector<config::ResolvedToken>& named);

  // The entry whose secret is `presented`, or nullptr (an empty `presented`
  // never matches). The pointer lives as long as the table.
  const TokenEntry* find(std::string_view presented) const;
  const std::vector<TokenEntry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }

 private:
  std::vector<TokenEntry> entries_;
};

// SHA-256 of `text`.
std::array<unsigned char, 32> tokenDigest(std::string_view text);

// The token of `Authorization: Bearer <token>` (scheme case-insensitive,
// spaces around the token dropped), or "" when the value is not that.
std::string_view bearerToken(std::string_view authorization);

}  // namespace orchard::server
