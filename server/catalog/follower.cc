// Follower (see follower.h): the feed and bytes loops of a branch, and the
// libcurl requests to the hub. Hard parts: the feed position is only ever
// moved by the batch that applies a change (Catalog::applyReplicated), so
// nothing here keeps a position of its own that a crash could lose; a page
// is applied change by change and a failure stops the page there (the next
// poll asks again from the last one written).
#include "server/catalog/follower.h"

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

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

namespace orchard::server {

namespace {

int64_t steadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---- one request to the hub ----

// upstream.ca_file's certificates, owned (added to each connection's store
// beside the system CAs).
struct ExtraCas {
  std::vector<X509*> certs;
  ExtraCas() = default;
  ExtraCas(const ExtraCas&) = delete;
  ExtraCas& operator=(const ExtraCas&) = delete;
  ~ExtraCas() {
    for (X509* c : certs) X509_free(c);
  }
};

std::string loadCas(const std::string& path, ExtraCas* out) {
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (!bio) {
    ERR_clear_error();
    return "upstream.ca_file " + path + ": cannot be read";
  }
  while (X509* c = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) out->certs.push_back(c);
  BIO_free(bio);
  ERR_clear_error();
  return "";
}

CURLcode addCas(CURL*, void* sslCtx, void* user) {
  auto* cas = static_cast<const ExtraCas*>(user);
  X509_STORE* store = SSL_CTX_get_cert_store(static_cast<SSL_CTX*>(sslCtx));
  for (X509* c : cas->certs) X509_STORE_add_cert(store, c);
  ERR_clear_error();
  return CURLE_OK;
}

struct HubAnswer {
  int status = 0;
  std::string body;
  std::string error;  // transport failure, in words
};

struct BodySink {
  std::string* body;
  size_t max;
  bool tooBig = false;
  const std::atomic<bool>* stop;
};

size_t onBody(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<BodySink*>(user);
  const size_t len = size * n;
  if (s->body->size() + len > s->max) {
    s->tooBig = true;
    return 0;
  }
  s->body->append(data, len);
  return len;
}

int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* s = static_cast<BodySink*>(user);
  return s->stop->load(std::memory_order_relaxed) ? 1 : 0;
}

std::string hostOf(const std::string& url) {
  CURLU* u = curl_url();
  if (!u) return "";
  std::string host;
  char* h = nullptr;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK && curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
    host = h;
    curl_free(h);
  }
  curl_url_cleanup(u);
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return host;
}

HubAnswer hubRequest(const config::Config& cfg, const std::string& method, const std::string& url,
                     const std::string& token, const std::string& body, const std::string& ifNoneMatch,
                     int64_t timeoutMs, const std::atomic<bool>* stop) {
  HubAnswer out;
  ExtraCas cas;
  if (!cfg.upstreamCaFile.empty()) {
    out.error = loadCas(cfg.upstreamCaFile, &cas);
    if (!out.error.empty()) return out;
  }
  curlGlobalInit();
  CURL* c = curl_easy_init();
  if (!c) {
    out.error = "cannot make a libcurl handle";
    return out;
  }
  curl_slist* connectTo = nullptr;
  if (auto it = cfg.upstreamResolve.find(hostOf(url)); it != cfg.upstreamResolve.end()) {
    const config::ListenAddress& a = it->second;
    const std::string to = "::" + (a.v6 ? "[" + a.host + "]" : a.host) + ":" + std::to_string(a.port);
    const std::string host = it->first.find(':') != std::string::npos ? "[" + it->first + "]" : it->first;
    connectTo = curl_slist_append(nullptr, (host + to).c_str());
  }
  curl_slist* hdrs = nullptr;
  const std::string auth = "Authorization: Bearer " + token;
  hdrs = curl_slist_append(hdrs, auth.c_str());
  if (!body.empty()) hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
  if (!ifNoneMatch.empty()) hdrs = curl_slist_append(hdrs, ("If-None-Match: " + ifNoneMatch).c_str());
  char errbuf[CURL_ERROR_SIZE] = {0};
  BodySink sink{&out.body, catalog::kMaxPageBytes, false, stop};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "orchardd (catalog follower)");
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(cfg.connectTimeoutMs > 0 ? cfg.connectTimeoutMs : 10'000));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeoutMs));
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!cas.certs.empty()) {
    curl_easy_setopt(c, CURLOPT_CA_CACHE_TIMEOUT, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, addCas);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, &cas);
  }
  if (connectTo) curl_easy_setopt(c, CURLOPT_CONNECT_TO, connectTo);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  if (method != "GET") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (!body.empty()) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, onBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, onProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &sink);
  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  curl_slist_free_all(hdrs);
  curl_slist_free_all(connectTo);
  out.status = static_cast<int>(status);
  if (rc != CURLE_OK) {
    if (sink.tooBig) out.error = "the hub's answer is larger than " + std::to_string(catalog::kMaxPageBytes) + " bytes";
    else out.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  }
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
