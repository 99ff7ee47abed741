// DDM declarations as JSON (see declarations.h). The hard parts are the two
// promises a device relies on: the Identifier never changes for a package
// (an injective escape of its name, not a lossy slug), and the ServerToken
// changes exactly when the Payload does (a hash of the payload's canonical
// form: nlohmann objects are std::map-backed, so dump() sorts keys and is
// byte-stable). localDateTime avoids the host's time zone and libc's
// gmtime: std::chrono's calendar types are pure.
#include "catalog/declarations.h"

#include <cassert>
#include <chrono>
#include <cstdio>

#include "catalog/digest.h"
#include "common/ascii.h"

namespace orchard::catalog {

namespace {

nlohmann::json declaration(std::string_view type, std::string identifier, nlohmann::json payload) {
  nlohmann::json d = nlohmann::json::object();
  d["Type"] = std::string(type);
  d["Identifier"] = std::move(identifier);
  d["ServerToken"] = serverToken(payload);
  d["Payload"] = std::move(payload);
  return d;
}

}  // namespace

std::string packageDeclarationIdentifier(std::string_view packageName) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out(kPackageIdentifierPrefix);
  for (char ch : packageName) {
    auto c = static_cast<unsigned char>(ch);
    bool safe = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '-';
    if (safe) {
      out.push_back(ch);
    } else {
      out.push_back('_');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string serverToken(const nlohmann::json& payload) { return sha256Hex(payload.dump()); }

nlohmann::json packageDeclaration(std::string_view packageName, std::string_view manifestUrl,
                                  std::string_view install) {
  bool required = asciiIEquals(install, "required");
  assert(required || asciiIEquals(install, "optional"));
  nlohmann::json payload = {
      {"ManifestURL", std::string(manifestUrl)},
      {"InstallBehavior", {{"Install", required ? "Required" : "Optional"}}},
  };
  return declaration(kPackageDeclarationType, packageDeclarationIdentifier(packageName),
                     std::move(payload));
}

nlohmann::json softwareUpdateDeclaration(std::string_view targetOsVersion,
                                         const std::optional<std::string>& targetBuild,
                                         const std::optional<std::string>& localDeadline) {
  nlohmann::json payload = {{"TargetOSVersion", std::string(targetOsVersion)}};
  if (targetBuild) payload["TargetBuildVersion"] = *targetBuild;
  if (localDeadline) payload["TargetLocalDateTime"] = *localDeadline;
  return declaration(kSoftwareUpdateDeclarationType, std::string(kSoftwareUpdateIdentifier),
                     std::move(payload));
}

std::string localDateTime(int64_t unixSecs, int32_t utcOffsetSecs) {
  using namespace std::chrono;
  sys_seconds t{seconds{unixSecs + utcOffsetSecs}};
  sys_days day = floor<days>(t);
  year_month_day ymd{day};
  hh_mm_ss hms{t - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

}  // namespace orchard::catalog
