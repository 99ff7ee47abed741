// Metadata the admin gives with a publish, which overrides what was read
// from the file (pkg_reader.h), and the defaults that complete what the
// manifest requires. Two ways in, one set of fields and rules:
//   - the PUT's query parameters:  ?title=...&bundle_id=...&archs=arm64,x86_64
//   - a JSON object:  {"title": "...", "archs": ["arm64"], ...}
// Fields (the JSON names of PackageMetadata, package.h): title, bundle_id,
// bundle_version, package_id, package_version, min_os, max_os, archs.
// Values: non-empty, at most 256 bytes, valid UTF-8 without control
// characters (utf8.h); min_os/max_os a dotted numeric version (1 to 4
// components of 1 to 9 digits: "14", "14.0", "15.99"); archs a list of
// "arm64" and "x86_64" (duplicates dropped, order kept).
//
// Every problem starts with the field it is about ("min_os: ..."); a
// problem with the body as a whole starts with "metadata: ". Keys are
// quoted in printable form (utf8.h), so a problem is always safe to return
// in a JSON error. On a problem *m is left exactly as it was: either every
// override of a call applies or none does. Pure: no I/O.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "catalog/package.h"

namespace orchard::catalog {

inline constexpr size_t kMaxMetadataValueBytes = 256;
inline constexpr size_t kMaxMetadataBodyBytes = 64 * 1024;
inline constexpr int kMaxMetadataJsonDepth = 4;  // the object is depth 1, archs' array depth 2

// Sets one field from a query parameter (archs: comma-separated, spaces
// around items ignored) and records m->source[key] = "request".
std::optional<std::string> applyOverride(PackageMetadata* m, std::string_view key, std::string_view value);

// The same fields as one JSON object (archs: an array of strings). Bodies
// over kMaxMetadataBodyBytes, nested deeper than kMaxMetadataJsonDepth, not
// JSON, not an object, with an unknown key or a value of the wrong type are
// refused. Never throws.
std::optional<std::string> parseMetadataJson(std::string_view body, PackageMetadata* m);

// The deepest nesting of arrays and objects in a JSON text, counted with a
// byte scan (brackets inside strings skipped), so that a body can be refused
// before nlohmann, which has no depth limit, recurses into it; stops
// counting past `limit`. Shared with the device import (device.h).
int jsonNestingDepth(std::string_view body, int limit);

// Fills what the manifest requires once overrides are applied:
//   title          <- `name` when empty                 (source "name")
//   bundle_id      <- package_id when empty and the file was a .pkg
//   bundle_version <- package_version, else `version`   (source "version")
// A field copied from another takes that field's source (or its name when
// it has none). Returns a problem naming bundle_id when there is still no
// bundle identifier (a .dmg published without one); the other defaults are
// filled in either case. bundle_version is always set afterwards.
std::optional<std::string> completeMetadata(PackageMetadata* m, std::string_view name, std::string_view version,
                                            bool fromPackageFile);

}  // namespace orchard::catalog
