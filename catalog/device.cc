// Device records: validation and the JSON form (device.h). The import of
// many records at once is device_import.cc. Hard parts: the body is
// untrusted, so every value's type is checked before it is read (nlohmann's
// get<> would throw), unknown keys are named in printable form, and one
// field table drives both directions so JSON in and out cannot drift; a
// path serial and a body serial that disagree are refused rather than one
// silently winning.
#include "catalog/device.h"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>

#include "catalog/utf8.h"

namespace orchard::catalog {
namespace {

// The string fields, by API name; groups is the one list and handled apart.
struct TextField {
  std::string_view key;
  std::string Device::*member;
};

constexpr std::array<TextField, 9> kTextFields = {{
    {"serial", &Device::serial},
    {"udid", &Device::udid},
    {"os_version", &Device::osVersion},
    {"os_build", &Device::osBuild},
    {"model", &Device::model},
    {"board_id", &Device::boardId},
    {"arch", &Device::arch},
    {"channel", &Device::channel},
    {"site", &Device::site},
}};

constexpr std::string_view kGroupsKey = "groups";

std::optional<std::string> fieldProblem(std::string_view key, std::optional<std::string> p) {
  if (!p) return std::nullopt;
  return std::string(key) + ": " + *p;
}

std::optional<std::string> groupsProblem(const std::vector<std::string>& groups) {
  if (groups.size() > kMaxDeviceGroups)
    return "groups: " + std::to_string(groups.size()) + " groups (at most " + std::to_string(kMaxDeviceGroups) + ")";
  for (size_t i = 0; i < groups.size(); ++i) {
    const std::string& g = groups[i];
    const std::string which = "groups[" + std::to_string(i) + "]: ";
    if (g.empty()) return which + "is empty";
    if (auto p = textProblem(g, kMaxGroupNameBytes)) return which + *p;
    for (size_t j = 0; j < i; ++j)
      if (groups[j] == g) return which + "repeats group " + printable(g);
  }
  return std::nullopt;
}

}  // namespace

bool isDeviceField(std::string_view key) {
  return key == kGroupsKey ||
         std::any_of(kTextFields.begin(), kTextFields.end(), [&](const TextField& t) { return t.key == key; });
}

std::optional<std::string> validateSerial(std::string_view serial) {
  if (serial.size() < kMinSerialChars || serial.size() > kMaxSerialChars)
    return "is " + std::to_string(serial.size()) + " characters (an Apple serial has " +
           std::to_string(kMinSerialChars) + " to " + std::to_string(kMaxSerialChars) + ")";
  for (char c : serial)
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return "may hold only upper-case letters and digits (found " + printable(std::string_view(&c, 1)) + ")";
  return std::nullopt;
}

std::optional<std::string> osVersionProblem(std::string_view v) {
  if (v.empty()) return std::nullopt;
  size_t parts = 1, digits = 0;
  for (char c : v) {
    if (c >= '0' && c <= '9') {
      if (++digits > 9) return "is not a dotted numeric version (a part has more than 9 digits)";
    } else if (c == '.' && digits > 0) {
      digits = 0;
      if (++parts > 4) return "is not a dotted numeric version (more than 4 parts)";
    } else {
      return "is not a dotted numeric version like 14.5";
    }
  }
  if (digits == 0) return "is not a dotted numeric version (ends with '.')";
  return std::nullopt;
}

std::optional<std::string> validateDevice(const Device& d) {
  if (auto p = fieldProblem("serial", validateSerial(d.serial))) return p;
  for (const TextField& f : kTextFields) {
    if (f.key == "serial") continue;
    if (auto p = fieldProblem(f.key, textProblem(d.*(f.member), kMaxDeviceFieldBytes))) return p;
  }
  if (d.arch != "" && d.arch != "arm64" && d.arch != "x86_64")
    return "arch: must be arm64, x86_64 or empty (not " + printable(d.arch) + ")";
  if (auto p = fieldProblem("os_version", osVersionProblem(d.osVersion))) return p;
  if (d.channel.empty()) return "channel: is empty";
  return groupsProblem(d.groups);
}

void toJson(nlohmann::json& out, const Device& d) {
  out = nlohmann::json::object();
  for (const TextField& f : kTextFields) out[std::string(f.key)] = d.*(f.member);
  out[std::string(kGroupsKey)] = d.groups;
}

std::variant<Device, std::string> deviceFromJson(const nlohmann::json& body, std::string_view serialFromPath) {
  if (!body.is_object()) return std::string("device: must be a JSON object");
  Device d;
  bool bodySerial = false;
  for (const auto& [key, value] : body.items()) {
    if (key == kGroupsKey) {
      if (!value.is_array()) return std::string("groups: must be an array of strings");
      if (value.size() > kMaxDeviceGroups)
        return "groups: " + std::to_string(value.size()) + " groups (at most " + std::to_string(kMaxDeviceGroups) +
               ")";
      for (const auto& g : value) {
        if (!g.is_string()) return std::string("groups: must be an array of strings");
        d.groups.push_back(g.get<std::string>());
      }
      continue;
    }
    const auto f = std::find_if(kTextFields.begin(), kTextFields.end(), [&](const TextField& t) { return t.key == key; });
    if (f == kTextFields.end()) {
      std::string known;
      for (const TextField& t : kTextFields) known += std::string(t.key) + ", ";
      return printable(key) + ": unknown device field (known: " + known + std::string(kGroupsKey) + ")";
    }
    if (!value.is_string()) return key + ": must be a string";
    d.*(f->member) = value.get<std::string>();
    if (f->key == "serial") bodySerial = true;
  }
  if (!serialFromPath.empty()) {
    if (bodySerial && d.serial != serialFromPath)
      return "serial: the body says " + printable(d.serial) + " but the path says " + printable(serialFromPath);
    d.serial = std::string(serialFromPath);
  } else if (!bodySerial) {
    return std::string("serial: is missing");
  }
  if (auto p = validateDevice(d)) return *p;
  return d;
}

}  // namespace orchard::catalog
