// Request parsing (llhttp, strict, with header-collecting callbacks shaped
// like server/client_conn.cc) and routing (server/router.h route()) for the
// three request forms.
#include <benchmark/benchmark.h>
#include <llhttp.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/net.h"
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

struct Collected {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  bool lastWasValue = false;
  bool complete = false;
};

int onMessageBegin(llhttp_t* p) {
  auto* c = static_cast<Collected*>(p->data);
  c->target.clear();
  c->headers.clear();
  c->lastWasValue = false;
  c->complete = false;
  return 0;
}
int onUrl(llhttp_t* p, const char* at, size_t n) {
  static_cast<Collected*>(p->data)->target.append(at, n);
  return 0;
}
int onHeaderField(llhttp_t* p, const char* at, size_t n) {
  auto* c = static_cast<Collected*>(p->data);
  if (c->lastWasValue || c->headers.empty()) {
    c->headers.emplace_back(std::string(at, n), std::string());
    c->lastWasValue = false;
  } else {
    c->headers.back().first.append(at, n);
  }
  return 0;
}
int onHeaderValue(llhttp_t* p, const char* at, size_t n) {
  auto* c = static_cast<Collected*>(p->data);
  c->headers.back().second.append(at, n);
  c->lastWasValue = true;
  return 0;
}
int onHeadersComplete(llhttp_t* p) {
  auto* c = static_cast<Collected*>(p->data);
  c->method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  for (auto& kv : c->headers)
    while (!kv.second.empty() && (kv.second.back() == ' ' || kv.second.back() == '\t')) kv.second.pop_back();
  return 0;
}
int onMessageComplete(llhttp_t* p) {
  static_cast<Collected*>(p->data)->complete = true;
  return HPE_PAUSED;  // like ClientConn: one request at a time
}

void BM_ParseAppleGet(benchmark::State& state) {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_message_begin = onMessageBegin;
  settings.on_url = onUrl;
  settings.on_header_field = onHeaderField;
  settings.on_header_value = onHeaderValue;
  settings.on_headers_complete = onHeadersComplete;
  settings.on_message_complete = onMessageComplete;
  llhttp_t parser;
  Collected c;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  parser.data = &c;
  for (auto _ : state) {
    llhttp_errno_t err = llhttp_execute(&parser, kAppleGet.data(), kAppleGet.size());
    if (err != HPE_PAUSED || !c.complete || c.headers.size() != 10) {
      state.SkipWithError("parse failed");
      break;
    }
    llhttp_resume(&parser);
    benchmark::DoNotOptimize(c.headers.data());
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
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_message_begin = onMessageBegin;
  settings.on_url = onUrl;
  settings.on_header_field = onHeaderField;
  settings.on_header_value = onHeaderValue;
  settings.on_headers_complete = onHeadersComplete;
  settings.on_message_complete = onMessageComplete;
  llhttp_t parser;
  Collected c;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  parser.data = &c;
  const auto rc = routerConfig();
  for (auto _ : state) {
    llhttp_execute(&parser, kAppleGet.data(), kAppleGet.size());
    llhttp_resume(&parser);
    orchard::server::RouteInput in;
    in.method = c.method;
    in.target = c.target;
    for (const auto& [k, v] : c.headers)
      if (k.size() == 4 && (k[0] == 'H' || k[0] == 'h')) in.host = v;
    orchard::server::Route r = orchard::server::route(in, rc);
    benchmark::DoNotOptimize(r.keyText.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseAndRoute);

}  // namespace
