// The OS-version feed's parser (os_versions.h): one SAX pass of nlohmann's
// parser over hostile bytes. The handler knows where it is by depth:
//   1  the root object        key = a set name
//   2  a set object           key = a platform
//   3  a platform's array     each element = one release object
//   4  a release object       key = a field
//   5  SupportedDevices       each element = a device id
// A value of no interest (an unknown field, a set that is not an object)
// is walked over without being kept ("skipping" until its container
// closes); a release whose known field has the wrong type or value is
// dropped at its end and counted in `skipped`. Every kept thing is counted
// against OsFeedLimits as it arrives, and the pass stops at the first
// bound passed, so memory never follows what the input declares.
#include "catalog/apple/os_versions.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "catalog/device.h"
#include "catalog/version.h"

namespace orchard::catalog::apple {
namespace {

using Json = nlohmann::json;

bool printableAscii(std::string_view s, size_t maxBytes, bool spaces) {
  if (s.empty() || s.size() > maxBytes) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e || (!spaces && c == ' ')) return false;
  return true;
}

bool alnum(std::string_view s, size_t maxBytes) {
  if (s.empty() || s.size() > maxBytes) return false;
  for (unsigned char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
  return true;
}

constexpr size_t kMaxNameBytes = 64;    // a set or platform name
constexpr size_t kMaxDeviceBytes = 64;  // "Mac-1E7E29AD0135F9BC", "J132AP", "iPhone15,2"
constexpr size_t kMaxDateBytes = 32;    // "2024-11-19"
constexpr size_t kMaxBuildBytes = 32;   // "24B91", "20F770750d"
constexpr size_t kMaxExtraBytes = 16;   // "(a)"

enum class Field { None, Version, Build, Posting, Expiration, Devices, Extra };

Field fieldOf(std::string_view k) {
  if (k == "ProductVersion") return Field::Version;
  if (k == "Build") return Field::Build;
  if (k == "PostingDate") return Field::Posting;
  if (k == "ExpirationDate") return Field::Expiration;
  if (k == "SupportedDevices") return Field::Devices;
  if (k == "ProductVersionExtra") return Field::Extra;
  return Field::None;
}

class FeedSax final : public nlohmann::json_sax<Json> {
 public:
  explicit FeedSax(const OsFeedLimits& limits) : limits_(limits) {}

  OsVersionFeed feed;
  const char* why = nullptr;  // set when the pass was stopped on purpose

  bool null() override { return scalar(Kind::Null, nullptr); }
  bool boolean(bool) override { return scalar(Kind::Other, nullptr); }
  bool number_integer(number_integer_t) override { return scalar(Kind::Other, nullptr); }
  bool number_unsigned(number_unsigned_t) override { return scalar(Kind::Other, nullptr); }
  bool number_float(number_float_t, const string_t&) override { return scalar(Kind::Other, nullptr); }
  bool binary(binary_t&) override { return scalar(Kind::Other, nullptr); }
  bool string(string_t& s) override { return scalar(Kind::String, &s); }

  bool key(string_t& k) override {
    if (skipFrom_) return true;
    if (depth_ == 1 || depth_ == 2) name_ = k;
    else if (depth_ == 4) field_ = fieldOf(k);
    return true;
  }

  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    if (!why) why = "os feed: not valid JSON";
    return false;
  }

 private:
  enum class Kind { Null, String, Other };

  bool stop(const char* reason) {
    why = reason;
    return false;
  }

  // A container opens at depth_ + 1.
  bool open(bool object) {
    if (++depth_ > limits_.maxDepth) return stop("os feed: nested too deep");
    if (skipFrom_) return true;
    switch (depth_) {
      case 1:
        if (!object) return stop("os feed: not a JSON object");
        return true;
      case 2:  // a set
        if (object && printableAscii(name_, kMaxNameBytes, false)) set_ = name_;
        else skip();
        return true;
      case 3:  // a platform's releases
        if (!object && printableAscii(name_, kMaxNameBytes, false)) platform_ = name_;
        else skip();
        return true;
      case 4:  // a release
        if (!object) {
          ++feed.skipped;
          skip();
          return true;
        }
        if (feed.releases.size() >= limits_.maxReleases) return stop("os feed: more releases than the limit");
        cur_ = OsRelease{};
        cur_.set = set_;
        cur_.platform = platform_;
        bad_ = false;
        field_ = Field::None;
        return true;
      case 5:  // a field's container value
        if (field_ == Field::Devices && !object) return true;
        if (field_ != Field::None) bad_ = true;
        skip();
        return true;
      default:  // inside SupportedDevices: an array or object is no device id
        bad_ = true;
        skip();
        return true;
    }
  }

  bool close() {
    const int closing = depth_--;
    if (skipFrom_) {
      if (closing == skipFrom_) skipFrom_ = 0;
      return true;
    }
    if (closing == 4) {
      if (bad_ || cur_.version.empty()) {
        ++feed.skipped;
      } else {
        devices_ += cur_.supportedDevices.size();
        feed.releases.push_back(std::move(cur_));
      }
    } else if (closing == 5) {
      field_ = Field::None;
    }
    return true;
  }

  void skip() { skipFrom_ = depth_; }

  bool scalar(Kind kind, string_t* s) {
    if (skipFrom_) return true;
    if (depth_ == 0) return stop("os feed: not a JSON object");
    if (depth_ == 3) {  // a release that is not an object
      ++feed.skipped;
      return true;
    }
    if (depth_ == 5) {  // a device id
      if (kind != Kind::String || !printableAscii(*s, kMaxDeviceBytes, false)) {
        bad_ = true;
        return true;
      }
      if (cur_.supportedDevices.size() >= limits_.maxDevicesPerRelease)
        return stop("os feed: a release lists more supported devices than the limit");
      if (devices_ + cur_.supportedDevices.size() >= limits_.maxDevices)
        return stop("os feed: more supported devices than the limit");
      cur_.supportedDevices.push_back(std::move(*s));
      return true;
    }
    if (depth_ != 4 || field_ == Field::None) return true;  // a scalar set, platform or unknown field
    const Field f = field_;
    field_ = Field::None;
    if (kind == Kind::Null && f != Field::Version) return true;  // an optional field given as null
    if (kind != Kind::String) {
      bad_ = true;
      return true;
    }
    switch (f) {
      case Field::Version:
        if (osVersionProblem(*s) || s->empty()) bad_ = true;
        else cur_.version = std::move(*s);
        break;
      case Field::Build:
        if (!alnum(*s, kMaxBuildBytes)) bad_ = true;
        else cur_.build = std::move(*s);
        break;
      case Field::Posting:
      case Field::Expiration:
        if (!printableAscii(*s, kMaxDateBytes, false)) bad_ = true;
        else (f == Field::Posting ? cur_.postingDate : cur_.expirationDate) = std::move(*s);
        break;
      case Field::Extra:
        if (!printableAscii(*s, kMaxExtraBytes, true)) bad_ = true;
        else cur_.versionExtra = std::move(*s);
        break;
      case Field::Devices:  // a string where the array belongs
        bad_ = true;
        break;
      case Field::None:
        break;
    }
    return true;
  }

  const OsFeedLimits& limits_;
  int depth_ = 0;
  int skipFrom_ = 0;      // > 0: walking over the container opened at this depth
  std::string name_;      // the last key at depth 1 or 2
  std::string set_, platform_;
  OsRelease cur_;         // the release at depth 4
  bool bad_ = false;      // cur_ has a field of the wrong type or value
  Field field_ = Field::None;  // the release field whose value comes next
  size_t devices_ = 0;    // supported devices of the releases kept
};

bool installable(const OsRelease& r, std::string_view platform) {
  return r.platform == platform && (r.set == kPublicAssetSets || r.set == kMdmAssetSets);
}

}  // namespace

size_t OsVersionFeed::macReleases() const {
  return static_cast<size_t>(
      std::count_if(releases.begin(), releases.end(), [](const OsRelease& r) { return installable(r, kMacPlatform); }));
}

bool OsVersionFeed::knows(std::string_view platform, std::string_view version) const {
  return std::any_of(releases.begin(), releases.end(), [&](const OsRelease& r) {
    return installable(r, platform) && compareVersions(r.version, version) == 0;
  });
}

bool OsVersionFeed::knowsBuild(std::string_view platform, std::string_view version, std::string_view build) const {
  bool listed = false, builds = false;
  for (const OsRelease& r : releases) {
    if (!installable(r, platform) || compareVersions(r.version, version) != 0) continue;
    listed = true;
    if (build.empty() || r.build == build) return true;
    if (!r.build.empty()) builds = true;
  }
  return listed && !builds;
}

std::vector<std::string> OsVersionFeed::versions(std::string_view platform) const {
  std::vector<std::string> out;
  for (const OsRelease& r : releases)
    if (installable(r, platform) && std::find(out.begin(), out.end(), r.version) == out.end())
      out.push_back(r.version);
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) { return versionLess(b, a); });
  return out;
}

Result<OsVersionFeed> parseOsVersionFeed(std::string_view json, const OsFeedLimits& limits) {
  if (json.size() > limits.maxBytes) return Error{Errc::NoSpace, 0, "os feed: larger than the limit"};
  FeedSax sax(limits);
  const bool done = Json::sax_parse(json.begin(), json.end(), &sax, nlohmann::detail::input_format_t::json,
                                    /*strict=*/true, /*ignore_comments=*/false);
  if (!done) return Error{Errc::Invalid, 0, sax.why ? sax.why : "os feed: not valid JSON"};
  return std::move(sax.feed);
}

}  // namespace orchard::catalog::apple
