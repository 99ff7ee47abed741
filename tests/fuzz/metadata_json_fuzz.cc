// Fuzz target: catalog/request_metadata's parseMetadataJson, the JSON body
// an admin (or anyone holding a publish token) sends with a package.
//
// Input: the body's bytes, as is.
//
// Invariants beyond "no crash" (and no exception escaping: the parser's
// are caught inside):
//   - a refusal leaves the record exactly as it was, and its problem is
//     non-empty printable ASCII that starts with a field name or
//     "metadata: " (so it is safe to return in a JSON error);
//   - an accepted body sets only request-sourced fields, each valid text
//     (utf8.h), archs only arm64/x86_64 without duplicates, min_os/max_os
//     only digits and dots;
//   - applying the same body again to the result changes nothing;
//   - JSON whitespace around the body never changes the verdict.
#include <cstdint>
#include <string>

#include "catalog/request_metadata.h"
#include "catalog/utf8.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace orchard;
using catalog::PackageMetadata;

PackageMetadata fromFile() {
  PackageMetadata m;
  m.title = "From Distribution";
  m.packageId = "com.example.pkg";
  m.archs = {"x86_64"};
  m.source = {{"title", "Distribution"}, {"package_id", "PackageInfo"}, {"archs", "Distribution"}};
  return m;
}

void checkProblem(const std::string& p) {
  FUZZ_CHECK(!p.empty(), "empty problem");
  for (unsigned char c : p) FUZZ_CHECK(c >= 0x20 && c < 0x7f, "problem byte 0x%02x: %s", c, fuzz::escape(p).c_str());
  FUZZ_CHECK(p.find(": ") != std::string::npos, "problem names no field: %s", p.c_str());
}

void checkAccepted(const PackageMetadata& before, const PackageMetadata& m) {
  const std::pair<const char*, const std::string*> fields[] = {
      {"title", &m.title},         {"bundle_id", &m.bundleId}, {"bundle_version", &m.bundleVersion},
      {"package_id", &m.packageId}, {"package_version", &m.packageVersion}, {"min_os", &m.minOs},
      {"max_os", &m.maxOs}};
  for (const auto& [key, value] : fields) {
    const auto it = m.source.find(key);
    const auto was = before.source.find(key);
    if (it == m.source.end() || (was != before.source.end() && was->second == it->second)) continue;
    FUZZ_CHECK(it->second == "request", "%s has source %s", key, it->second.c_str());
    FUZZ_CHECK(!value->empty() && !catalog::textProblem(*value, catalog::kMaxMetadataValueBytes),
               "%s accepted as %s", key, fuzz::escape(*value).c_str());
    if (std::string_view(key) == "min_os" || std::string_view(key) == "max_os")
      FUZZ_CHECK(value->find_first_not_of("0123456789.") == std::string::npos, "%s = %s", key, value->c_str());
  }
  for (size_t i = 0; i < m.archs.size(); ++i) {
    FUZZ_CHECK(m.archs[i] == "arm64" || m.archs[i] == "x86_64", "arch %s", fuzz::escape(m.archs[i]).c_str());
    for (size_t j = 0; j < i; ++j) FUZZ_CHECK(m.archs[i] != m.archs[j], "duplicate arch %s", m.archs[i].c_str());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body = fuzz::asView(data, size);
  const PackageMetadata before = fromFile();
  PackageMetadata m = before;
  const auto problem = catalog::parseMetadataJson(body, &m);
  if (problem) {
    checkProblem(*problem);
    FUZZ_CHECK(m == before, "a refused body changed the record: %s", problem->c_str());
  } else {
    checkAccepted(before, m);
    PackageMetadata again = m;
    FUZZ_CHECK(!catalog::parseMetadataJson(body, &again), "accepted once, refused the second time");
    FUZZ_CHECK(again == m, "applying the body twice differs from once");
  }

  if (size + 3 <= catalog::kMaxMetadataBodyBytes) {
    std::string padded = " \n";
    padded.append(body);
    padded += '\t';
    PackageMetadata p = before;
    const auto paddedProblem = catalog::parseMetadataJson(padded, &p);
    FUZZ_CHECK(paddedProblem.has_value() == problem.has_value(), "whitespace around the body changed its verdict");
    if (!problem) FUZZ_CHECK(p == m, "whitespace around the body changed what it says");
  }
  return 0;
}
