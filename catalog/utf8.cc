// Strict UTF-8 decoding for the catalog's validators. The hard part is the
// forms a lax decoder accepts and a later layer may reinterpret: overlong
// encodings (0xC0 0xAF is '/', 0xC0 0xAE is '.'), encoded surrogates and
// code points past U+10FFFF. The second-byte ranges below are RFC 3629's
// table, which excludes all three.
#include "catalog/utf8.h"

#include <cstdio>

namespace orchard::catalog {

size_t utf8Decode(std::string_view s, size_t i, char32_t* cp) noexcept {
  auto byte = [&](size_t k) -> unsigned { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0x100u; };
  const unsigned b0 = byte(0);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len = 0;
  unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  char32_t v = 0;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2, v = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3, v = b0 & 0x0f;
    if (b0 == 0xe0) lo = 0xa0;  // overlong below U+0800
    if (b0 == 0xed) hi = 0x9f;  // surrogates
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4, v = b0 & 0x07;
    if (b0 == 0xf0) lo = 0x90;  // overlong below U+10000
    if (b0 == 0xf4) hi = 0x8f;  // above U+10FFFF
  } else {
    return 0;  // continuation byte, 0xC0/0xC1 (always overlong) or 0xF5..0xFF
  }
  for (size_t k = 1; k < len; ++k) {
    const unsigned b = byte(k);
    if (b < (k == 1 ? lo : 0x80u) || b > (k == 1 ? hi : 0xbfu)) return 0;
    v = (v << 6) | (b & 0x3f);
  }
  *cp = v;
  return len;
}

std::optional<std::string> textProblem(std::string_view s, size_t maxBytes) {
  if (s.size() > maxBytes) return "is " + std::to_string(s.size()) + " bytes long (at most " + std::to_string(maxBytes) + ")";
  for (size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    const size_t n = utf8Decode(s, i, &cp);
    if (n == 0) return "is not valid UTF-8 at byte " + std::to_string(i);
    if (isControl(cp)) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "U+%04X", static_cast<unsigned>(cp));
      return std::string("contains the control character ") + hex + " at byte " + std::to_string(i);
    }
    i += n;
  }
  return std::nullopt;
}

std::string printable(std::string_view s, size_t limit) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < limit; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char b[5];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    }
  }
  if (s.size() > limit) out += "...";
  return out;
}

}  // namespace orchard::catalog
