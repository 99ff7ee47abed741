// Fuzz target: catalog/device's parseDeviceImport, the bulk device import
// (POST /api/v1/devices:import) an MDM export is sent to, as JSON and CSV.
//
// Input: a first line naming a content type, then the body. The body is
// imported as that type, as application/json and as text/csv.
//
// Invariants beyond "no crash" (and no exception escaping):
//   - a refusal lists at least one error, rows strictly ascending, a row-0
//     error only alone, each detail non-empty printable ASCII naming its
//     field ("serial: ...", "csv: ...", "import: ...");
//   - an acceptance holds at most kMaxImportRows devices, each valid by
//     validateDevice, no serial twice;
//   - the accepted devices written back as a JSON array (toJson) import
//     to exactly the same list, whichever format they came in;
//   - JSON whitespace around a JSON body never changes the verdict.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "catalog/device.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace orchard;
using catalog::Device;
using catalog::ImportRowError;
using Result = std::variant<std::vector<Device>, std::vector<ImportRowError>>;

void checkRefused(const std::vector<ImportRowError>& errors) {
  FUZZ_CHECK(!errors.empty(), "refused with no error");
  for (size_t i = 0; i < errors.size(); ++i) {
    const std::string& d = errors[i].detail;
    FUZZ_CHECK(!d.empty(), "empty detail on row %zu", errors[i].row);
    for (unsigned char c : d) FUZZ_CHECK(c >= 0x20 && c < 0x7f, "detail byte 0x%02x: %s", c, fuzz::escape(d).c_str());
    FUZZ_CHECK(d.find(": ") != std::string::npos, "detail names no field: %s", d.c_str());
    if (i) FUZZ_CHECK(errors[i].row > errors[i - 1].row, "rows not ascending: %zu after %zu", errors[i].row,
                      errors[i - 1].row);
    if (errors[i].row == 0) FUZZ_CHECK(errors.size() == 1, "a row-0 error among others: %s", d.c_str());
  }
}

void checkAccepted(const std::vector<Device>& devices) {
  FUZZ_CHECK(devices.size() <= catalog::kMaxImportRows, "%zu devices", devices.size());
  std::set<std::string> serials;
  nlohmann::json back = nlohmann::json::array();
  for (const Device& d : devices) {
    const auto p = catalog::validateDevice(d);
    FUZZ_CHECK(!p, "accepted an invalid device: %s", p->c_str());
    FUZZ_CHECK(serials.insert(d.serial).second, "serial %s twice", d.serial.c_str());
    nlohmann::json j;
    catalog::toJson(j, d);
    back.push_back(std::move(j));
  }
  const Result again = catalog::parseDeviceImport(back.dump(), "application/json");
  FUZZ_CHECK(std::holds_alternative<std::vector<Device>>(again), "written back, refused: %s",
             std::get<std::vector<ImportRowError>>(again).front().detail.c_str());
  FUZZ_CHECK(std::get<std::vector<Device>>(again) == devices, "written back, imported differently");
}

Result check(std::string_view body, std::string_view type) {
  Result r = catalog::parseDeviceImport(body, type);
  if (auto* errors = std::get_if<std::vector<ImportRowError>>(&r)) checkRefused(*errors);
  else checkAccepted(std::get<std::vector<Device>>(r));
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in = fuzz::asView(data, size);
  const size_t nl = in.find('\n');
  const std::string_view type = nl == std::string_view::npos ? std::string_view() : in.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? in : in.substr(nl + 1);

  check(body, type);
  check(body, "text/csv");
  const Result json = check(body, "application/json");

  std::string padded = " \r\n";
  padded.append(body);
  padded += "\t\n";
  const Result p = check(padded, "application/json");
  FUZZ_CHECK(p.index() == json.index(), "whitespace around a JSON body changed its verdict");
  if (json.index() == 0) FUZZ_CHECK(p == json, "whitespace around a JSON body changed what it says");
  return 0;
}
