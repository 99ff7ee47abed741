// Fuzz target: catalog/status_report's parseStatusReport, the DDM status
// items an MDM forwards (POST /api/v1/devices/{serial}/status), and the
// declaration Identifier read back to a package name.
//
// Input: the body as sent.
//
// Invariants beyond "no crash" (and no exception escaping):
//   - a refusal says why, starting "status: ", and only for a body that is
//     not a JSON object or is over kMaxStatusBody;
//   - an acceptance keeps the whole object (raw == the parsed body), holds
//     at most kMaxStatusPackages entries, each naming a package (identifier,
//     bundle id or name) and with a state whose name maps back to it;
//   - the body wrapped as {"StatusItems": body} reads the same items;
//   - each entry's identifier, when it reads back to a name, is that
//     name's canonical declaration Identifier.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "catalog/declarations.h"
#include "catalog/status_report.h"
#include "tests/fuzz/fuzz_util.h"

using namespace orchard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body = fuzz::asView(data, size);
  auto r = catalog::parseStatusReport(body);
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (auto* e = std::get_if<std::string>(&r)) {
    FUZZ_CHECK(e->rfind("status: ", 0) == 0, "refusal without its prefix: %s", e->c_str());
    FUZZ_CHECK(body.size() > catalog::kMaxStatusBody || j.is_discarded() || !j.is_object(),
               "refused a JSON object: %s", e->c_str());
    return 0;
  }
  const auto& s = std::get<catalog::StatusReport>(r);
  FUZZ_CHECK(j.is_object() && s.raw == j, "the report is not kept as sent");
  FUZZ_CHECK(s.packages.size() <= catalog::kMaxStatusPackages, "%zu packages", s.packages.size());
  for (const auto& p : s.packages) {
    FUZZ_CHECK(!p.identifier.empty() || !p.bundleId.empty() || !p.name.empty(), "an entry naming nothing");
    FUZZ_CHECK(catalog::packageStateFrom(catalog::packageStateName(p.state)) == p.state, "state name round trip");
    if (auto n = catalog::packageNameFromIdentifier(p.identifier))
      FUZZ_CHECK(catalog::packageDeclarationIdentifier(*n) == p.identifier, "identifier %s reads back wrongly",
                 fuzz::escape(p.identifier).c_str());
  }
  if (!j.contains("StatusItems") && body.size() < catalog::kMaxStatusBody / 2) {
    const nlohmann::json wrapped{{"StatusItems", j}};
    auto w = catalog::parseStatusReport(wrapped.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    FUZZ_CHECK(std::holds_alternative<catalog::StatusReport>(w), "wrapped, refused");
    const auto& ws = std::get<catalog::StatusReport>(w);
    FUZZ_CHECK(ws.packages == s.packages, "wrapped, other packages");
    FUZZ_CHECK(ws.installState == s.installState && ws.pendingVersion == s.pendingVersion &&
                   ws.failureReason == s.failureReason,
               "wrapped, other softwareupdate items");
  }
  return 0;
}
