// Header fields as the codec hands them over, and the few operations every
// layer needs on them: case-insensitive look-up, comma-separated lists
// (split, token test, join) and optional-whitespace trimming.
//
// Written once here (the codec, the proxy and cache policy all use them).
// Field names compare over ASCII only (RFC 9110 §5.1, common/ascii.h).
// List splitting is the plain RFC 9110 §5.6.1 rule: elements separated by
// commas with optional whitespace, empty elements ignored; quoted strings
// are not special (Cache-Control, whose arguments may be quoted, has its own
// parser in cache/policy.cc).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ascii.h"

namespace orchard {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

inline bool iequals(std::string_view a, std::string_view b) noexcept { return asciiIEquals(a, b); }

// Strips spaces and tabs at both ends (RFC 9110 OWS).
std::string_view trimOws(std::string_view s) noexcept;

// First value of header `name` (case-insensitive), or nullopt.
std::optional<std::string_view> findHeader(const HeaderList& h, std::string_view name) noexcept;

// Calls f(element) for each non-empty, trimmed element of a comma list.
template <typename F>
void forEachListItem(std::string_view v, F&& f) {
  size_t i = 0;
  while (i <= v.size()) {
    size_t j = v.find(',', i);
    if (j == std::string_view::npos) j = v.size();
    std::string_view t = trimOws(v.substr(i, j - i));
    if (!t.empty()) f(t);
    i = j + 1;
  }
}

// The elements of a comma list, trimmed, empty ones dropped.
std::vector<std::string> splitList(std::string_view v);
// Whether any field `name` holds `token` as a list element (case-insensitive).
bool headerHasToken(const HeaderList& h, std::string_view name, std::string_view token) noexcept;
// All fields `name`, joined with ", " in order (RFC 9110 §5.3), or "".
std::string joinedHeader(const HeaderList& h, std::string_view name);

}  // namespace orchard
