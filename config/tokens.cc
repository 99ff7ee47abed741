// Token scopes and the rules for token names and texts; see tokens.h.
#include "config/tokens.h"

namespace orchard::config {

const char* scopeName(Scope s) noexcept {
  switch (s) {
    case Scope::Read: return "read";
    case Scope::Mdm: return "mdm";
    case Scope::Publish: return "publish";
    case Scope::Admin: return "admin";
  }
  return "?";
}

std::optional<Scope> parseScope(std::string_view name) noexcept {
  for (Scope s : {Scope::Read, Scope::Mdm, Scope::Publish, Scope::Admin})
    if (name == scopeName(s)) return s;
  return std::nullopt;
}

const char* tokenNameProblem(std::string_view name) noexcept {
  if (name.empty()) return "a token name must not be empty";
  if (name.size() > kMaxTokenNameLength) return "a token name has at most 64 characters";
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return "a token name is made of letters, digits, '.', '_' and '-'";
  }
  return nullptr;
}

const char* tokenTextProblem(std::string_view text) noexcept {
  if (text.empty()) return "the token is empty";
  if (text.size() < kMinTokenLength) return "a token needs at least 16 characters";
  if (text.size() > kMaxTokenLength) return "a token has at most 4096 characters";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return "a token is made of visible ASCII characters, without spaces";
  }
  return nullptr;
}

}  // namespace orchard::config
