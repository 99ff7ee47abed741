// Tests for catalog/device's bulk import: a table of bodies (JSON arrays
// and CSV exports) with the devices or the exact row errors each must give,
// covering RFC 4180 quoting (commas, line breaks and "" inside quotes),
// CRLF and LF, columns in any order, the groups list, row numbering as a
// spreadsheet shows it, all-or-nothing refusal with every bad row listed,
// duplicate serials, and the bounds. The hard part is row numbers: a
// quoted field spanning lines is one row, a blank line is still a row.
#include <gtest/gtest.h>

#include <string>

#include "catalog/device.h"
#include "tests/unit/catalog/device_fixture.h"

namespace orchard::catalog {
namespace {

using Errors = std::vector<ImportRowError>;

struct ImportCase {
  const char* name;
  const char* contentType;
  std::string body;
  std::vector<std::string> serials;  // accepted: these, in order
  Errors errors;                     // refused: exactly these (detail compared as a prefix)
};

void PrintTo(const ImportCase& c, std::ostream* os) { *os << c.name; }

class ImportTest : public ::testing::TestWithParam<ImportCase> {};

TEST_P(ImportTest, Table) {
  const ImportCase& c = GetParam();
  const auto r = parseDeviceImport(c.body, c.contentType);
  if (c.errors.empty()) {
    ASSERT_TRUE(std::holds_alternative<std::vector<Device>>(r)) << std::get<Errors>(r).front().detail;
    std::vector<std::string> got;
    for (const Device& d : std::get<std::vector<Device>>(r)) got.push_back(d.serial);
    EXPECT_EQ(got, c.serials);
    return;
  }
  ASSERT_TRUE(std::holds_alternative<Errors>(r));
  const Errors& got = std::get<Errors>(r);
  ASSERT_EQ(got.size(), c.errors.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].row, c.errors[i].row) << got[i].detail;
    EXPECT_EQ(got[i].detail.rfind(c.errors[i].detail, 0), 0u) << got[i].detail;
  }
}

constexpr const char* kJson = "application/json";
constexpr const char* kCsv = "text/csv";

INSTANTIATE_TEST_SUITE_P(
    Table, ImportTest,
    ::testing::Values(
        // JSON.
        ImportCase{"json_two", kJson, R"([{"serial":"AAAA1111"},{"serial":"BBBB2222","groups":["it"]}])",
                   {"AAAA1111", "BBBB2222"}, {}},
        ImportCase{"json_empty", kJson, "[]", {}, {}},
        ImportCase{"json_params", "Application/JSON; charset=utf-8", R"([{"serial":"AAAA1111"}])", {"AAAA1111"}, {}},
        ImportCase{"json_every_bad_row",
                   kJson,
                   R"([{"serial":"AAAA1111"},{"serial":"bad"},{"serial":"CCCC3333","arch":"ppc"},{"serial":"DDDD4444"}])",
                   {},
                   {{2, "serial: "}, {3, "arch: "}}},
        ImportCase{"json_duplicate", kJson, R"([{"serial":"AAAA1111"},{"serial":"BBBB2222"},{"serial":"AAAA1111"}])",
                   {}, {{3, "serial: AAAA1111 is already on row 1"}}},
        ImportCase{"json_unknown_key", kJson, R"([{"serial":"AAAA1111","owner":"x"}])", {},
                   {{1, "owner: unknown device field"}}},
        ImportCase{"json_no_serial", kJson, R"([{"udid":"x"}])", {}, {{1, "serial: is missing"}}},
        ImportCase{"json_element_not_object", kJson, R"([{"serial":"AAAA1111"}, 3])", {},
                   {{2, "device: must be a JSON object"}}},
        ImportCase{"json_not_array", kJson, R"({"serial":"AAAA1111"})", {}, {{0, "import: must be a JSON array"}}},
        ImportCase{"json_broken", kJson, R"([{"serial":"AAAA1111")", {}, {{0, "import: not valid JSON"}}},
        ImportCase{"json_too_deep", kJson, R"([{"serial":"AAAA1111","groups":[["it"]]}])", {},
                   {{0, "import: nested deeper"}}},
        ImportCase{"unknown_type", "text/plain", "serial\nAAAA1111\n", {}, {{0, "import: content type text/plain"}}},
        ImportCase{"no_type", "", "[]", {}, {{0, "import: content type"}}},

        // CSV: shapes.
        ImportCase{"csv_lf", kCsv, "serial,arch\nAAAA1111,arm64\nBBBB2222,x86_64\n", {"AAAA1111", "BBBB2222"}, {}},
        ImportCase{"csv_crlf_no_final_newline", kCsv, "serial,arch\r\nAAAA1111,arm64\r\nBBBB2222,", {"AAAA1111", "BBBB2222"},
                   {}},
        ImportCase{"csv_columns_any_order", kCsv, "site,os_version,serial\nparis,14.5,AAAA1111\n", {"AAAA1111"}, {}},
        ImportCase{"csv_header_only", kCsv, "serial,groups\n", {}, {}},
        ImportCase{"csv_bom", kCsv, "\xEF\xBB\xBFserial\nAAAA1111\n", {"AAAA1111"}, {}},
        ImportCase{"csv_quoted", kCsv, "serial,model,site\n\"AAAA1111\",\"Mac14,2\",\"say \"\"hi\"\"\"\n", {"AAAA1111"},
                   {}},
        ImportCase{"csv_groups_list", kCsv, "serial,groups\nAAAA1111,\"finance; it ;;\"\nBBBB2222,\n", {"AAAA1111", "BBBB2222"},
                   {}},
        ImportCase{"csv_blank_lines_skipped", kCsv, "serial\n\nAAAA1111\r\n\r\nBBBB2222\n", {"AAAA1111", "BBBB2222"}, {}},

        // CSV: row numbers (header = row 1).
        ImportCase{"csv_every_bad_row", kCsv, "serial,arch\nAAAA1111,arm64\nbad,arm64\nCCCC3333,ppc\n", {},
                   {{3, "serial: "}, {4, "arch: "}}},
        ImportCase{"csv_multiline_field_is_one_row", kCsv, "serial,site\nAAAA1111,\"two\nlines\"\nbad,x\n", {},
                   {{2, "site: "}, {3, "serial: "}}},
        ImportCase{"csv_blank_line_counts", kCsv, "serial\nAAAA1111\n\nbad\n", {}, {{4, "serial: "}}},
        ImportCase{"csv_field_count", kCsv, "serial,site\nAAAA1111\nBBBB2222,a,b\n", {},
                   {{2, "csv: 1 field, the header has 2"}, {3, "csv: 3 fields"}}},
        ImportCase{"csv_duplicate", kCsv, "serial\nAAAA1111\nAAAA1111\n", {}, {{3, "serial: AAAA1111 is already on row 2"}}},
        ImportCase{"csv_empty_serial", kCsv, "serial,site\n,paris\n", {}, {{2, "serial: is missing"}}},

        // CSV: header and syntax.
        ImportCase{"csv_empty_body", kCsv, "", {}, {{0, "csv: no header row"}}},
        ImportCase{"csv_unknown_column", kCsv, "serial,owner\nAAAA1111,x\n", {}, {{1, "csv: unknown column \"owner\""}}},
        ImportCase{"csv_empty_column_name", kCsv, "serial,\nAAAA1111,\n", {}, {{1, "csv: unknown column \"\""}}},
        ImportCase{"csv_column_twice", kCsv, "serial,site,site\n", {}, {{1, "csv: column site appears twice"}}},
        ImportCase{"csv_no_serial_column", kCsv, "site\nparis\n", {}, {{1, "csv: the header has no serial column"}}},
        ImportCase{"csv_unclosed_quote", kCsv, "serial\nAAAA1111\n\"BBBB2222\n", {}, {{3, "csv: a quoted field is not closed"}}},
        ImportCase{"csv_after_closing_quote", kCsv, "serial,site\nAAAA1111,\"a\"b\n", {}, {{2, "csv: b after a closing quote"}}},
        ImportCase{"csv_quote_inside", kCsv, "serial,site\nAAAA1111,a\"b\n", {}, {{2, "csv: a quote inside"}}},
        ImportCase{"csv_lone_cr_is_a_byte", kCsv, "serial,site\rAAAA1111\n", {}, {{1, "csv: unknown column \"site\\x0d"}}},
        ImportCase{"csv_too_many_fields", kCsv, std::string(20, ','), {}, {{1, "csv: more than 16 fields"}}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ImportCsv, FieldsReachTheRecord) {
  const auto r = parseDeviceImport(
      "groups,serial,udid,os_version,os_build,model,board_id,arch,channel,site\r\n"
      "\"finance;it\",C02XK1ZZJGH5,00008103-001A2B3C4D5E6F70,14.5,23F79,\"Mac14,2\",Mac-27AD2F918AE68F61,arm64,beta,"
      "paris\r\n",
      "text/csv");
  ASSERT_TRUE(std::holds_alternative<std::vector<Device>>(r));
  const auto& ds = std::get<std::vector<Device>>(r);
  ASSERT_EQ(ds.size(), 1u);
  Device want = fixture::sampleDevice();
  want.channel = "beta";
  EXPECT_EQ(ds[0], want);
  // An empty channel field is an absent value: the default applies.
  const auto d = parseDeviceImport("serial,channel\nAAAA1111,\n", "text/csv");
  ASSERT_TRUE(std::holds_alternative<std::vector<Device>>(d));
  EXPECT_EQ(std::get<std::vector<Device>>(d)[0].channel, "stable");
}

TEST(ImportBounds, BodyTooBig) {
  const std::string body(kMaxImportBodyBytes + 1, ' ');
  for (const char* type : {"application/json", "text/csv"}) {
    const auto r = parseDeviceImport(body, type);
    ASSERT_TRUE(std::holds_alternative<Errors>(r));
    ASSERT_EQ(std::get<Errors>(r).size(), 1u);
    EXPECT_EQ(std::get<Errors>(r)[0].row, 0u);
    EXPECT_EQ(std::get<Errors>(r)[0].detail.rfind("import: body is", 0), 0u);
  }
}

TEST(ImportBounds, RowLimit) {
  // kMaxImportRows rows are taken; one more is refused with one error.
  std::string csv = "serial\n", json = "[";
  for (size_t i = 0; i < kMaxImportRows; ++i) {
    const std::string serial = "S" + std::string(7 - std::to_string(i).size(), '0') + std::to_string(i);
    csv += serial + "\n";
    json += (i ? ",{\"serial\":\"" : "{\"serial\":\"") + serial + "\"}";
  }
  const auto ok = parseDeviceImport(csv, "text/csv");
  ASSERT_TRUE(std::holds_alternative<std::vector<Device>>(ok));
  EXPECT_EQ(std::get<std::vector<Device>>(ok).size(), kMaxImportRows);
  const auto okJson = parseDeviceImport(json + "]", "application/json");
  ASSERT_TRUE(std::holds_alternative<std::vector<Device>>(okJson));

  csv += "ZZZZ9999\n";
  json += ",{\"serial\":\"ZZZZ9999\"}]";
  for (const auto& [body, type] : {std::pair{csv, "text/csv"}, std::pair{json, "application/json"}}) {
    const auto r = parseDeviceImport(body, type);
    ASSERT_TRUE(std::holds_alternative<Errors>(r)) << type;
    ASSERT_EQ(std::get<Errors>(r).size(), 1u);
    EXPECT_EQ(std::get<Errors>(r)[0].row, 0u);
    EXPECT_NE(std::get<Errors>(r)[0].detail.find("rows (at most 100000)"), std::string::npos);
  }
}

}  // namespace
}  // namespace orchard::catalog
