// Fuzz target: catalog/apple/product_info's parseServerMetadata, a
// product's .smd (a plist, XML or binary) through the plist checks in
// front of libplist (plist_input.h).
//
// Input: the file's bytes. Seeds (corpus/apple_smd/): an XML .smd, the
// same as a binary plist, and one with the "en" localization and odd types.
//
// Invariants beyond "no crash":
//   - a refusal is Errc::Invalid;
//   - an accepted title is UTF-8 text without control characters of at
//     most 256 bytes, the version 0-32 of [A-Za-z0-9._-], no build.
#include <cstdint>

#include "catalog/apple/product_info.h"
#include "catalog/utf8.h"
#include "tests/fuzz/fuzz_util.h"

using namespace orchard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = catalog::apple::parseServerMetadata(fuzz::asView(data, size));
  if (!r) {
    FUZZ_CHECK(r.error().code == Errc::Invalid, "unexpected error code");
    return 0;
  }
  FUZZ_CHECK(!catalog::textProblem(r->title, 256), "bad title: %s", fuzz::escape(r->title).c_str());
  FUZZ_CHECK(r->version.size() <= 32, "version too long");
  for (char c : r->version)
    FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' ||
                   c == '-',
               "version has 0x%02x", static_cast<unsigned char>(c));
  FUZZ_CHECK(r->build.empty(), "a build from an .smd");
  return 0;
}
