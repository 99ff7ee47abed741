// Internal requests; see internal_request.h.
#include "server/proxy/internal_request.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <string>

#include "common/headers.h"
#include "server/net/address_class.h"

namespace orchard::server {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

InternalKind judgeInternalValue(std::string_view secret, std::string_view value) noexcept {
  if (secret.size() != kInternalSecretChars) return InternalKind::None;
  const size_t semi = value.find(';');
  const std::string_view token = trim(value.substr(0, semi));
  InternalKind kind = InternalKind::Internal;
  if (semi != std::string_view::npos) {
    if (!iequals(trim(value.substr(semi + 1)), "capped")) return InternalKind::None;
    kind = InternalKind::Capped;
  }
  // The length is public (always 32); the bytes are compared in constant time.
  if (token.size() != secret.size()) return InternalKind::None;
  if (CRYPTO_memcmp(token.data(), secret.data(), secret.size()) != 0) return InternalKind::None;
  return kind;
}

InternalKind internalKind(std::string_view secret, const RequestHead& req, const struct sockaddr* peer) noexcept {
  if (secret.empty() || !peer || classifyAddress(peer) != AddressClass::Loopback) return InternalKind::None;
  const std::string* value = nullptr;
  for (const auto& [k, v] : req.headers) {
    if (!iequals(k, kInternalHeader)) continue;
    if (value) return InternalKind::None;  // two: refuse to guess which counts
    value = &v;
  }
  return value ? judgeInternalValue(secret, *value) : InternalKind::None;
}

std::string makeInternalSecret() {
  unsigned char raw[kInternalSecretChars / 2];
  if (RAND_bytes(raw, sizeof raw) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(kInternalSecretChars);
  for (unsigned char b : raw) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

bool validInternalSecret(std::string_view s) noexcept {
  if (s.size() != kInternalSecretChars) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace orchard::server
