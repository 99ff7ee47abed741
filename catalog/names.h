// Validation of the three path fields of
//   PUT /api/v1/packages/{name}/{version}/{filename}
// and the percent-encoding that puts them back into URLs (/pkgs/...,
// /manifests/...). Values arrive already percent-decoded; each validator
// returns a human-readable problem, or nullopt when the value is valid. The
// problem never quotes the value and does not name the field: the HTTP
// layer answers 400 with "<field>: <problem>".
//
// The character set (the same for all three fields), chosen to admit what
// vendors ship ("Google Chrome.pkg", "Zoom (Intel).pkg",
// "Microsoft_Word_16.89_Updater.pkg", "1.2.3-beta+45", "128.0.6613.120"):
//   - ASCII letters and digits;
//   - space and   ! # & ' ( ) + , - . = @ [ ] _ ~
//   - any other Unicode code point from U+00A0 up, as strict UTF-8 (see
//     utf8.h: overlong forms such as 0xC0 0xAF for '/' are invalid), except
//     invisible format characters (bidi overrides, zero-width characters,
//     BOM, U+2028/9, noncharacters U+FFFE/F) and the look-alikes that
//     Unicode compatibility normalisation (NFKC) turns into '/', '\' or
//     '.' (fullwidth solidus, division slash, one-dot leader, ...).
// Refused in ASCII: control bytes (C0 and DEL; C1 as code points), NUL,
// the separators '/' and '\', and  " $ % * : ; < > ? ^ ` { | }  (shell and
// glob characters, names Windows and SMB refuse, and '%', which in a
// decoded value means double encoding).
//
// Further rules, all fields: not empty; not "." or ".."; no ".." anywhere
// (stricter than "no '..' component": no layer that splits on another
// separator can find one); no leading or trailing space; no leading '.'
// (hidden files) or '-' (read as an option by tools). Lengths in bytes:
// name <= 128, version <= 64, filename <= 255 (a file name's limit on
// ext4 and APFS). A filename is also not one of the API's own words
// (targeting, rollout, manifest, manifests, metadata, versions; any case).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace orchard::catalog {

inline constexpr size_t kMaxNameBytes = 128;
inline constexpr size_t kMaxVersionBytes = 64;
inline constexpr size_t kMaxFilenameBytes = 255;

std::optional<std::string> validateName(std::string_view name);
std::optional<std::string> validateVersion(std::string_view version);
std::optional<std::string> validateFilename(std::string_view filename);

// RFC 3986 percent-encoding of one path segment: every byte outside the
// unreserved set (ALPHA / DIGIT / "-" / "." / "_" / "~") becomes %XX with
// upper-case hex, so "Google Chrome.pkg" -> "Google%20Chrome.pkg" and a
// UTF-8 letter becomes one %XX per byte.
std::string encodePathSegment(std::string_view segment);

}  // namespace orchard::catalog
