// Untrusted plists (XML or binary) into libplist, for the Apple catalog
// parsers (sucatalog.cc, product_info.cc). Internal to catalog/apple/.
//
// Why a wrapper: the system libplist (2.2) has no nesting limit and makes a
// fresh node for every reference in a binary plist. Its binary reader, its
// XML writer and plist_free() recurse once per level, so a deep document
// overflows the stack; a binary plist whose objects refer to each other
// many times ("billion laughs" over object references) expands to far
// more nodes and bytes than it has. So before libplist sees the bytes:
//   - XML goes through libxml2 once as a stream (no tree): it must be
//     well-formed, declare nothing in an internal DTD subset (the external
//     Apple PropertyList DOCTYPE is fine and is never loaded) and nest at
//     most kPlistMaxDepth elements;
//   - binary goes through a structure walk over its offset table and
//     object references only (no values are decoded): at most
//     kPlistMaxDepth levels, no array or dictionary reached twice (real
//     writers never share containers), no more references followed than
//     the input has bytes, and no more string and data bytes copied than
//     `maxPayload`;
//   - both: at most `maxNodes` nodes (elements, or references followed),
//     since each costs libplist about 100 bytes of heap whatever its size
//     in the input.
// libplist then parses as usual. A binary plist is then written as XML and
// read back through the XML check, so both encodings obey one set of
// rules: a key repeated in a dictionary counts once, the last one (which
// is what libplist's XML reader does; its binary reader keeps both, and a
// reader could check one copy while a writer emits the other), and a
// string XML cannot carry (a control character, invalid UTF-8) refuses
// the document. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "common/result.h"

namespace orchard::catalog::apple::detail {

// Elements (XML) or containers (binary) nested: deeper than any Apple
// plist by far (a catalog's string in ExtendedMetaInfo is 7 elements down),
// shallow enough for libplist's recursion on any thread's stack, and it
// bounds the indentation libplist writes per line (a binary plist is
// written as XML, see below) so that cannot amplify the input.
inline constexpr size_t kPlistMaxDepth = 32;

struct PlistFree {
  void operator()(void* p) const noexcept;  // plist_free
};
// A libplist root (plist_t is void*): freeing the root frees the tree.
using PlistPtr = std::unique_ptr<void, PlistFree>;

struct PlistBounds {
  uint64_t maxPayload = 0;  // string and data bytes (binary input)
  uint64_t maxNodes = 0;    // elements or references
};

// Parses `bytes` (binary when they start with "bplist00", else XML).
// Errc::Invalid with `what` as the context when the input is not a plist
// or breaks the bounds above. Inputs of 4 GiB or more are refused
// (libplist takes a 32-bit length); callers bound them far lower.
Result<PlistPtr> parseUntrustedPlist(std::string_view bytes, const PlistBounds& bounds, const char* what);

// The XML half of the check alone, also for output that must be
// well-formed (a rewritten catalog): true when libxml2 reads it as
// well-formed XML within the bounds above.
bool xmlPlistShapeOk(std::string_view xml, uint64_t maxNodes);

// The binary half alone.
bool binaryPlistShapeOk(std::string_view bytes, const PlistBounds& bounds);

}  // namespace orchard::catalog::apple::detail
