// The parameter table: the one place that names every config key and says
// its type, default, bounds, whether SIGHUP applies it, a one-line doc, and
// which Config field it fills. The loader (config.cc), defaults(), the
// rendered default TOML, the shipped orchard.example.toml and reload
// decisions are all derived from it; adding a key means adding one row in
// params.cc and one field in Config.
//
// Also here: the scalar parsers for sizes and durations, shared by the
// loader and by anything else that reads such values (orchardctl, tests).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"
#include "config/config.h"
#include "config/net.h"
#include "config/tokens.h"

namespace orchard::config {

enum class ParamType : uint8_t {
  String,        // "text"
  StringList,    // ["a", "b"] (non-empty strings)
  Choice,        // one of Param::choices
  Size,          // bytes: 1048576 or "200GiB" (B, KiB, MiB, GiB, TiB)
  Duration,      // milliseconds: 30 (seconds) or "30s", "5m", "500ms", "1h30m"
  Integer,       // 42
  Bool,          // true / false
  AddressList,   // ["127.0.0.1:8080", "[::1]:8080"]
  CidrList,      // ["10.0.0.0/8", "::1/128", "192.168.1.10"]
  HostList,      // ["swcdn.apple.com", "*.cdn-apple.com"]
  AddressTable,  // { "host" = "addr:port" }
  TokenList,     // [[section.key]] tables: { name, token | token_file, scope } (config/tokens.h)
  LogTarget,     // false (off), true or "stderr", or an absolute file path: the string "", "stderr" or the path
};

const char* paramTypeName(ParamType t) noexcept;

// A parsed, validated value on its way into a Config field. Sizes, durations
// and integers travel as int64_t (bytes, milliseconds, units); Choice as the
// chosen string.
using Value = std::variant<bool, int64_t, std::string, std::vector<std::string>, std::vector<ListenAddress>,
                           std::vector<Cidr>, std::map<std::string, ListenAddress>, std::vector<TokenSpec>>;

struct Param {
  std::string_view name;         // "section.key"
  ParamType type;
  std::string_view defaultToml;  // the default as a TOML value literal: "\"30s\"", "[]", "false"
  int64_t min = 0;               // Size (bytes), Duration (ms), Integer: inclusive bounds
  int64_t max = 0;
  bool reloadable = false;       // true: SIGHUP applies a change; false: needs a restart
  std::string_view doc;          // one line, rendered as a comment above the key
  // Stores a value of this param's type into its field. A Value of the wrong
  // alternative is a programming error (the defaults test catches it).
  void (*set)(Config& config, Value&& value) = nullptr;
  // Whether a and b hold the same value for this param.
  bool (*same)(const Config& a, const Config& b) = nullptr;
  // Copies this param's field from `from` into `to` (a reload keeps the
  // running value of a restart-only key this way).
  void (*copy)(Config& to, const Config& from) = nullptr;
  std::string_view choices = {};  // Choice only: "debug|info|warn|error"
  // The value the installed production config (/etc/orchard/orchard.toml,
  // productionToml()) sets instead of defaultToml; empty = the default. Only
  // keys whose embedded default suits a developer's checkout, not a box
  // (where it listens, where its state lives), have one.
  std::string_view productionToml = {};

  std::string_view section() const { return name.substr(0, name.find('.')); }
  std::string_view key() const { return name.substr(name.find('.') + 1); }
};

struct Section {
  std::string_view name;  // "server"
  std::string_view doc;   // rendered above the [section] header
};

// Every param, grouped by section in sections() order.
std::span<const Param> params();
std::span<const Section> sections();
// nullptr when there is no such key.
const Param* findParam(std::string_view name);
const Section* findSection(std::string_view name);

// Params whose values differ between two configs (for SIGHUP: a change to
// one that is not reloadable needs a restart; see config/reload.h).
std::vector<const Param*> changedParams(const Config& a, const Config& b);

// "200GiB" -> bytes. Accepts a bare integer ("1048576") or an integer with
// B, KiB, MiB, GiB or TiB (powers of 1024), optionally space-separated.
// Rejects signs, fractions, decimal units (KB, MB...) and values above
// INT64_MAX. Errc::Invalid, context fit for "<context>, got \"x\"".
Result<int64_t> parseSize(std::string_view text);
// "30s" -> 30000. One or more integer+unit groups, units ms, s, m, h
// ("1h30m", "500ms"); a bare integer means seconds. Rejects signs,
// fractions and overflow. Errc::Invalid like parseSize.
Result<int64_t> parseDuration(std::string_view text);
// The shortest exact rendering in the largest unit that divides:
// 214748364800 -> "200GiB", 1536 -> "1536B"; 90000 -> "90s", 3600000 -> "1h".
std::string formatSize(int64_t bytes);
std::string formatDuration(int64_t ms);

}  // namespace orchard::config
