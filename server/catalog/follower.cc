// Follower (see follower.h): the feed and bytes loops of a branch, and the
// libcurl requests to the hub. Hard parts: the feed position is only ever
// moved by the batch that applies a change (Catalog::applyReplicated), so
// nothing here keeps a position of its own that a crash could lose; a page
// is applied change by change and a failure stops the page there (the next
// poll asks again from the last one written).
#include "server/catalog/follower.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "catalog/change_feed.h"
#include "catalog/fleet_store.h"
#include "common/log.h"
#include "server/apple/box_fetch.h"
#include "server/catalog/import.h"
#include "server/context.h"
#include "server/http/curl_request.h"

namespace orchard::server {

namespace {

int64_t steadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---- one request to the hub ----

struct HubAnswer {
  int status = 0;
  std::string body;
  std::string error;  // transport failure, in words
};

HubAnswer hubRequest(const config::Config& cfg, const std::string& method, const std::string& url,
                     const std::string& token, const std::string& body, const std::string& ifNoneMatch,
                     int64_t timeoutMs, const std::atomic<bool>* stop) {
  CurlRequest req;
  req.method = method;
  req.url = url;
  req.headers.push_back("Authorization: Bearer " + token);
  if (!body.empty()) req.headers.push_back("Content-Type: application/json");
  if (!ifNoneMatch.empty()) req.headers.push_back("If-None-Match: " + ifNoneMatch);
  req.body = body;
  req.caFile = cfg.upstreamCaFile;
  req.caFileKey = "upstream.ca_file";
  req.resolve = cfg.upstreamResolve;
  req.connectTimeoutMs = cfg.connectTimeoutMs > 0 ? cfg.connectTimeoutMs : 10'000;
  req.timeoutMs = timeoutMs;
  req.maxBytes = catalog::kMaxPageBytes;
  req.userAgent = "orchardd (catalog follower)";
  req.stop = stop;
  CurlAnswer a = curlRequest(req);
  HubAnswer out;
  out.status = a.status;
  out.body = std::move(a.body);
  if (a.tooBig) out.error = "the hub's answer is larger than " + std::to_string(catalog::kMaxPageBytes) + " bytes";
  else out.error = std::move(a.error);
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string escape(const std::string& s) {
  char* e = curl_easy_escape(nullptr, s.c_str(), static_cast<int>(s.size()));
  std::string out = e ? e : "";
  curl_free(e);
  return out;
}

// "detail" of the hub's JSON error, else the start of its body.
std::string reasonOf(const HubAnswer& a) {
  auto j = nlohmann::json::parse(a.body, nullptr, false);
  std::string why = j.is_object() && j.contains("detail") && j["detail"].is_string() ? j["detail"].get<std::string>()
                                                                                     : a.body.substr(0, 200);
  why.erase(std::remove_if(why.begin(), why.end(), [](char c) { return c < 0x20 || c > 0x7e; }), why.end());
  return "the hub answered " + std::to_string(a.status) + (why.empty() ? "" : ": " + why);
}

}  // namespace

Follower::Follower(ServerContext* ctx) : ctx_(ctx) {
  if (auto node = config::CacheNode::parse(ctx->startConfig.catalogFollow); node)
    hub_ = std::string(node->tls ? "https://" : "http://") + node->id();
  else
    hub_ = ctx->startConfig.catalogFollow;  // refused by the config check before we get here
  state_.hub = hub_;
  if (auto st = ctx->catalog->followState()) state_.applied = st->hub == hub_ ? st->applied : 0;
}

Follower::~Follower() { stop(); }

void Follower::start() {
  if (feed_.joinable()) return;
  OLOG_INFO("catalog: following the catalog of %s (from change %llu)", hub_.c_str(),
            static_cast<unsigned long long>(state_.applied));
  feed_ = std::thread([this] { feedLoop(); });
  bytes_ = std::thread([this] { bytesLoop(); });
}

void Follower::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  feedCv_.notify_all();
  bytesCv_.notify_all();
  if (feed_.joinable()) feed_.join();
  if (bytes_.joinable()) bytes_.join();
}

Follower::State Follower::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

config::Config Follower::config() const {
  if (ctx_->control)
    if (auto snap = ctx_->control->snapshot()) return snap->config;
  return ctx_->startConfig;
}

std::string Follower::token(const config::Config& cfg) const {
  if (!cfg.catalogFollowTokenFile.empty()) {
    std::ifstream f(cfg.catalogFollowTokenFile);
    std::stringstream ss;
    ss << f.rdbuf();
    return trim(ss.str().substr(0, 4096));
  }
  return cfg.catalogFollowToken;
}

void Follower::fail(const std::string& why) {
  std::lock_guard lock(mu_);
  if (state_.lastError != why) OLOG_WARN("catalog follow %s: %s", hub_.c_str(), why.c_str());
  state_.lastError = why;
  state_.lastErrorTime = ctx_->clock->nowSeconds();
}

bool Follower::pause(int64_t ms, bool bytes) {
  std::unique_lock lock(mu_);
  auto& cv = bytes ? bytesCv_ : feedCv_;
  cv.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping_.load() || (bytes && bytesWake_); });
  if (bytes) bytesWake_ = false;
  return !stopping_;
}

void Follower::feedLoop() {
  int64_t backoff = 1000;
  while (!stopping_) {
    if (pollOnce()) {
      backoff = 1000;
      continue;
    }
    if (!pause(backoff, false)) break;
    backoff = std::min<int64_t>(backoff * 2, 30'000);
  }
}

bool Follower::pollOnce() {
  const config::Config cfg = config();
  uint64_t since = 0;
  if (auto st = ctx_->catalog->followState(); st && st->hub == hub_) since = st->applied;
  const int64_t waitS = std::max<int64_t>(1, std::min<int64_t>(cfg.catalogFollowPollMs / 1000, 60));
  const std::string url = hub_ + "/api/v1/catalog/changes?since=" + std::to_string(since) +
                          "&limit=" + std::to_string(kPageLimit) + "&wait=" + std::to_string(waitS);
  HubAnswer a = hubRequest(cfg, "GET", url, token(cfg), "", "\"changes-" + std::to_string(since) + "\"",
                           (waitS + 30) * 1000, &stopping_);
  if (stopping_) return false;
  if (!a.error.empty()) {
    fail("cannot reach the hub: " + a.error);
    return false;
  }
  const int64_t now = ctx_->clock->nowSeconds();
  if (a.status == 304) {
    std::lock_guard lock(mu_);
    state_.lastContact = now;
    state_.lastError.clear();
    state_.hubLast = since;
    state_.applied = since;
    if (!state_.caughtUpSince) state_.caughtUpSince = now;
  } else if (a.status != 200) {
    fail(reasonOf(a));
    return false;
  } else {
    auto parsed = catalog::parseChangePage(a.body, since);
    if (auto* why = std::get_if<std::string>(&parsed)) {
      fail("the hub's change feed: " + *why);
      return false;
    }
    auto& page = std::get<catalog::ChangePage>(parsed);
    if (page.last < since) {
      // The hub's feed went back behind us (a new database): from 0 again.
      OLOG_WARN("catalog follow %s: the hub's feed ends at %llu, before the %llu applied here: taking it from the start",
                hub_.c_str(), static_cast<unsigned long long>(page.last), static_cast<unsigned long long>(since));
      if (auto p = ctx_->catalog->setFollowState({hub_, 0})) {
        fail(p->detail);
        return false;
      }
      return true;
    }
    size_t applied = 0;
    for (const catalog::Change& c : page.changes) {
      if (stopping_) break;
      if (auto p = ctx_->fleet->applyReplicated(c, hub_, now)) {
        fail("applying the hub's change " + std::to_string(c.seq) + ": " + p->detail);
        return false;
      }
      ++applied;
      std::lock_guard lock(mu_);
      state_.applied = c.seq;
      state_.appliedTime = c.time;
      ++state_.changesApplied;
    }
    {
      std::lock_guard lock(mu_);
      state_.lastContact = now;
      state_.lastError.clear();
      state_.hubLast = page.last;
      if (state_.applied >= page.last) {
        if (!state_.caughtUpSince) state_.caughtUpSince = now;
      } else {
        state_.caughtUpSince = 0;
      }
      if (applied) bytesWake_ = true;
    }
    if (applied) bytesCv_.notify_all();
  }
  if (steadyMs() - lastReportMs_ >= kSiteReportMs) reportSite(cfg);
  return true;
}

void Follower::reportSite(const config::Config& cfg) {
  lastReportMs_ = steadyMs();
  std::string site = cfg.catalogSite;
  if (site.empty()) {
    char host[256] = "";
    if (::gethostname(host, sizeof host - 1) == 0) site = host;
    if (site.empty()) site = "branch";
  }
  const State st = state();
  nlohmann::json versions = nlohmann::json::array();
  for (const std::string& name : ctx_->catalog->names()) {
    for (const auto& v : ctx_->catalog->versions(name)) {
      catalog::DeliveryCount total;
      for (const auto& c : ctx_->catalog->deliveries().of(v->name, v->version)) {
        total.started += c.started;
        total.completed += c.completed;
        total.bytes += c.bytes;
      }
      versions.push_back({{"name", v->name},
                          {"version", v->version},
                          {"downloads", ctx_->catalog->downloads(v->name, v->version)},
                          {"started", total.started},
                          {"completed", total.completed},
                          {"bytes", total.bytes}});
      if (versions.size() >= 5000) break;
    }
  }
  nlohmann::json body{{"site", site},
                      {"applied", st.applied},
                      {"hub_last", st.hubLast},
                      {"waiting", ctx_->catalog->pendingCount()},
                      {"devices", ctx_->fleet->deviceCount()},
                      {"versions", std::move(versions)}};
  HubAnswer a = hubRequest(cfg, "PUT", hub_ + "/api/v1/sites/" + escape(site), token(cfg),
                           body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "", 30'000, &stopping_);
  const std::string why = !a.error.empty() ? a.error : (a.status == 200 || a.status == 201) ? "" : reasonOf(a);
  if (!why.empty() && why != lastReportError_)
    OLOG_WARN("catalog follow: the site report to %s failed: %s", hub_.c_str(), why.c_str());
  lastReportError_ = why;
}

void Follower::bytesLoop() {
  while (!stopping_) {
    std::vector<catalog::Catalog::PendingVersion> list = ctx_->catalog->pending();
    {
      // Errors of versions no longer waiting (fetched, deleted) go.
      std::lock_guard lock(mu_);
      for (auto it = state_.byteErrors.begin(); it != state_.byteErrors.end();) {
        const bool waiting = std::any_of(list.begin(), list.end(), [&](const auto& p) {
          return p.record->name + "/" + p.record->version == it->first;
        });
        it = waiting ? std::next(it) : state_.byteErrors.erase(it);
      }
    }
    if (list.empty()) {
      if (!pause(60'000, true)) break;
      continue;
    }
    // Wanted here now (a ring holding this box's devices offers it) first.
    const int64_t now = ctx_->clock->nowSeconds();
    auto devices = ctx_->fleet->deviceSnapshot();
    std::vector<std::pair<bool, catalog::Catalog::PendingVersion>> order;
    for (auto& p : list) {
      const catalog::RingPlan plan = ctx_->fleet->planFor(p.record->name);
      const bool wanted = catalog::wantedHere(p.record->name, p.record->published, plan.rings, plan.promoteAfterSecs,
                                              plan.release == catalog::ReleaseMode::OnPublish,
                                              ctx_->fleet->events(p.record->name, p.record->version), *devices, now);
      order.emplace_back(wanted, std::move(p));
    }
    std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first && !b.first; });
    bool failed = false;
    for (auto& [wanted, p] : order) {
      if (stopping_) break;
      const catalog::PackageVersion& rec = *p.record;
      const std::string what = rec.name + "/" + rec.version;
      if (ctx_->catalog->promoteIfStored(rec.name, rec.version, ctx_->clock->nowSeconds())) continue;
      {
        std::lock_guard lock(mu_);
        state_.fetching = what;
      }
      StoreImport req;
      req.url = hub_ + "/pkgs/" + escape(rec.name) + "/" + escape(rec.version) + "/" + escape(rec.filename);
      req.name = rec.name;
      req.version = rec.version;
      req.filename = rec.filename;
      req.expectedSize = rec.size;
      req.expectSha = rec.sha256;
      req.replica = p.record;
      req.progress = p.held.get();
      req.stop = &stopping_;
      OffLoopAnswer::Reply r = importFromStore(ctx_, req, catalog::Actor{"", "hub"});
      std::lock_guard lock(mu_);
      state_.fetching.clear();
      if (r.status < 300) {
        state_.byteErrors.erase(what);
        OLOG_INFO("catalog follow: %s is here (%llu bytes%s): visible", what.c_str(),
                  static_cast<unsigned long long>(rec.size), wanted ? ", prewarmed for a ring of this box" : "");
        continue;
      }
      if (stopping_) break;
      auto j = nlohmann::json::parse(r.body, nullptr, false);
      std::string why = j.is_object() && j.contains("detail") && j["detail"].is_string()
                            ? j["detail"].get<std::string>()
                            : "status " + std::to_string(r.status);
      auto known = state_.byteErrors.find(what);
      if (known == state_.byteErrors.end() || known->second != why)
        OLOG_WARN("catalog follow: the bytes of %s: %s (tried again in 5 s)", what.c_str(), why.c_str());
      if (state_.byteErrors.size() < 1000 || known != state_.byteErrors.end()) state_.byteErrors[what] = why;
      failed = true;
    }
    if (!pause(failed ? 5'000 : 0, true)) break;
  }
}

}  // namespace orchard::server
