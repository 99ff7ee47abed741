// Bulk device import (device.h's parseDeviceImport): a JSON array or an
// RFC 4180 CSV export, all-or-nothing with one error per bad row. Hard
// parts: the CSV scanner is a small state machine over bytes (quoted
// fields span lines and hold "" for a quote, CRLF and LF both end a record,
// a lone CR is an ordinary byte that validation then refuses), and a row
// number must be the one a person sees in a spreadsheet: records, not
// physical lines. Memory is bounded before anything is built: the body
// size, the JSON depth (nlohmann recurses), the record count and the
// fields per record. Each CSV row becomes the JSON object a PUT would
// send, so both formats pass through the one deviceFromJson.
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "catalog/device.h"
#include "catalog/request_metadata.h"
#include "catalog/utf8.h"
#include "common/ascii.h"

namespace orchard::catalog {
namespace {

using Refused = std::vector<ImportRowError>;
using ImportResult = std::variant<std::vector<Device>, Refused>;

// An array of objects whose groups are arrays.
constexpr int kMaxImportJsonDepth = 3;

ImportResult refuse(size_t row, std::string detail) { return Refused{{row, std::move(detail)}}; }

std::string tooManyRows(size_t n) {
  return "import: " + (n > kMaxImportRows ? "more than " + std::to_string(kMaxImportRows) : std::to_string(n)) +
         " rows (at most " + std::to_string(kMaxImportRows) + ")";
}

struct CsvRecord {
  size_t row;  // 1-based, counting blank lines and records, not physical lines
  std::vector<std::string> fields;
};

struct CsvScan {
  std::vector<CsvRecord> records;
  std::optional<ImportRowError> error;
};

// A record ends at LF or CRLF; `i` is at a byte of the body.
bool atRecordEnd(std::string_view s, size_t i) {
  return s[i] == '\n' || (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n');
}

size_t skipRecordEnd(std::string_view s, size_t i) { return i + (s[i] == '\r' ? 2 : 1); }

// Splits the body into records of fields; stops at the first syntax error
// or once there are more than `maxRecords` records (the caller refuses).
CsvScan scanCsv(std::string_view s, size_t maxRecords) {
  CsvScan out;
  size_t i = 0, row = 0;
  auto fail = [&](std::string detail) {
    out.error = ImportRowError{row, std::move(detail)};
    return std::move(out);
  };
  while (i < s.size()) {
    ++row;
    if (atRecordEnd(s, i)) {  // a blank line: counted, skipped
      i = skipRecordEnd(s, i);
      continue;
    }
    CsvRecord rec{row, {}};
    while (true) {
      if (rec.fields.size() == kMaxCsvFields)
        return fail("csv: more than " + std::to_string(kMaxCsvFields) + " fields in a record");
      std::string field;
      if (i < s.size() && s[i] == '"') {
        for (++i;; ++i) {
          if (i >= s.size()) return fail("csv: a quoted field is not closed");
          if (s[i] != '"') {
            field += s[i];
          } else if (i + 1 < s.size() && s[i + 1] == '"') {
            field += '"';
            ++i;
          } else {
            ++i;
            break;
          }
        }
        if (i < s.size() && s[i] != ',' && !atRecordEnd(s, i))
          return fail("csv: " + printable(s.substr(i, 1)) + " after a closing quote (expected ',' or a line end)");
      } else {
        const size_t start = i;
        for (; i < s.size() && s[i] != ',' && !atRecordEnd(s, i); ++i)
          if (s[i] == '"') return fail("csv: a quote inside an unquoted field (quote the whole field)");
        field.assign(s.substr(start, i - start));
      }
      rec.fields.push_back(std::move(field));
      if (i >= s.size()) break;
      if (s[i] == ',') {
        ++i;
        continue;
      }
      i = skipRecordEnd(s, i);
      break;
    }
    out.records.push_back(std::move(rec));
    if (out.records.size() > maxRecords) return out;
  }
  return out;
}

std::string_view trimSpaces(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

nlohmann::json groupsFromCsv(std::string_view v) {
  nlohmann::json groups = nlohmann::json::array();
  while (true) {
    const size_t semi = v.find(';');
    const std::string_view name = trimSpaces(v.substr(0, semi));
    if (!name.empty()) groups.push_back(std::string(name));
    if (semi == std::string_view::npos) break;
    v.remove_prefix(semi + 1);
  }
  return groups;
}

// Collects each row's device or error, refusing a serial seen before.
class Collector {
 public:
  void add(size_t row, std::variant<Device, std::string> parsed) {
    if (auto* problem = std::get_if<std::string>(&parsed)) {
      errors_.push_back({row, std::move(*problem)});
      return;
    }
    Device& d = std::get<Device>(parsed);
    const auto [it, fresh] = firstRow_.emplace(d.serial, row);
    if (!fresh) {
      errors_.push_back({row, "serial: " + d.serial + " is already on row " + std::to_string(it->second)});
      return;
    }
    devices_.push_back(std::move(d));
  }
  void fail(size_t row, std::string detail) { errors_.push_back({row, std::move(detail)}); }

  ImportResult finish() {
    if (!errors_.empty()) return std::move(errors_);
    return std::move(devices_);
  }

 private:
  std::vector<Device> devices_;
  Refused errors_;
  std::map<std::string, size_t> firstRow_;
};

ImportResult importJson(std::string_view body) {
  if (jsonNestingDepth(body, kMaxImportJsonDepth) > kMaxImportJsonDepth)
    return refuse(0, "import: nested deeper than an array of device objects");
  const nlohmann::json doc = nlohmann::json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return refuse(0, "import: not valid JSON");
  if (!doc.is_array()) return refuse(0, "import: must be a JSON array of device objects");
  if (doc.size() > kMaxImportRows) return refuse(0, tooManyRows(doc.size()));
  Collector c;
  for (size_t i = 0; i < doc.size(); ++i) c.add(i + 1, deviceFromJson(doc[i], ""));
  return c.finish();
}

ImportResult importCsv(std::string_view body) {
  if (body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);
  CsvScan scan = scanCsv(body, kMaxImportRows + 1);
  if (scan.error) return Refused{*scan.error};
  if (scan.records.empty()) return refuse(0, "csv: no header row");
  if (scan.records.size() > kMaxImportRows + 1) return refuse(0, tooManyRows(scan.records.size()));

  const CsvRecord& header = scan.records.front();
  std::vector<std::string> columns;
  for (const std::string& raw : header.fields) {
    const std::string name(trimSpaces(raw));
    if (!isDeviceField(name)) return refuse(header.row, "csv: unknown column \"" + printable(name) + "\"");
    if (std::find(columns.begin(), columns.end(), name) != columns.end())
      return refuse(header.row, "csv: column " + name + " appears twice");
    columns.push_back(name);
  }
  if (std::find(columns.begin(), columns.end(), "serial") == columns.end())
    return refuse(header.row, "csv: the header has no serial column");

  Collector c;
  for (size_t r = 1; r < scan.records.size(); ++r) {
    const CsvRecord& rec = scan.records[r];
    if (rec.fields.size() != columns.size()) {
      const size_t n = rec.fields.size();
      c.fail(rec.row, "csv: " + std::to_string(n) + (n == 1 ? " field" : " fields") + ", the header has " +
                          std::to_string(columns.size()));
      continue;
    }
    nlohmann::json obj = nlohmann::json::object();
    for (size_t k = 0; k < columns.size(); ++k) {
      if (rec.fields[k].empty()) continue;
      obj[columns[k]] = columns[k] == "groups" ? groupsFromCsv(rec.fields[k]) : nlohmann::json(rec.fields[k]);
    }
    c.add(rec.row, deviceFromJson(obj, ""));
  }
  return c.finish();
}

// "Text/CSV; charset=utf-8" -> "text/csv".
std::string mediaType(std::string_view contentType) {
  std::string t(trimSpaces(contentType.substr(0, contentType.find(';'))));
  for (char& ch : t) ch = static_cast<char>(asciiLower(static_cast<unsigned char>(ch)));
  return t;
}

}  // namespace

std::variant<std::vector<Device>, std::vector<ImportRowError>> parseDeviceImport(std::string_view body,
                                                                                  std::string_view contentType) {
  if (body.size() > kMaxImportBodyBytes)
    return refuse(0, "import: body is " + std::to_string(body.size()) + " bytes (at most " +
                         std::to_string(kMaxImportBodyBytes) + ")");
  const std::string type = mediaType(contentType);
  if (type == "application/json") return importJson(body);
  if (type == "text/csv") return importCsv(body);
  return refuse(0, "import: content type " + printable(type) + " (expected application/json or text/csv)");
}

}  // namespace orchard::catalog
