// Fuzz target: cache/targeted_control: the Structured Field Dictionary
// parser behind CDN-Cache-Control / Orchard-Cache-Control (origin bytes) and
// the choice between a targeted field and Cache-Control.
//
// Input: the bytes of one field value.
//
// Invariants beyond "no crash":
//   - every delta-seconds parsed lies in [0, 2^31];
//   - leading and trailing spaces never change the verdict (RFC 8941 §4.2
//     discards them);
//   - a value with a byte outside printable ASCII and tab is never valid;
//   - responseControls() uses the targeted field exactly when it parses,
//     and otherwise falls back to Cache-Control (here: no-store).
#include <cstdint>
#include <string>

#include "cache/targeted_control.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace orchard;

void checkDelta(const std::optional<int64_t>& v, const char* name) {
  if (v) FUZZ_CHECK(*v >= 0 && *v <= (int64_t{1} << 31), "%s = %lld out of [0, 2^31]", name, static_cast<long long>(*v));
}

bool same(const cache::CacheControl& a, const cache::CacheControl& b) {
  return a.maxAge == b.maxAge && a.sMaxAge == b.sMaxAge && a.noStore == b.noStore && a.noCache == b.noCache &&
         a.isPrivate == b.isPrivate && a.isPublic == b.isPublic && a.mustRevalidate == b.mustRevalidate &&
         a.staleWhileRevalidate == b.staleWhileRevalidate && a.staleIfError == b.staleIfError;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view value = fuzz::asView(data, size);
  const auto cc = cache::parseTargetedControl(value);
  if (cc) {
    checkDelta(cc->maxAge, "max-age");
    checkDelta(cc->sMaxAge, "s-maxage");
    checkDelta(cc->staleWhileRevalidate, "stale-while-revalidate");
    checkDelta(cc->staleIfError, "stale-if-error");
    for (unsigned char c : value)
      FUZZ_CHECK(c == '\t' || (c >= 0x20 && c < 0x7f), "valid dictionary with byte 0x%02x", c);
  }
  std::string padded(1, ' ');
  padded.append(value);
  padded.append(2, ' ');
  const auto again = cache::parseTargetedControl(padded);
  FUZZ_CHECK(cc.has_value() == again.has_value(), "spaces around the value changed its validity");
  if (cc && again) FUZZ_CHECK(same(*cc, *again), "spaces around the value changed what it says");

  if (value.find('\0') == std::string_view::npos) {
    const cache::HeaderList h = {{"Cache-Control", "no-store"}, {"CDN-Cache-Control", std::string(value)}};
    const auto rc = cache::responseControls(h);
    FUZZ_CHECK(rc.targeted == cc.has_value(), "targeted %d but the value parses %d", rc.targeted, cc.has_value());
    if (!rc.targeted) FUZZ_CHECK(rc.cc.noStore, "fell back without Cache-Control's no-store");
  }
  return 0;
}
