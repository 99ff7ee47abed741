// Validation of package names, versions and filenames (see names.h for the
// rules). The hard parts: the values become directory and file names under
// the store and path segments of URLs Macs fetch, so anything a later
// layer could read as a separator or a parent directory is refused here,
// including encodings that only become one after normalisation (overlong
// UTF-8 is refused by the strict decoder; NFKC look-alikes by a table).
// Problems report byte offsets, never the bytes, so they are safe to echo.
#include "catalog/names.h"

#include <array>
#include <cstdio>

#include "catalog/utf8.h"

namespace orchard::catalog {
namespace {

bool asciiAllowed(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  static constexpr std::string_view kPunct = " !#&'()+,-.=@[]_~";
  return kPunct.find(static_cast<char>(c)) != std::string_view::npos;
}

// Non-ASCII code points refused although they are valid UTF-8.
bool refusedCodePoint(char32_t cp) {
  struct Range { char32_t lo, hi; };
  static constexpr std::array<Range, 18> kRefused = {{
      {0x0000, 0x009f},  // (ASCII is checked byte-wise; C1 controls)
      {0x00ad, 0x00ad},  // soft hyphen (invisible)
      {0x061c, 0x061c},  // Arabic letter mark (bidi)
      {0x180e, 0x180e},  // Mongolian vowel separator (invisible)
      {0x200b, 0x200f},  // zero-width characters, LRM, RLM
      {0x2024, 0x2026},  // one/two-dot leaders, ellipsis: NFKC '.', '..', '...'
      {0x2028, 0x202e},  // line/paragraph separators, bidi embeddings and overrides
      {0x2044, 0x2044},  // fraction slash
      {0x2060, 0x206f},  // word joiner, invisible operators, bidi isolates
      {0x2215, 0x2216},  // division slash, set minus
      {0x29f5, 0x29f5},  // reverse solidus operator
      {0x29f8, 0x29f9},  // big solidus, big reverse solidus
      {0xfe52, 0xfe52},  // small full stop: NFKC '.'
      {0xfe68, 0xfe68},  // small reverse solidus: NFKC '\'
      {0xfeff, 0xfeff},  // BOM / zero-width no-break space
      {0xff0e, 0xff0f},  // fullwidth full stop and solidus: NFKC '.', '/'
      {0xff3c, 0xff3c},  // fullwidth reverse solidus: NFKC '\'
      {0xfff9, 0xffff},  // interlinear annotations, replacement char, noncharacters
  }};
  for (const Range& r : kRefused)
    if (cp >= r.lo && cp <= r.hi) return true;
  return false;
}

std::string at(size_t i) { return " at byte " + std::to_string(i); }

std::optional<std::string> charProblem(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == 0) return "contains a NUL byte" + at(i);
      if (c < 0x20 || c == 0x7f) return "contains a control byte" + at(i);
      if (c == '/' || c == '\\') return std::string("contains the separator '") + static_cast<char>(c) + "'" + at(i);
      if (!asciiAllowed(c)) return std::string("contains '") + static_cast<char>(c) + "', which is not allowed" + at(i);
      ++i;
      continue;
    }
    char32_t cp = 0;
    const size_t n = utf8Decode(s, i, &cp);
    if (n == 0) return "is not valid UTF-8" + at(i);
    if (refusedCodePoint(cp)) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "U+%04X", static_cast<unsigned>(cp));
      return std::string("contains ") + hex + ", which is not allowed" + at(i);
    }
    i += n;
  }
  return std::nullopt;
}

std::optional<std::string> segmentProblem(std::string_view s, size_t maxBytes) {
  if (s.empty()) return "is empty";
  if (s.size() > maxBytes) return "is " + std::to_string(s.size()) + " bytes long (at most " + std::to_string(maxBytes) + ")";
  if (auto p = charProblem(s)) return p;
  if (s == "." || s == "..") return "is a path component ('.' or '..')";
  if (s.find("..") != std::string_view::npos) return "contains '..'";
  if (s.front() == ' ' || s.back() == ' ') return "starts or ends with a space";
  if (s.front() == '.') return "starts with '.'";
  if (s.front() == '-') return "starts with '-'";
  return std::nullopt;
}

bool equalsIgnoringAsciiCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> validateName(std::string_view name) { return segmentProblem(name, kMaxNameBytes); }

std::optional<std::string> validateVersion(std::string_view version) { return segmentProblem(version, kMaxVersionBytes); }

std::optional<std::string> validateFilename(std::string_view filename) {
  if (auto p = segmentProblem(filename, kMaxFilenameBytes)) return p;
  static constexpr std::array<std::string_view, 6> kApiWords = {"targeting", "rollout", "manifest",
                                                                "manifests", "metadata", "versions"};
  for (std::string_view w : kApiWords)
    if (equalsIgnoringAsciiCase(filename, w)) return "is a word the API reserves for its own routes";
  return std::nullopt;
}

std::string encodePathSegment(std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(segment.size());
  for (char ch : segment) {
    const unsigned char c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                            c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0x0f];
    }
  }
  return out;
}

}  // namespace orchard::catalog
