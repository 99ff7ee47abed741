// Targeted cache control (RFC 9213): `Orchard-Cache-Control` (this box's
// own field) and `CDN-Cache-Control` override `Cache-Control` and `Expires`
// for a shared cache that its operator runs, as Orchard is.
//
// A targeted field is a Structured Field Dictionary (RFC 8941 §3.2). One
// that does not parse as one, or is empty, is ignored as a whole and the
// next field on the list is tried; within a valid dictionary a directive
// whose value has the wrong type (max-age="10" is a String) is ignored
// alone. Pure functions, table-tested in tests/unit/cache/policy_test.cc.
#pragma once

#include <optional>
#include <string_view>

#include "cache/policy.h"
#include "common/headers.h"

namespace orchard::cache {

// The fields this box obeys, highest precedence first.
inline constexpr const char* kOwnTargetedField = "Orchard-Cache-Control";
inline constexpr const char* kTargetedFields[] = {kOwnTargetedField, "CDN-Cache-Control"};
// Orchard-Cache-Control is for this box alone and is not passed on to
// clients. CDN-Cache-Control is passed on (RFC 9213 §2.1 allows it): a cache
// below this one in the operator's own hierarchy obeys it too.

// Parses one targeted field value (repeated lines joined by ", ") into the
// directives Orchard reads. nullopt when the value is not a valid, non-empty
// Structured Field Dictionary.
std::optional<CacheControl> parseTargetedControl(std::string_view value);

// The response directives that govern this box: the first valid targeted
// field, else Cache-Control. `targeted` says which (a targeted field also
// overrides Expires).
struct ResponseControls {
  CacheControl cc;
  bool targeted = false;
};
ResponseControls responseControls(const HeaderList& responseHeaders);

}  // namespace orchard::cache
