// TokenTable; see tokens.h. The hard part is what the lookup must not
// reveal: it hashes before comparing and never leaves the loop early.
#include "server/admin/tokens.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>

namespace orchard::server {

std::array<unsigned char, 32> tokenDigest(std::string_view text) {
  std::array<unsigned char, 32> out{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), out.data());
  return out;
}

TokenTable TokenTable::build(std::string_view adminToken, const std::vector<config::ResolvedToken>& named) {
  TokenTable t;
  t.entries_.reserve(named.size() + 1);
  if (!adminToken.empty())
    t.entries_.push_back(TokenEntry{std::string(config::kAdminTokenName), config::Scope::Admin, tokenDigest(adminToken)});
  for (const config::ResolvedToken& r : named) {
    if (r.secret.empty()) continue;  // never matches anything; the config refuses it anyway
    t.entries_.push_back(TokenEntry{r.name, r.scope, tokenDigest(r.secret)});
  }
  return t;
}

const TokenEntry* TokenTable::find(std::string_view presented) const {
  if (presented.empty()) return nullptr;
  const std::array<unsigned char, 32> d = tokenDigest(presented);
  const TokenEntry* hit = nullptr;
  for (const TokenEntry& e : entries_) {
    // Every entry is compared; the branch-free select keeps the loop's
    // time independent of where (or whether) the match is.
    const int same = CRYPTO_memcmp(d.data(), e.digest.data(), d.size()) == 0;
    const uintptr_t mask = static_cast<uintptr_t>(0) - static_cast<uintptr_t>(same & (hit == nullptr));
    hit = reinterpret_cast<const TokenEntry*>((reinterpret_cast<uintptr_t>(&e) & mask) |
                                              (reinterpret_cast<uintptr_t>(hit) & ~mask));
  }
  return hit;
}

std::string_view bearerToken(std::string_view v) {
  constexpr std::string_view kScheme = "bearer ";
  if (v.size() <= kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (static_cast<char>(std::tolower(static_cast<unsigned char>(v[i]))) != kScheme[i]) return {};
  v.remove_prefix(kScheme.size());
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  return v;
}

}  // namespace orchard::server
