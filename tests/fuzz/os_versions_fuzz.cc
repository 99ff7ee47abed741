// Fuzz target: catalog/apple/os_versions's parseOsVersionFeed, the JSON
// Apple's OS-version feed (gdmf.apple.com/v2/pmv) sends over the WAN.
//
// Input: the feed's bytes, as is.
//
// Invariants beyond "no crash" (and no exception escaping):
//   - an accepted text is a JSON object to nlohmann's own parser too, and a
//     text nlohmann refuses is refused;
//   - every kept release has a set and platform of printable ASCII, a
//     dotted numeric version, a Build of letters and digits, device ids of
//     printable ASCII without spaces, all within their byte bounds, and the
//     counts stay within the limits (checked again with tiny limits);
//   - kept + skipped entries are exactly the elements of the feed's
//     set -> platform arrays, and each kept one is such an element with
//     that ProductVersion (the SAX walk agrees with the document; checked
//     when no object repeats a key, since the document keeps only the last);
//   - knows() and knowsBuild() hold for every kept public or MDM release;
//   - JSON whitespace around the text never changes the verdict or the result.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "catalog/apple/os_versions.h"
#include "catalog/device.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace orchard;
using catalog::apple::OsFeedLimits;
using catalog::apple::OsVersionFeed;

bool printable(const std::string& s, size_t max, bool spaces) {
  if (s.empty() || s.size() > max) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e || (!spaces && c == ' ')) return false;
  return true;
}

void checkFeed(const OsVersionFeed& f, const OsFeedLimits& limits) {
  FUZZ_CHECK(f.releases.size() <= limits.maxReleases, "%zu releases", f.releases.size());
  size_t devices = 0;
  for (const auto& r : f.releases) {
    FUZZ_CHECK(printable(r.set, 64, false), "set %s", fuzz::escape(r.set).c_str());
    FUZZ_CHECK(printable(r.platform, 64, false), "platform %s", fuzz::escape(r.platform).c_str());
    FUZZ_CHECK(!r.version.empty() && !catalog::osVersionProblem(r.version), "version %s",
               fuzz::escape(r.version).c_str());
    FUZZ_CHECK(r.build.size() <= 32 && r.build.find_first_not_of(
                                           "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") ==
                                           std::string::npos,
               "build %s", fuzz::escape(r.build).c_str());
    FUZZ_CHECK(r.postingDate.empty() || printable(r.postingDate, 32, false), "posting date");
    FUZZ_CHECK(r.expirationDate.empty() || printable(r.expirationDate, 32, false), "expiration date");
    FUZZ_CHECK(r.versionExtra.empty() || printable(r.versionExtra, 16, true), "version extra");
    FUZZ_CHECK(r.supportedDevices.size() <= limits.maxDevicesPerRelease, "%zu devices", r.supportedDevices.size());
    for (const auto& d : r.supportedDevices) FUZZ_CHECK(printable(d, 64, false), "device %s", fuzz::escape(d).c_str());
    devices += r.supportedDevices.size();
    if (r.set == "PublicAssetSets" || r.set == "AssetSets") {
      FUZZ_CHECK(f.knows(r.platform, r.version), "does not know its own %s %s", r.platform.c_str(), r.version.c_str());
      FUZZ_CHECK(f.knowsBuild(r.platform, r.version, r.build), "does not know its own build %s", r.build.c_str());
    }
  }
  FUZZ_CHECK(devices <= limits.maxDevices, "%zu devices in all", devices);
  FUZZ_CHECK(f.macReleases() <= f.releases.size(), "macReleases %zu", f.macReleases());
}

// The elements of set -> platform arrays the parser looks at, by the same
// naming rules, and whether `f`'s releases are among them.
void checkAgainstDocument(const OsVersionFeed& f, const nlohmann::json& doc) {
  size_t elements = 0;
  for (const auto& [set, platforms] : doc.items()) {
    if (!platforms.is_object() || !printable(set, 64, false)) continue;
    for (const auto& [platform, list] : platforms.items())
      if (list.is_array() && printable(platform, 64, false)) elements += list.size();
  }
  FUZZ_CHECK(f.releases.size() + f.skipped == elements, "kept %zu + skipped %zu != %zu elements", f.releases.size(),
             f.skipped, elements);
  for (const auto& r : f.releases) {
    bool found = false;
    const auto set = doc.find(r.set);
    if (set != doc.end() && set->is_object()) {
      const auto list = set->find(r.platform);
      if (list != set->end() && list->is_array())
        for (const auto& e : *list) {
          const auto v = e.is_object() ? e.find("ProductVersion") : e.end();
          if (e.is_object() && v != e.end() && v->is_string() && v->get<std::string>() == r.version) found = true;
        }
    }
    FUZZ_CHECK(found, "release %s %s %s is not in the document", r.set.c_str(), r.platform.c_str(), r.version.c_str());
  }
}

// Whether some object of the (valid) text names a key twice.
class DuplicateKeys final : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool found = false;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (!keys_.back().insert(k).second) found = true;
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  std::vector<std::set<std::string>> keys_;
};

bool duplicateKeys(std::string_view text) {
  DuplicateKeys sax;
  nlohmann::json::sax_parse(text.begin(), text.end(), &sax);
  return sax.found;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = fuzz::asView(data, size);
  auto feed = catalog::apple::parseOsVersionFeed(text);
  const nlohmann::json doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) FUZZ_CHECK(!feed.ok(), "accepted a text nlohmann refuses");
  if (feed.ok()) {
    FUZZ_CHECK(doc.is_object(), "accepted a text that is not a JSON object");
    checkFeed(*feed, OsFeedLimits{});
    if (!duplicateKeys(text)) checkAgainstDocument(*feed, doc);
  } else {
    FUZZ_CHECK(feed.error().context && *feed.error().context, "an error without context");
  }

  OsFeedLimits tiny;
  tiny.maxReleases = 3;
  tiny.maxDevicesPerRelease = 2;
  tiny.maxDevices = 4;
  tiny.maxDepth = 6;
  auto small = catalog::apple::parseOsVersionFeed(text, tiny);
  if (small.ok()) {
    checkFeed(*small, tiny);
    FUZZ_CHECK(feed.ok(), "accepted with tiny limits, refused with the defaults");
  }

  std::string padded = " \n";
  padded.append(text);
  padded += "\t\r\n";
  auto again = catalog::apple::parseOsVersionFeed(padded);
  FUZZ_CHECK(again.ok() == feed.ok(), "whitespace around the text changed its verdict");
  if (feed.ok()) {
    FUZZ_CHECK(again->releases.size() == feed->releases.size() && again->skipped == feed->skipped,
               "whitespace around the text changed what it says");
  }
  return 0;
}
