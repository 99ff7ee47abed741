// ASCII case folding for protocol text (header names, tokens, hosts).
//
// HTTP's case-insensitive comparisons are over ASCII only (RFC 9110 §5.1),
// so these fold A-Z and nothing else, inline: std::tolower is a libc call
// per character that also consults the locale, and header look-ups run it
// dozens of times per request on the hit path.
#pragma once

#include <string_view>

namespace orchard {

constexpr unsigned char asciiLower(unsigned char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c + ('a' - 'A')) : c;
}

constexpr bool asciiIEquals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (asciiLower(static_cast<unsigned char>(a[i])) != asciiLower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

static_assert(asciiIEquals("Content-Length", "content-LENGTH"));
static_assert(!asciiIEquals("Host", "Hose"));
static_assert(asciiLower(0xC4) == 0xC4, "only ASCII folds");

}  // namespace orchard
