// Fuzz target: catalog/apple/product_info's parseDistribution, a product's
// .dist from Apple's CDN (libxml2 through catalog/safe_xml.h, and the
// hand-written reader of the <localization><strings> table).
//
// Input: the file's bytes. Seeds (corpus/apple_dist/): an InstallAssistant
// .dist with <auxinfo>, an update whose title and version come from the
// strings table, and one with pkg-ref versions and odd strings syntax.
//
// Invariants beyond "no crash":
//   - a refusal is Errc::Invalid;
//   - an accepted title is UTF-8 text without control characters of at
//     most 256 bytes; version and build are 0-32 of [A-Za-z0-9._-];
//   - the same bytes parse the same way twice (no hidden state).
#include <cstdint>

#include "catalog/apple/product_info.h"
#include "catalog/utf8.h"
#include "tests/fuzz/fuzz_util.h"

using namespace orchard;

namespace {

void checkVersion(const std::string& v, const char* what) {
  FUZZ_CHECK(v.size() <= 32, "%s too long", what);
  for (char c : v)
    FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' ||
                   c == '-',
               "%s has 0x%02x", what, static_cast<unsigned char>(c));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = fuzz::asView(data, size);
  auto r = catalog::apple::parseDistribution(bytes);
  auto again = catalog::apple::parseDistribution(bytes);
  FUZZ_CHECK(r.ok() == again.ok(), "two parses disagree");
  if (!r) {
    FUZZ_CHECK(r.error().code == Errc::Invalid, "unexpected error code");
    return 0;
  }
  FUZZ_CHECK(r->title == again->title && r->version == again->version && r->build == again->build,
             "two parses disagree");
  FUZZ_CHECK(!catalog::textProblem(r->title, 256), "bad title: %s", fuzz::escape(r->title).c_str());
  checkVersion(r->version, "version");
  checkVersion(r->build, "build");
  return 0;
}
