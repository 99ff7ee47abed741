// Status and top rendering: see status_view.h.
#include "server/ctl/status_view.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <set>

#include "server/ctl/progress.h"

namespace orchard::ctl {
namespace {

using nlohmann::json;

uint64_t u64(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return 0;
  const json& v = j[key];
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) return static_cast<uint64_t>(std::max<int64_t>(0, v.get<int64_t>()));
  if (v.is_number_float()) return static_cast<uint64_t>(std::max(0.0, v.get<double>()));
  return 0;
}

double real(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0;
  return j[key].get<double>();
}

std::string str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "";
  const json& v = j[key];
  return v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump();
}

// "Tue, 01 Dec 2026 10:00:00 GMT" (the API's HTTP date) in local time as
// Apple's tool writes it ("2026-12-01 11:00:00"); other text as it is.
std::string localDate(const std::string& httpDate) {
  std::tm tm{};
  const char* end = ::strptime(httpDate.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end) return httpDate;
  std::time_t t = ::timegm(&tm);
  std::tm local{};
  ::localtime_r(&t, &local);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &local);
  return buf;
}

std::string fillLine(const json& f) {
  const uint64_t received = u64(f, "received");
  std::string s = str(f, "url") + "  " + appleBytes(received);
  if (f.contains("length") && f["length"].is_number()) {
    const uint64_t length = u64(f, "length");
    s += " of " + appleBytes(length);
    if (length) s += " (" + percent(static_cast<double>(received) / static_cast<double>(length)) + ")";
  } else {
    s += " of an unknown length";
  }
  const uint64_t clients = u64(f, "clients");
  s += ", " + std::to_string(clients) + (clients == 1 ? " client" : " clients");
  return s;
}

// One parent or peer of Parents / Peers: "hub.example:80 up, 12 requests, 3.1 MB"
// or "... down (answered 503), 2 failures".
std::string nodeLine(const json& n) {
  std::string s = str(n, "id") + " " + str(n, "state");
  if (str(n, "state") == "down" && n.contains("last_error") && n["last_error"].is_string())
    s += " (" + n["last_error"].get<std::string>() + ")";
  const uint64_t requests = u64(n, "requests");
  s += ", " + std::to_string(requests) + (requests == 1 ? " request, " : " requests, ") + appleBytes(u64(n, "bytes"));
  const uint64_t failures = u64(n, "failures");
  if (failures) s += ", " + std::to_string(failures) + (failures == 1 ? " failure" : " failures");
  return s;
}

std::string value(const std::string& key, const json& v) {
  if (v.is_null()) return "(none)";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number() && isByteKey(key)) {
    const uint64_t n = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(std::max(0.0, v.get<double>()));
    if (n == 0 && (key == "CacheLimit" || key == "PackagesLimit")) return "unlimited";
    return appleBytes(n);
  }
  if (v.is_number() && key.size() > 5 && key.compare(key.size() - 5, 5, "Ratio") == 0) return percent(v.get<double>());
  if (v.is_string()) return key == "TotalBytesAreSince" ? localDate(v.get<std::string>()) : v.get<std::string>();
  if (v.is_array()) {
    if (v.empty()) return "(none)";
    std::string s = "(" + std::to_string(v.size()) + ")";
    for (const auto& item : v) {
      s += "\n        ";
      if (item.is_object() && item.contains("state") && item.contains("id")) s += nodeLine(item);
      else if (item.is_object() && item.contains("url")) s += fillLine(item);
      else s += item.is_string() ? item.get<std::string>() : item.dump();
    }
    return s;
  }
  return v.dump();
}

std::string perSecond(uint64_t now, uint64_t before, double seconds, bool bytes) {
  if (seconds <= 0 || now < before) return "-";
  const double rate = static_cast<double>(now - before) / seconds;
  if (bytes) {
    const auto n = static_cast<uint64_t>(rate + 0.5);
    return (n == 0 ? std::string("0 bytes") : appleBytes(n)) + "/s";  // "Zero KB/s" reads oddly for a rate
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f/s", rate);
  return buf;
}

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

}  // namespace

std::string appleBytes(uint64_t bytes) {
  if (bytes == 0) return "Zero KB";
  if (bytes < 1000) return std::to_string(bytes) + " bytes";
  static const char* const kUnits[] = {"KB", "MB", "GB", "TB", "PB"};
  static const int kDecimals[] = {0, 1, 2, 2, 2};
  double v = static_cast<double>(bytes) / 1000.0;
  int unit = 0;
  for (;;) {
    const double scale = std::pow(10.0, kDecimals[unit]);
    const double rounded = std::round(v * scale) / scale;
    if (rounded < 1000.0 || unit == 4) {
      v = rounded;
      break;
    }
    v /= 1000.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", kDecimals[unit], v);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s + " " + kUnits[unit];
}

std::string percent(double ratio) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", std::clamp(ratio, 0.0, 1.0) * 100.0);
  return buf;
}

bool isByteKey(const std::string& key) {
  static const std::set<std::string> kBytes = {"TotalBytesReturnedToClients", "TotalBytesStoredFromOrigin",
                                               "TotalBytesReturnedToChildren", "TotalBytesReturnedToPeers",
                                               "TotalBytesStoredFromParents", "TotalBytesStoredFromPeers",
                                               "TotalBytesFromPeers",
                                               "TotalBytesDropped", "CacheUsed", "CacheFree", "CacheLimit",
                                               "PackagesUsed", "PackagesLimit"};
  return kBytes.count(key) > 0;
}

std::string statusText(const json& status) {
  std::string out = "Content caching status:\n";
  // nlohmann::json (not ordered_json) keeps its keys sorted, as Apple's tool lists them.
  for (const auto& [key, v] : status.items()) out += "    " + key + ": " + value(key, v) + "\n";
  return out;
}

std::string progressBar(uint64_t done, std::optional<uint64_t> total, int width) {
  std::string bar = "[";
  if (!total) {
    bar.append(static_cast<size_t>(width), '?');
  } else {
    const uint64_t t = std::max<uint64_t>(*total, 1);
    const int filled = static_cast<int>(std::min<uint64_t>(done, t) * static_cast<uint64_t>(width) / t);
    bar.append(static_cast<size_t>(filled), '#').append(static_cast<size_t>(width - filled), '-');
  }
  return bar + "]";
}

std::string topText(const TopFrame& f) {
  const json& now = *f.now;
  const json empty = json::object();
  const json& prev = f.prev ? *f.prev : empty;
  const double dt = f.prev ? f.seconds : 0;
  std::string out;
  out += "orchard " + str(now, "Version") + " at " + f.url + "  up " + formatDuration(static_cast<int64_t>(u64(now, "UptimeSeconds"))) +
         ", config generation " + str(now, "ConfigGeneration") + "    " + f.clock + "\n";
  const bool active = now.contains("Active") && now["Active"].is_boolean() && now["Active"].get<bool>();
  out += pad("status", 12) + str(now, "CacheStatus") + (active ? ", active" : ", not active (draining)") +
         ", connections " + std::to_string(u64(now, "Connections")) + "\n";
  out += pad("requests", 12) + pad(perSecond(u64(now, "Requests"), u64(prev, "Requests"), dt, false), 12) +
         "total " + std::to_string(u64(now, "Requests")) + "   hit ratio " + percent(real(now, "HitRatio")) +
         ", by bytes " + percent(real(now, "ByteHitRatio")) + "\n";
  const uint64_t fromOrigin = u64(now, "TotalBytesStoredFromOrigin") + u64(now, "TotalBytesDropped");
  const uint64_t fromOriginBefore = u64(prev, "TotalBytesStoredFromOrigin") + u64(prev, "TotalBytesDropped");
  out += pad("to clients", 12) +
         pad(perSecond(u64(now, "TotalBytesReturnedToClients"), u64(prev, "TotalBytesReturnedToClients"), dt, true), 14) +
         "from origin " + perSecond(fromOrigin, fromOriginBefore, dt, true) + "\n";
  const uint64_t used = u64(now, "CacheUsed"), limit = u64(now, "CacheLimit");
  out += pad("cache", 12) + appleBytes(used) + " of " + (limit ? appleBytes(limit) : std::string("unlimited"));
  if (limit) out += " (" + percent(static_cast<double>(used) / static_cast<double>(limit)) + ")";
  const uint64_t objects = u64(now, "Objects");
  out += ", " + std::to_string(objects) + (objects == 1 ? " object\n" : " objects\n");
  const json fills = now.contains("Fills") && now["Fills"].is_array() ? now["Fills"] : json::array();
  out += "fills in flight: " + std::to_string(u64(now, "FillsInFlight")) + "\n";
  for (const auto& fl : fills) {
    const uint64_t received = u64(fl, "received");
    std::optional<uint64_t> length;
    if (fl.contains("length") && fl["length"].is_number()) length = u64(fl, "length");
    std::string line = "  " + progressBar(received, length, 24) + " ";
    line += length && *length ? pad(percent(static_cast<double>(received) / static_cast<double>(*length)), 6) : pad("?", 6);
    line += ' ';
    line += pad(appleBytes(received) + " of " + (length ? appleBytes(*length) : std::string("?")), 22);
    const uint64_t clients = u64(fl, "clients");
    line += ' ';
    line += pad(std::to_string(clients) + (clients == 1 ? " client" : " clients"), 11);
    line += ' ';
    std::string url = str(fl, "url");
    const size_t room = f.width > static_cast<int>(line.size()) + 10 ? static_cast<size_t>(f.width) - line.size() : 10;
    if (url.size() > room) url = url.substr(0, room - 3) + "...";
    out += line + url + "\n";
  }
  return out;
}

}  // namespace orchard::ctl
