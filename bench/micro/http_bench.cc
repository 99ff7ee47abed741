// Request parsing (the HTTP/1 codec ClientConn uses, server/http/codec.h,
// over llhttp strict) and routing (server/proxy/router.h route()) for the
// three request forms.
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/net.h"
#include "server/http/codec.h"
#include "server/proxy/router.h"

namespace {

// A typical Apple client GET (softwareupdated / App Store), 10 headers.
constexpr std::string_view kAppleGet =
    "GET /content/downloads/41/62/042-69754-A_UWRGC6VGNS/ysg6hc8w1rdxtmd7lq7kdw1ue2ayzdmph9/"
    "InstallAssistant.pkg HTTP/1.1\r\n"
    "Host: swcdn.apple.com\r\n"
    "User-Agent: com.apple.appstored/1.0 iOS/17.4 model/iPhone15,2 hwp/t8120 build/21E219 (6; dt:282) AMS/1\r\n"
    "Accept: */*\r\n"
    "Accept-Language: en-GB,en;q=0.9\r\n"
    "Accept-Encoding: identity\r\n"
    "Connection: keep-alive\r\n"
    "Range: bytes=0-10485759\r\n"
    "X-Apple-Client-Versions: GameCenter/2.0\r\n"
    "If-Range: \"5f3c1b2a-2f5e1c0\"\r\n"
    "X-Playback-Session-Id: 6E2B0C4A-9C1F-4D39-8F2B-2E6A3B5D7C11\r\n"
    "\r\n";

// The real codec (server/http/codec.h) with a sink that moves the head out,
// as ClientConn does when it routes it.
struct Collected final : orchard::server::Http1Codec::Sink {
  orchard::server::Http1Codec* codec = nullptr;
  orchard::server::RequestHead head;
  bool complete = false;
  orchard::server::Http1Codec::Next onHead() override {
    head = std::move(codec->request());
    return orchard::server::Http1Codec::Next::Body;
  }
  bool onBody(const char*, size_t) override { return true; }
  bool onMessageEnd() override {
    complete = true;
    return true;  // the codec pauses: one request at a time, like ClientConn
  }
};

constexpr orchard::server::Http1Codec::Limits kLimits{64 * 1024, 256};

void BM_ParseAppleGet(benchmark::State& state) {
  Collected c;
  orchard::server::Http1Codec codec(orchard::server::Http1Codec::Type::Request, &c, kLimits);
  c.codec = &codec;
  for (auto _ : state) {
    c.complete = false;
    auto r = codec.execute(kAppleGet.data(), kAppleGet.size());
    if (r.status != orchard::server::Http1Codec::Status::Message || !c.complete ||
        c.head.headers.size() != 10) {
      state.SkipWithError("parse failed");
      break;
    }
    codec.resume();
    benchmark::DoNotOptimize(c.head.headers.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kAppleGet.size()));
}
BENCHMARK(BM_ParseAppleGet);

const orchard::config::HostMatcher& appleHosts() {
  static const orchard::config::HostMatcher m(std::vector<std::string>{
      "swcdn.apple.com", "swdist.apple.com", "swdownload.apple.com", "swscan.apple.com", "appldnld.apple.com",
      "oscdn.apple.com", "updates.cdn-apple.com", "updates-http.cdn-apple.com", "*.cdn-apple.com",
      "osxapps.itunes.apple.com", "iosapps.itunes.apple.com", "mesu.apple.com", "audiocontentdownload.apple.com",
      "devimages-cdn.apple.com", "devstreaming-cdn.apple.com", "playgrounds-cdn.apple.com", "skl.apple.com",
      "*.aaplimg.com"});
  return m;
}

orchard::server::RouterConfig routerConfig() {
  orchard::server::RouterConfig rc;
  rc.allowHost = [](std::string_view h) { return appleHosts().matches(h); };
  rc.ignoreQuery = {"token"};
  return rc;
}

// arg 0: intercept (origin form + Host), 1: forward proxy (absolute URI),
// 2: content-cache form (?source=host).
void BM_Route(benchmark::State& state) {
  const auto rc = routerConfig();
  orchard::server::RouteInput in;
  in.method = "GET";
  switch (state.range(0)) {
    case 0:
      in.target = "/content/downloads/41/62/042-69754-A_UWRGC6VGNS/ysg6hc8w1rdxtmd7lq7kdw1ue2ayzdmph9/InstallAssistant.pkg";
      in.host = "swcdn.apple.com";
      state.SetLabel("intercept");
      break;
    case 1:
      in.target =
          "http://swcdn.apple.com/content/downloads/41/62/042-69754-A_UWRGC6VGNS/ysg6hc8w1rdxtmd7lq7kdw1ue2ayzdmph9/"
          "InstallAssistant.pkg";
      in.host = "swcdn.apple.com";
      state.SetLabel("forward");
      break;
    default:
      in.target =
          "/content/downloads/41/62/042-69754-A_UWRGC6VGNS/ysg6hc8w1rdxtmd7lq7kdw1ue2ayzdmph9/InstallAssistant.pkg"
          "?source=swcdn.apple.com&sourceScheme=http";
      in.host = "10.0.0.5:8080";
      state.SetLabel("content-cache");
      break;
  }
  for (auto _ : state) {
    orchard::server::Route r = orchard::server::route(in, rc);
    if (r.kind != orchard::server::Route::Kind::Proxy) {
      state.SkipWithError(("route did not proxy: " + r.reason).c_str());
      break;
    }
    benchmark::DoNotOptimize(r.keyText.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Route)->Arg(0)->Arg(1)->Arg(2);

// Parse + route together: the per-request head cost of the hit path.
void BM_ParseAndRoute(benchmark::State& state) {
  Collected c;
  orchard::server::Http1Codec codec(orchard::server::Http1Codec::Type::Request, &c, kLimits);
  c.codec = &codec;
  const auto rc = routerConfig();
  for (auto _ : state) {
    codec.execute(kAppleGet.data(), kAppleGet.size());
    codec.resume();
    const orchard::server::RequestHead& head = c.head;
    orchard::server::RouteInput in;
    in.method = head.method;
    in.target = head.target;
    if (auto h = head.header("Host")) in.host = *h;
    orchard::server::Route r = orchard::server::route(in, rc);
    benchmark::DoNotOptimize(r.keyText.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseAndRoute);

}  // namespace
