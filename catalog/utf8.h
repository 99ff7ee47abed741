// UTF-8 helpers shared by the catalog's validators (names.cc,
// request_metadata.cc) and the manifest writer: one strict decoder, so that
// every check agrees on what a code point is.
//
// Strict means RFC 3629: shortest form only (0xC0 0xAF, an overlong '/',
// is invalid, as is every 0xC0/0xC1/0xF5..0xFF lead byte), no surrogates
// (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequence.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace orchard::catalog {

// Decodes the sequence starting at s[i]. Returns its length in bytes (1-4)
// and sets *cp, or returns 0 when the bytes there are not valid UTF-8.
// Precondition: i < s.size().
size_t utf8Decode(std::string_view s, size_t i, char32_t* cp) noexcept;

// A control character: C0 (U+0000..U+001F), DEL (U+007F) or C1
// (U+0080..U+009F).
constexpr bool isControl(char32_t cp) noexcept { return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f); }

// The first problem with free text (a title, an identifier): invalid UTF-8,
// a control character, or more than maxBytes bytes. Empty is allowed here;
// callers that need a value say so. The problem never repeats the input.
std::optional<std::string> textProblem(std::string_view s, size_t maxBytes);

// `s` for an error message: printable ASCII kept, every other byte as \xNN,
// cut after `limit` bytes with "...". The result is always ASCII, so it is
// safe inside JSON and logs whatever the input was.
std::string printable(std::string_view s, size_t limit = 64);

}  // namespace orchard::catalog
