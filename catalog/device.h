// Devices as the MDM describes them (fleet.h's Device): the rules a record
// must meet, its JSON form (PUT /api/v1/devices/{serial}) and the bulk
// import (POST /api/v1/devices:import) from a JSON array or a CSV export.
// Pure: no I/O, never throws.
//
// Rules (validateDevice):
//   serial      8 to 14 characters, each 'A'-'Z' or '0'-'9' (Apple serials:
//               the old 11-12 character form and the newer random 10, with
//               room either side; lower case is refused, never folded)
//   arch        "arm64", "x86_64" or "" (unknown)
//   os_version  "" or a dotted numeric version: 1 to 4 parts of 1 to 9
//               digits ("14", "14.5", "13.6.1")
//   udid, os_build, model, board_id, site
//               at most 128 bytes of valid UTF-8 without control characters
//   channel     non-empty, same text rule ("stable" when the body omits it)
//   groups      at most 64, each non-empty, at most 64 bytes, no control
//               characters, no duplicates
// Every problem starts with the field it is about ("arch: ...") and quotes
// input only in printable form (utf8.h), so it is safe in a JSON error.
#pragma once

#include <cstddef>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "catalog/fleet.h"

namespace orchard::catalog {

inline constexpr size_t kMinSerialChars = 8;
inline constexpr size_t kMaxSerialChars = 14;
inline constexpr size_t kMaxDeviceFieldBytes = 128;
inline constexpr size_t kMaxDeviceGroups = 64;
inline constexpr size_t kMaxGroupNameBytes = 64;
inline constexpr size_t kMaxImportRows = 100'000;
inline constexpr size_t kMaxImportBodyBytes = 32u << 20;  // 32 MiB
inline constexpr size_t kMaxCsvFields = 16;  // ten columns exist; bounds the memory per record

// nullopt when `serial` is an Apple serial by the rule above.
std::optional<std::string> validateSerial(std::string_view serial);

// "" or 1 to 4 dot-separated parts of 1 to 9 digits. Shared with the
// targeting rule's min_os/max_os (targeting.h).
std::optional<std::string> osVersionProblem(std::string_view v);

// The first problem with a whole record, nullopt when it meets every rule.
std::optional<std::string> validateDevice(const Device& d);

// The record as the API shows it: every field, groups as an array.
void toJson(nlohmann::json& out, const Device& d);

// A PUT body (or one element of an import array). Keys are the API's:
// serial, udid, groups, os_version, os_build, model, board_id, arch,
// channel, site; every one optional except that a serial must come from
// the path or the body. Unknown keys are refused, naming them; values must
// be strings (groups an array of strings); a body serial that disagrees
// with a non-empty `serialFromPath` is refused. The result is validated.
std::variant<Device, std::string> deviceFromJson(const nlohmann::json& body, std::string_view serialFromPath);

// True for the API's device keys (the JSON keys above, the CSV columns).
bool isDeviceField(std::string_view key);

// One row's problem in a refused import. `row` counts as the admin does:
// the array's first element is row 1; in CSV the header is row 1 and the
// first device row 2 (a quoted field spanning lines stays one row, a blank
// line still counts). Row 0 is the body as a whole (too big, too many rows,
// not JSON, an unknown content type); a bad CSV header is row 1.
struct ImportRowError {
  size_t row;
  std::string detail;
  bool operator==(const ImportRowError&) const = default;
};

// Bulk import, all-or-nothing: every device, or every row's error (rows
// ascending, one error per row, duplicate serials refused at their second
// row). `contentType` "application/json" (an array of device objects) or
// "text/csv" (case-insensitive, parameters after ';' ignored).
//
// CSV is RFC 4180: fields separated by ',', records by CRLF or LF, a field
// in double quotes may hold ',', line breaks and "" for a quote; a quote
// inside an unquoted field or anything but a separator after a closing
// quote is a syntax error, reported alone at its row (the scan cannot
// trust what follows it, so no row is checked). The header names the columns, in any order, by
// the JSON keys (serial required, unknown or repeated names refused);
// every row has as many fields as the header; an empty field is an absent
// value; `groups` is a ';'-separated list, spaces around names trimmed and
// empty names skipped. Lines that are entirely empty are skipped.
//
// A UTF-8 byte order mark before the header (spreadsheet exports) is
// skipped. Bounded: a body over kMaxImportBodyBytes, more than
// kMaxImportRows device rows, JSON nested deeper than an array of objects
// holding arrays, or a CSV record of more than kMaxCsvFields fields, is
// refused with one error and no row is checked.
std::variant<std::vector<Device>, std::vector<ImportRowError>> parseDeviceImport(std::string_view body,
                                                                                  std::string_view contentType);

}  // namespace orchard::catalog
