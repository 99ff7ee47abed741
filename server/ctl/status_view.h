// How `orchardctl status` and `orchardctl top` show the box's status
// document (GET /api/v1/status). Pure: JSON and numbers in, text out, so
// the unit tests pin every format (tests/unit/server/ctl/status_view_test.cc).
//
// `status` prints what Apple's `AssetCacheManagerUtil status` prints:
//
//   Content caching status:
//       Activated: true
//       Active: true
//       CacheFree: 110.83 GB
//       ...
//       PrivateAddresses: (1)
//           10.0.1.102
//
// keys in alphabetical order, sizes in decimal units as Apple writes them
// ("Zero KB", "512 bytes", "7.3 MB", "61.6 GB", "1.72 GB"), lists as "(N)"
// with one item per line below ("(none)" when empty), ratios as percent.
// `top` draws a frame from two successive documents and the time between
// them: request and byte rates are differences per second.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace orchard::ctl {

// Apple's byte counts: "Zero KB" for 0, "N bytes" below 1 kB, else kB
// (no decimals), MB (one), GB and TB (two, trailing zeros dropped), in
// powers of 1000.
std::string appleBytes(uint64_t bytes);
// A ratio 0..1 as "87.5%".
std::string percent(double ratio);
// Whether a status key holds a byte count (shown with appleBytes()).
bool isByteKey(const std::string& key);

// The whole `orchardctl status` text, ending in a newline.
std::string statusText(const nlohmann::json& status);

// One progress bar: "[#########---------------]" for done of total
// (`width` cells inside the brackets); without a total, a bar of '?'.
std::string progressBar(uint64_t done, std::optional<uint64_t> total, int width);

struct TopFrame {
  const nlohmann::json* now = nullptr;   // the latest status document
  const nlohmann::json* prev = nullptr;  // the one before it (null on the first frame: no rates yet)
  double seconds = 0;                    // between the two reads
  std::string url;                       // the box's base URL
  std::string clock;                     // "14:03:22", the local time of the read
  int width = 100;                       // columns available (the URL of a fill is cut to fit)
};
// One `orchardctl top` frame, lines ending in newlines.
std::string topText(const TopFrame& f);

}  // namespace orchard::ctl
