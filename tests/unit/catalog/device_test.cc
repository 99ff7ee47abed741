// Tests for catalog/device: tables of serials and of one-field changes to a
// valid record (each rule of device.h accepted at its bound and refused
// just past it, naming the field), then the JSON form: a round trip, and a
// table of bodies with the path serial they arrive with. The hard part is
// keeping every refusal's field name pinned, since the API returns it.
#include "catalog/device.h"

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/unit/catalog/device_fixture.h"

namespace orchard::catalog {
namespace {

struct SerialCase {
  const char* serial;
  bool ok;
};

void PrintTo(const SerialCase& c, std::ostream* os) { *os << '"' << c.serial << '"'; }

class SerialTest : public ::testing::TestWithParam<SerialCase> {};

TEST_P(SerialTest, Rule) { EXPECT_EQ(!validateSerial(GetParam().serial).has_value(), GetParam().ok); }

INSTANTIATE_TEST_SUITE_P(Table, SerialTest,
                         ::testing::Values(SerialCase{"C02XK1ZZJGH5", true}, SerialCase{"H4J7Q9KD3L", true},
                                           SerialCase{"ABCD1234", true},             // 8: the shortest
                                           SerialCase{"ABCDEFGH123456", true},       // 14: the longest
                                           SerialCase{"ABCD123", false},             // 7
                                           SerialCase{"ABCDEFGH1234567", false},     // 15
                                           SerialCase{"c02xk1zzjgh5", false},        // lower case is not folded
                                           SerialCase{"C02XK1ZZ-GH5", false}, SerialCase{"C02XK1ZZ GH5", false},
                                           SerialCase{"", false}, SerialCase{"C02XK1ZZ\xC3\x89GH", false}));

Device valid() { return fixture::sampleDevice(); }

struct FieldCase {
  const char* name;
  std::function<void(Device&)> change;
  const char* problemPrefix;  // nullptr: still valid
};

void PrintTo(const FieldCase& c, std::ostream* os) { *os << c.name; }

class ValidateDeviceTest : public ::testing::TestWithParam<FieldCase> {};

TEST_P(ValidateDeviceTest, OneChange) {
  Device d = valid();
  GetParam().change(d);
  const auto p = validateDevice(d);
  if (!GetParam().problemPrefix) {
    EXPECT_FALSE(p) << *p;
  } else {
    ASSERT_TRUE(p);
    EXPECT_EQ(p->rfind(GetParam().problemPrefix, 0), 0u) << *p;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, ValidateDeviceTest,
    ::testing::Values(
        FieldCase{"as_is", [](Device&) {}, nullptr},
        FieldCase{"x86", [](Device& d) { d.arch = "x86_64"; }, nullptr},
        FieldCase{"arch_unknown", [](Device& d) { d.arch = ""; }, nullptr},
        FieldCase{"arch_other", [](Device& d) { d.arch = "ppc"; }, "arch: "},
        FieldCase{"arch_case", [](Device& d) { d.arch = "ARM64"; }, "arch: "},
        FieldCase{"os_empty", [](Device& d) { d.osVersion = ""; }, nullptr},
        FieldCase{"os_one_part", [](Device& d) { d.osVersion = "26"; }, nullptr},
        FieldCase{"os_four_parts", [](Device& d) { d.osVersion = "13.6.1.2"; }, nullptr},
        FieldCase{"os_five_parts", [](Device& d) { d.osVersion = "13.6.1.2.3"; }, "os_version: "},
        FieldCase{"os_letters", [](Device& d) { d.osVersion = "14.5b"; }, "os_version: "},
        FieldCase{"os_trailing_dot", [](Device& d) { d.osVersion = "14."; }, "os_version: "},
        FieldCase{"os_leading_dot", [](Device& d) { d.osVersion = ".14"; }, "os_version: "},
        FieldCase{"os_long_part", [](Device& d) { d.osVersion = "1234567890"; }, "os_version: "},
        FieldCase{"model_128", [](Device& d) { d.model = std::string(128, 'm'); }, nullptr},
        FieldCase{"model_129", [](Device& d) { d.model = std::string(129, 'm'); }, "model: "},
        FieldCase{"udid_control", [](Device& d) { d.udid = "a\nb"; }, "udid: "},
        FieldCase{"site_bad_utf8", [](Device& d) { d.site = "\xC0\xAF"; }, "site: "},
        FieldCase{"board_id_129", [](Device& d) { d.boardId = std::string(129, 'b'); }, "board_id: "},
        FieldCase{"os_build_control", [](Device& d) { d.osBuild = "23F\x7f"; }, "os_build: "},
        FieldCase{"channel_empty", [](Device& d) { d.channel = ""; }, "channel: "},
        FieldCase{"channel_beta", [](Device& d) { d.channel = "beta"; }, nullptr},
        FieldCase{"serial_bad", [](Device& d) { d.serial = "short"; }, "serial: "},
        FieldCase{"groups_none", [](Device& d) { d.groups.clear(); }, nullptr},
        FieldCase{"groups_64",
                  [](Device& d) {
                    d.groups.clear();
                    for (int i = 0; i < 64; ++i) d.groups.push_back("g" + std::to_string(i));
                  },
                  nullptr},
        FieldCase{"groups_65",
                  [](Device& d) {
                    d.groups.clear();
                    for (int i = 0; i < 65; ++i) d.groups.push_back("g" + std::to_string(i));
                  },
                  "groups: "},
        FieldCase{"group_64_bytes", [](Device& d) { d.groups = {std::string(64, 'g')}; }, nullptr},
        FieldCase{"group_65_bytes", [](Device& d) { d.groups = {std::string(65, 'g')}; }, "groups[0]: "},
        FieldCase{"group_empty", [](Device& d) { d.groups = {"it", ""}; }, "groups[1]: "},
        FieldCase{"group_control", [](Device& d) { d.groups = {"i\tt"}; }, "groups[0]: "},
        FieldCase{"group_repeated", [](Device& d) { d.groups = {"it", "finance", "it"}; }, "groups[2]: "},
        FieldCase{"group_unicode", [](Device& d) { d.groups = {"comptabilit\xC3\xA9"}; }, nullptr}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(DeviceJson, RoundTrip) {
  const Device d = valid();
  nlohmann::json j;
  toJson(j, d);
  EXPECT_EQ(j["os_version"], "14.5");
  EXPECT_EQ(j["board_id"], "Mac-27AD2F918AE68F61");
  EXPECT_EQ(j["groups"], nlohmann::json::array({"finance", "it"}));
  EXPECT_EQ(j["channel"], "stable");
  const auto back = deviceFromJson(j, d.serial);
  ASSERT_TRUE(std::holds_alternative<Device>(back)) << std::get<std::string>(back);
  EXPECT_EQ(std::get<Device>(back), d);
}

struct BodyCase {
  const char* name;
  const char* body;
  const char* pathSerial;
  const char* problemPrefix;  // nullptr: accepted
};

void PrintTo(const BodyCase& c, std::ostream* os) { *os << c.name; }

class DeviceFromJsonTest : public ::testing::TestWithParam<BodyCase> {};

TEST_P(DeviceFromJsonTest, Body) {
  const BodyCase& c = GetParam();
  const auto r = deviceFromJson(nlohmann::json::parse(c.body), c.pathSerial);
  if (!c.problemPrefix) {
    ASSERT_TRUE(std::holds_alternative<Device>(r)) << std::get<std::string>(r);
    EXPECT_FALSE(std::get<Device>(r).serial.empty());
  } else {
    ASSERT_TRUE(std::holds_alternative<std::string>(r));
    EXPECT_EQ(std::get<std::string>(r).rfind(c.problemPrefix, 0), 0u) << std::get<std::string>(r);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, DeviceFromJsonTest,
    ::testing::Values(
        BodyCase{"empty_with_path", "{}", "C02XK1ZZJGH5", nullptr},
        BodyCase{"serial_agrees", R"({"serial":"C02XK1ZZJGH5"})", "C02XK1ZZJGH5", nullptr},
        BodyCase{"serial_disagrees", R"({"serial":"C02XK1ZZJGH6"})", "C02XK1ZZJGH5", "serial: the body says"},
        BodyCase{"serial_only_in_body", R"({"serial":"C02XK1ZZJGH5"})", "", nullptr},
        BodyCase{"serial_nowhere", R"({"udid":"x"})", "", "serial: is missing"},
        BodyCase{"bad_path_serial", "{}", "c02", "serial: "},
        BodyCase{"unknown_key", R"({"colour":"red"})", "C02XK1ZZJGH5", "colour: unknown device field"},
        BodyCase{"unknown_key_control", "{\"a\\u0001\":1}", "C02XK1ZZJGH5", "a\\x01: unknown device field"},
        BodyCase{"number_value", R"({"os_version":14})", "C02XK1ZZJGH5", "os_version: must be a string"},
        BodyCase{"null_value", R"({"site":null})", "C02XK1ZZJGH5", "site: must be a string"},
        BodyCase{"groups_not_array", R"({"groups":"it"})", "C02XK1ZZJGH5", "groups: must be an array"},
        BodyCase{"groups_of_numbers", R"({"groups":[1]})", "C02XK1ZZJGH5", "groups: must be an array"},
        BodyCase{"channel_empty", R"({"channel":""})", "C02XK1ZZJGH5", "channel: is empty"},
        BodyCase{"arch_bad", R"({"arch":"i386"})", "C02XK1ZZJGH5", "arch: "},
        BodyCase{"not_object", "[]", "C02XK1ZZJGH5", "device: must be a JSON object"},
        BodyCase{"full",
                 R"({"udid":"u","groups":["it"],"os_version":"15.1","os_build":"24B83","model":"Mac15,3",
                     "board_id":"b","arch":"x86_64","channel":"beta","site":"lyon"})",
                 "C02XK1ZZJGH5", nullptr}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(DeviceFromJson, ChannelDefaultsToStable) {
  const auto r = deviceFromJson(nlohmann::json::object(), "C02XK1ZZJGH5");
  ASSERT_TRUE(std::holds_alternative<Device>(r));
  EXPECT_EQ(std::get<Device>(r).channel, "stable");
}

}  // namespace
}  // namespace orchard::catalog
