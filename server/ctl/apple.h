// orchardctl's Apple-content commands (issue 14): Apple's catalog as the
// box sees it, mirror jobs, publishing a mirrored installer, Apple's OS
// release list, prewarm lists and importing a package from a URL.
//
//   apple products [--kind installer|update] [--search TEXT] [--limit N] [--refresh]
//                                    GET  /api/v1/apple/products
//   apple show ID                    GET  /api/v1/apple/products/{id}
//   apple mirror ID [--no-wait | --wait-window]
//                                    POST /api/v1/apple/products/{id}/mirror, then
//                                    GET  /api/v1/apple/mirrors/{job} every 500 ms
//   apple mirrors                    GET  /api/v1/apple/mirrors
//   apple publish ID                 POST /api/v1/apple/products/{id}/publish
//   apple os-versions [--platform P] GET  /api/v1/apple/os-versions?platform=P
//   prewarm put NAME [--url U]... [--product ID]... [--window HH:MM-HH:MM] [--interval 6h]
//                                    PUT  /api/v1/prewarm/{name}
//   prewarm list | show NAME | delete NAME
//                                    GET /api/v1/prewarm, GET|DELETE /api/v1/prewarm/{name}
//   import NAME VERSION URL [--filename F] [--sha256 HEX]
//                                    POST /api/v1/packages/{name}/{version}/from-url
//
// Following a mirror (the only command that loops): the job the POST
// answers is read again every kMirrorPollMs and drawn with Progress (the
// box's percent, rate, ETA and current file) until mirrorNext() says
// Done (exit 0, a summary on stdout), Failed (exit 1, the reason and each
// failed item on stderr) or Waiting (outside apple.mirror_window without
// --wait-window: why, on stdout, exit 0; the job stays queued on the box).
// A box that cannot be reached for kMirrorMissLimit reads in a row ends
// the watch with exit 3; the job itself goes on on the box.
//
// Rendering is in apple_view.h (pure, unit-tested); exit codes: commands.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/ctl/commands.h"

namespace orchard::ctl {

inline constexpr int64_t kMirrorPollMs = 500;
inline constexpr int kMirrorMissLimit = 20;        // reads in a row that may fail (10 s) before giving up
inline constexpr long kMirrorReadTimeoutMs = 30'000;  // each read of the job

struct AppleProductsArgs {
  std::string kind;    // "", "installer" or "update"
  std::string search;  // q: matched by the box against id, title, version, build
  std::optional<uint64_t> limit;
  bool refresh = false;  // read Apple's catalog again before answering
};
struct AppleMirrorArgs {
  std::string id;
  bool noWait = false;      // print the job as queued and exit
  bool waitWindow = false;  // keep following a job that waits for the mirror window
};
struct PrewarmPutArgs {
  std::string name;
  std::vector<std::string> urls;
  std::vector<std::string> products;
  std::string window;    // "" : the box's default
  std::string interval;  // "" : the box's default; else parseInterval()
};
struct ImportArgs {
  std::string name, version, url;
  std::string filename;  // "" : the box takes the URL's last segment
  std::string sha256;    // "" : not checked against an expected digest
};

int runAppleProducts(Context& ctx, const AppleProductsArgs& args);
int runAppleShow(Context& ctx, const std::string& id);
int runAppleMirror(Context& ctx, const AppleMirrorArgs& args);
int runAppleMirrors(Context& ctx);
int runApplePublish(Context& ctx, const std::string& id);
int runAppleOsVersions(Context& ctx, const std::string& platform);
int runPrewarmPut(Context& ctx, const PrewarmPutArgs& args);
int runPrewarmList(Context& ctx);
int runPrewarmShow(Context& ctx, const std::string& name);
int runPrewarmDelete(Context& ctx, const std::string& name);
int runImport(Context& ctx, const ImportArgs& args);

}  // namespace orchard::ctl
