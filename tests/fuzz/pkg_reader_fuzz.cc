// Fuzz target: catalog/pkg_reader over bytes, that is the xar header and
// TOC bounds (xar_toc), the signature check (xar_signature), libarchive's
// entry walk and the Distribution/PackageInfo parse (pkg_xml). Uploaded
// packages are untrusted.
//
// Input: the bytes of one file. Seeds (corpus/pkg_reader/) are small flat
// packages written by tests/tools/xarpkg.py: a distribution package, a
// component package and a signed one.
//
// Invariants beyond "no crash":
//   - trusted implies verified implies present, and nothing is trusted
//     without roots;
//   - a verified signature has a chain; a package's signature states its
//     problem (without roots nothing is trusted);
//   - a result that is not a package carries no metadata and no signature;
//   - the OpenSSL error queue is empty afterwards.
#include <cstdint>

#include <openssl/err.h>

#include "catalog/pkg_reader.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace orchard;
  auto r = catalog::readPackageBytes(fuzz::asView(data, size), nullptr);
  FUZZ_CHECK(ERR_peek_error() == 0, "OpenSSL error queue left non-empty");
  if (!r) return 0;
  const catalog::SignatureInfo& s = r->signature;
  FUZZ_CHECK(!s.trusted, "trusted without roots");
  FUZZ_CHECK(!s.verified || s.present, "verified but not present");
  FUZZ_CHECK(!s.verified || !s.chain.empty(), "verified without a chain");
  if (!r->isPackage) {
    FUZZ_CHECK(r->metadata == catalog::PackageMetadata{}, "metadata for a file that is not a package");
    FUZZ_CHECK(s == catalog::SignatureInfo{}, "a signature for a file that is not a package");
  } else {
    FUZZ_CHECK(!s.problem.empty(), "no problem stated for a signature that cannot be trusted");
  }
  return 0;
}
