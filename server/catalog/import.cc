// Imports from the box's cache into the catalog (see import.h). The steps
// of importFromStore, each with its refusal:
//   Key      the URL's cache key (BoxFetch::cacheKeyText): 400 when it is
//            not http(s) or its host is not in upstream.allow
//   Lookup   a complete 200 object under the key, without Content-Encoding;
//            otherwise Fetch
//   Fetch    a GET through the box (BoxFetch::get, uncapped, body dropped):
//            502 when the box cannot be reached, answers anything but 200,
//            or does not keep the answer; then wait for the fill's commit
//            (the last body byte may reach us before the record is written)
//   Pin      Store::openForRead (no eviction while we link) and
//            ensureVerified over the whole object (the cache's own block
//            checksums: a corrupt object is dropped and fetched again)
//   Import   Catalog::importFile on Store::objectFilePath, the metadata read
//            by catalog::draftFromFile as a PUT publish reads it; the source
//            gone (replaced or purged after the pin) -> Lookup once more
//   Answer   the publish's JSON plus "source_url"
#include "server/catalog/import.h"

#include "server/apple/apple_service.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <thread>

#include "cache/key.h"
#include "catalog/names.h"
#include "catalog/package_draft.h"
#include "catalog/request_metadata.h"
#include "common/log.h"
#include "server/apple/box_fetch.h"
#include "server/http/message.h"

namespace orchard::server {

namespace {

using Reply = OffLoopAnswer::Reply;

constexpr int64_t kCommitWaitMs = 30'000;   // the fill's record after its last byte
constexpr size_t kErrorBodyBytes = 2048;    // of a non-200 answer, for the reason
constexpr size_t kMaxUrlBytes = 8192;

// Imports fetching through the box right now (see kMaxFetchingImports).
std::atomic<int> gFetching{0};

std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

bool isHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// A complete object the catalog can take as it is: the origin's 200, bytes
// as sent (no Content-Encoding but identity).
bool importable(const cache::ObjectMeta& m) {
  if (m.kind != cache::ObjectMeta::Kind::Complete || m.status != 200) return false;
  std::string_view enc = m.header("Content-Encoding");
  return enc.empty() || iequals(enc, "identity");
}

std::shared_ptr<const cache::ObjectMeta> findComplete(cache::Store* store, const cache::CacheKey& key) {
  auto m = store->lookup(key);
  return m && importable(*m) ? m : nullptr;
}

// "detail" of the box's own JSON error body, or the first line of an
// origin's body (printable ASCII only), for a 502's reason.
std::string reasonFrom(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  std::string out;
  if (j.is_object() && j.contains("detail") && j["detail"].is_string()) out = j["detail"].get<std::string>();
  else out = body.substr(0, body.find('\n'));
  out.erase(std::remove_if(out.begin(), out.end(), [](char c) { return c < 0x20 || c > 0x7e; }), out.end());
  if (out.size() > 200) out.resize(200);
  return out;
}

// Fetch: the object through the box, then its record. Sets *meta, or
// returns the refusal.
std::optional<Reply> fetchIntoCache(const ServerContext* ctx, const BoxFetch& fetch, const StoreImport& req,
                                    const cache::CacheKey& key, std::shared_ptr<const cache::ObjectMeta>* meta) {
  const std::string& url = req.url;
  if (gFetching.fetch_add(1) >= kMaxFetchingImports) {
    gFetching.fetch_sub(1);
    return errorReply(503, "other imports are fetching through the box (at most " +
                               std::to_string(kMaxFetchingImports) + " at once): try again later",
                      "Retry-After: 30\r\n");
  }
  std::string head;
  BoxFetch::Sink sink = [&](const char* d, size_t n) {
    if (head.size() < kErrorBodyBytes) head.append(d, std::min(n, kErrorBodyBytes - head.size()));
    if (req.progress) req.progress->fetch_add(n, std::memory_order_relaxed);
    return true;
  };
  BoxFetchOptions opts;  // uncapped: an admin asked for it now
  opts.stop = req.stop;
  auto r = fetch.get(url, sink, opts);
  gFetching.fetch_sub(1);
  if (!r) return errorReply(502, std::string("fetching ") + url + " through the box failed: " + r.error().context);
  if (r->status != 200) {
    std::string why = reasonFrom(head);
    return errorReply(502, "fetching " + url + ": the box answered " + std::to_string(r->status) +
                               (why.empty() ? std::string() : " (" + why + ")") + "; nothing was published");
  }
  const std::string& cs = r->cacheStatus;
  const bool kept = cs.find("stored") != std::string::npos || cs.find("hit") != std::string::npos ||
                    cs.find("collapsed") != std::string::npos;
  if (!kept)
    return errorReply(502, "fetching " + url + ": the cache did not keep the answer (Cache-Status: " + cs +
                               "); an answer the cache may not store (no-store, private, over "
                               "storage.max_object_size) cannot be imported");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kCommitWaitMs);
  std::shared_ptr<const cache::ObjectMeta> m;
  for (;;) {
    m = ctx->store->lookup(key);
    if (m && importable(*m)) {
      *meta = std::move(m);
      return std::nullopt;
    }
    if (m || std::chrono::steady_clock::now() >= deadline) break;  // something that will not change by waiting
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (m && m->kind == cache::ObjectMeta::Kind::VaryStub)
    return errorReply(502, "the origin's answer for " + url + " varies (Vary: " + m->vary + "): it cannot be imported");
  if (m && m->status != 200)
    return errorReply(502, "the cache holds a " + std::to_string(m->status) + " answer for " + url);
  if (m) return errorReply(502, "the cached answer for " + url + " has Content-Encoding " +
                                    std::string(m->header("Content-Encoding")) + ": it cannot be imported");
  return errorReply(502, "fetching " + url + ": the object was not complete in the cache " +
                             std::to_string(kCommitWaitMs / 1000) + " s after its answer ended");
}

}  // namespace

std::string urlFilename(std::string_view url) {
  std::string_view u = url.substr(0, url.find_first_of("?#"));
  const size_t scheme = u.find("://");
  if (scheme != std::string_view::npos) {
    u.remove_prefix(scheme + 3);
    const size_t slash = u.find('/');
    u = slash == std::string_view::npos ? std::string_view() : u.substr(slash);
  }
  const size_t last = u.rfind('/');
  std::string_view seg = last == std::string_view::npos ? u : u.substr(last + 1);
  std::string out;
  if (!percentDecode(seg, &out)) return "";
  return out;
}

OffLoopAnswer::Reply importFromStore(const ServerContext* ctx, const StoreImport& req, const catalog::Actor& actor) {
  if (auto p = catalog::validateName(req.name)) return errorReply(400, "name: " + *p);
  if (auto p = catalog::validateVersion(req.version)) return errorReply(400, "version: " + *p);
  if (auto p = catalog::validateFilename(req.filename)) return errorReply(400, "filename: " + *p);
  if (!req.expectSha.empty() && !isHex64(req.expectSha)) return errorReply(400, "sha256 must be 64 hexadecimal digits");
  if (!ctx->store || !ctx->catalog || !ctx->control) return errorReply(503, "the box is not serving yet");
  BoxFetch fetch(ctx);
  auto keyText = fetch.cacheKeyText(req.url);
  if (!keyText) {
    if (keyText.error().code == Errc::Invalid) return errorReply(400, std::string("url: ") + keyText.error().context);
    return errorReply(503, keyText.error().context);
  }
  const cache::CacheKey key = cache::CacheKey::fromText(std::move(keyText).value());
  auto snap = ctx->control->snapshot();
  catalog::DraftOptions draft;
  draft.overrides = req.overrides;
  draft.metadataJson = req.metadataJson;
  draft.fallbacks = req.fallbacks;
  draft.requireSigned = snap->config.catalogRequireSigned;
  draft.roots = snap->trustedRoots;
  std::string sha = req.expectSha;
  std::transform(sha.begin(), sha.end(), sha.begin(), [](unsigned char c) { return std::tolower(c); });

  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool last = attempt == 1;
    // Lookup, else Fetch.
    auto meta = findComplete(ctx->store, key);
    if (!meta)
      if (auto refused = fetchIntoCache(ctx, fetch, req, key, &meta)) return *refused;
    if (req.expectedSize && meta->size != req.expectedSize)
      return errorReply(502, "the cached object of " + req.url + " is " + std::to_string(meta->size) +
                                 " bytes, not the expected " + std::to_string(req.expectedSize));
    // Pin.
    auto opened = ctx->store->openForRead(key, *meta);
    if (!opened) {
      if (!last) continue;  // gone or corrupt since the look-up: fetch it again
      return errorReply(502, std::string("the cached object of ") + req.url + " went away twice: " +
                                 opened.error().context);
    }
    auto verified = ctx->store->ensureVerified(key, *meta, opened->fd, 0, meta->size);
    ::close(opened->fd);
    if (!verified) {
      if (verified.error().code == Errc::Corrupt && !last) continue;  // dropped by the store: fetch again
      return errorReply(verified.error().code == Errc::Corrupt ? 502 : 500,
                        std::string("reading the cached object of ") + req.url + ": " + verified.error().context);
    }
    // Import (the pin held until it is done).
    catalog::Catalog::ImportSource src;
    src.path = ctx->store->objectFilePath(key.hash, meta->gen);
    src.size = meta->size;
    src.expectSha = sha;
    src.note = "from " + req.url;
    auto prepare = [&](const std::string& path, catalog::PackageVersion* v) {
      return catalog::draftFromFile(path, req.name, req.version, draft, v);
    };
    if (req.progress) req.progress->store(meta->size, std::memory_order_relaxed);
    auto result = req.replica ? ctx->catalog->importReplica(*req.replica, src, ctx->clock->nowSeconds())
                              : ctx->catalog->importFile(req.name, req.version, req.filename, src, prepare, actor,
                                                         ctx->clock->nowSeconds());
    opened->pin.reset();
    if (auto* p = std::get_if<catalog::Problem>(&result)) {
      if (p->code == Errc::NotFound && !last) continue;  // replaced or purged between the pin and the link
      OLOG_INFO("import of %s as %s %s refused: %s", req.url.c_str(), req.name.c_str(), req.version.c_str(),
                p->detail.c_str());
      return errorReply(p->code == Errc::NotFound ? 502 : statusFor(*p), p->detail);
    }
    auto& imp = std::get<catalog::Catalog::Imported>(result);
    if (imp.created)
      OLOG_INFO("imported %s %s from %s (%s, %llu bytes, %s)", req.name.c_str(), req.version.c_str(), req.url.c_str(),
                imp.version->sha256.c_str(), static_cast<unsigned long long>(imp.version->size),
                imp.linked ? "linked" : "copied");
    auto out = versionJson(*imp.version, req.base);
    out["created"] = imp.created;
    out["source_url"] = req.url;
    return Reply{imp.created ? 201 : 200, dump(out)};
  }
  return errorReply(502, "the cached object of " + req.url + " kept going away");  // not reached
}

namespace {

// The from-url body (see import.h). On a problem, a 400's detail.
std::optional<std::string> parseFromUrlBody(std::string_view body, StoreImport* out) {
  constexpr int kDepth = catalog::kMaxMetadataJsonDepth + 1;  // the metadata object sits one deeper
  if (catalog::jsonNestingDepth(body, kDepth) > kDepth) return "the body is nested too deeply";
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return "the body must be a JSON object: {\"url\": \"...\", \"filename\", \"sha256\", \"metadata\" optional}";
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const auto& v = it.value();
    if (k == "url") {
      if (!v.is_string()) return "url must be a string";
      out->url = v.get<std::string>();
      if (out->url.empty() || out->url.size() > kMaxUrlBytes)
        return "url must be 1 to " + std::to_string(kMaxUrlBytes) + " bytes";
    } else if (k == "filename") {
      if (!v.is_string()) return "filename must be a string";
      out->filename = v.get<std::string>();
    } else if (k == "sha256") {
      if (!v.is_string() || !isHex64(v.get<std::string>())) return "sha256 must be 64 hexadecimal digits";
      out->expectSha = v.get<std::string>();
      std::transform(out->expectSha.begin(), out->expectSha.end(), out->expectSha.begin(),
                     [](unsigned char c) { return std::tolower(c); });
    } else if (k == "metadata") {
      if (!v.is_object()) return "metadata must be an object";
      out->metadataJson = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      catalog::PackageMetadata scratch;
      if (auto p = catalog::parseMetadataJson(out->metadataJson, &scratch)) return *p;
    } else {
      return "unknown key \"" + (k.size() > 40 ? k.substr(0, 40) : k) + "\" (url, filename, sha256, metadata)";
    }
  }
  if (out->url.empty()) return "url is required";
  if (out->filename.empty()) out->filename = urlFilename(out->url);
  if (out->filename.empty()) return "the URL has no file name: give \"filename\"";
  return std::nullopt;
}

}  // namespace

// Imports block on the box's own HTTP: on the Apple service's threads
// when it runs (OffLoopAnswer::Runner says why not the libuv pool).
OffLoopAnswer::Runner appleRunner(const ServerContext* ctx) {
  AppleService* svc = ctx->apple;
  if (!svc) return nullptr;
  return [svc](std::function<void()> task) { return svc->runRouteWork(std::move(task)); };
}

RequestHandler* makeFromUrlHandler(HandlerRequest&& r, const ServerContext* ctx) {
  catalog::Actor actor = actorOf(r);
  StoreImport base;
  base.name = std::string(r.params.get("name"));
  base.version = std::string(r.params.get("version"));
  base.base = baseUrl(r.writer->wc()->snapshot(), r.head);
  return new OffLoopAnswer(
      r.writer, std::move(r.head),
      [ctx, actor, base](std::string body) {
        StoreImport req = base;
        if (auto p = parseFromUrlBody(body, &req)) return errorReply(400, *p);
        return importFromStore(ctx, req, actor);
      },
      /*maxBody=*/64 * 1024, appleRunner(ctx));
}

}  // namespace orchard::server
