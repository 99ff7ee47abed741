// ASCII case folding for protocol text (header names, tokens, hosts), and
// the fixed-width digit fields of dates (HTTP dates, RFC 3339).
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

// Reads the n decimal digits at s[at] into *out (n <= 9, so no overflow);
// false, *out untouched, when they run past the end or one is not a digit.
constexpr bool asciiDigits(std::string_view s, size_t at, size_t n, int* out) noexcept {
  if (at > s.size() || n > s.size() - at) return false;
  int v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

static_assert(asciiIEquals("Content-Length", "content-LENGTH"));
static_assert(!asciiIEquals("Host", "Hose"));
static_assert(asciiLower(0xC4) == 0xC4, "only ASCII folds");

}  // namespace orchard
