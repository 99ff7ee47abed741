// Fuzz target: catalog/apple/chunklist, Apple's chunklist (IntegrityDataURL)
// and the streaming verifier that checks a package against it.
//
// Input: fields split at "\n--\n" (fuzz_util.h): the chunklist's bytes, the
// data stream, and a write schedule (each byte + 1 is the size of the next
// write, cycled; empty = one write).
// Seeds (corpus/chunklist/): a good list with its data, the same data with
// one byte changed, and data one byte short.
//
// Invariants beyond "no crash":
//   - a parsed list has at least one chunk, each of size > 0, and
//     totalSize() is their sum;
//   - the verifier's verdict equals a plain SHA-256 of each chunk of the
//     data compared with the list (any write split gives the same answer);
//   - bytesSeen() never exceeds the list's total or the data, and a
//     failure always says something.
#include <cstdint>
#include <cstring>

#include "catalog/apple/chunklist.h"
#include "catalog/digest.h"
#include "tests/fuzz/fuzz_util.h"

using namespace orchard;
using namespace orchard::catalog::apple;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto fields = fuzz::splitFields(fuzz::asView(data, size), 3);
  auto list = parseChunklist(fields[0]);
  if (!list) {
    FUZZ_CHECK(list.error().code == Errc::Invalid, "unexpected error code");
    return 0;
  }
  FUZZ_CHECK(!list->chunks.empty(), "a list without chunks");
  uint64_t total = 0;
  for (const Chunk& c : list->chunks) {
    FUZZ_CHECK(c.size > 0, "a chunk of size 0");
    total += c.size;
  }
  FUZZ_CHECK(total == list->totalSize(), "totalSize() is not the sum");

  // The expected verdict, the slow way.
  const std::string_view stream = fields[1];
  bool want = stream.size() == total;
  uint64_t off = 0;
  for (size_t i = 0; want && i < list->chunks.size(); ++i) {
    const Chunk& c = list->chunks[i];
    catalog::Sha256Digest d = catalog::sha256(stream.substr(off, c.size));
    want = std::memcmp(d.data(), c.sha256.data(), d.size()) == 0;
    off += c.size;
  }

  ChunkVerifier v(*list);
  const std::string_view schedule = fields[2];
  size_t pos = 0, k = 0;
  bool ok = true;
  while (pos < stream.size() && ok) {
    size_t n = schedule.empty() ? stream.size() : static_cast<unsigned char>(schedule[k++ % schedule.size()]) + 1u;
    n = std::min(n, stream.size() - pos);
    ok = v.update(stream.data() + pos, n);
    pos += n;
    FUZZ_CHECK(v.bytesSeen() <= total && v.bytesSeen() <= pos, "bytesSeen() past the data or the list");
    FUZZ_CHECK(ok || !v.failure().empty(), "a failure without a reason");
  }
  const bool got = ok && v.finish();
  FUZZ_CHECK(got == want, "verifier says %d, SHA-256 says %d (%s)", got, want, v.failure().c_str());
  FUZZ_CHECK(got || !v.failure().empty(), "a failure without a reason");
  return 0;
}
