// Admin API tokens as the config names them: what a token may do (its
// Scope), one `[[admin.tokens]]` entry (TokenSpec), and the rules a token's
// name and text must follow. Pure values and checks: the server turns the
// resolved tokens into digests and compares them in constant time
// (server/admin/tokens.h); nothing here sees a request.
//
// Scopes, from least to most (README "Who may use the box"):
//   read     every GET of the admin API (lists, records, history, audit, installs)
//   mdm      read + device writes: PUT device, import, status reports
//   publish  read + package uploads, metadata PATCH, targeting PUT
//   admin    everything: deletions, rollout actions, rings, pins, OS targets, test clock
// mdm and publish are siblings: neither includes the other.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace orchard::config {

enum class Scope : uint8_t { Read, Mdm, Publish, Admin };

// "read", "mdm", "publish", "admin".
const char* scopeName(Scope s) noexcept;
// The scope named `name` (exact, lower case), or nullopt.
std::optional<Scope> parseScope(std::string_view name) noexcept;
// Whether a token of scope `have` may use a route that needs `need`.
constexpr bool scopeAllows(Scope have, Scope need) noexcept {
  return have == Scope::Admin || have == need || need == Scope::Read;
}

// A token's text: at least this long (a guessable token over a LAN is no
// lock). admin.token keeps no minimum, for the configs that predate it.
inline constexpr size_t kMinTokenLength = 16;
inline constexpr size_t kMaxTokenLength = 4096;
inline constexpr size_t kMaxTokenNameLength = 64;
// The name admin.token (or its file, or the generated one) goes by.
inline constexpr std::string_view kAdminTokenName = "admin";

// One [[admin.tokens]] entry as loaded: exactly one of token / tokenFile is
// set (the loader checks it; the file is read into the snapshot).
struct TokenSpec {
  std::string name;       // shown in the audit log: "jamf", "ci-publisher"
  std::string token;      // the secret, or ""
  std::string tokenFile;  // or a file holding it (first line, trimmed)
  Scope scope = Scope::Read;
  bool operator==(const TokenSpec&) const = default;
};

// A token ready for use: its secret known (token_file read). The snapshot
// holds these (config/reload.h); admin.token is not among them.
struct ResolvedToken {
  std::string name;
  std::string secret;
  Scope scope = Scope::Read;
};

// Why `name` cannot name a token (nullptr when it can): 1 to 64 of
// [A-Za-z0-9._-].
const char* tokenNameProblem(std::string_view name) noexcept;
// Why `text` cannot be a token of admin.tokens (nullptr when it can): at
// least kMinTokenLength and at most kMaxTokenLength visible ASCII
// characters, no spaces (it travels in an Authorization header).
const char* tokenTextProblem(std::string_view text) noexcept;

}  // namespace orchard::config
