// The Apple product publish route (see apple_publish.h): on the thread
// pool, AppleService::mirroredInstaller() says what to publish (URL, size,
// title, version), then importFromStore() does what from-url does with it
// (the object is complete in the cache, so nothing crosses the WAN).
#include "server/apple/apple_publish.h"

#include <algorithm>
#include <cctype>

#include "catalog/request_metadata.h"
#include "common/log.h"
#include "server/apple/apple_service.h"
#include "server/catalog/catalog_http.h"
#include "server/catalog/import.h"

namespace orchard::server {

namespace {

constexpr const char* kPackageName = "macOS";

// Apple's product ids: "041-12345", "012-34567-A" (letters, digits, dashes, dots).
bool plausibleProductId(std::string_view id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
         });
}

RequestHandler* publishProduct(HandlerRequest&& r, const ServerContext* ctx) {
  const std::string id(r.params.get("id"));
  if (!plausibleProductId(id))
    return FixedAnswer::error(r.writer, std::move(r.head), 404, "no product " + id.substr(0, 64));
  catalog::Actor actor = actorOf(r);
  const std::string base = baseUrl(r.writer->wc()->snapshot(), r.head);
  return new OffLoopAnswer(r.writer, std::move(r.head), [ctx, actor, base, id](std::string) {
    AppleService* apple = ctx->apple;
    if (!apple) return errorReply(503, "the Apple catalog service is not running");
    std::string why;
    auto inst = apple->mirroredInstaller(id, &why);
    if (!inst) {
      const Error& e = inst.error();
      const std::string detail = why.empty() ? std::string(e.context) : why;
      if (e.code == Errc::NotFound) return errorReply(404, detail.empty() ? "no product " + id : detail);
      if (e.code == Errc::Invalid) return errorReply(409, detail);
      if (e.code == Errc::Busy) return errorReply(503, detail);
      return errorReply(502, detail);
    }
    if (inst->info.version.empty())
      return errorReply(400, "product " + id + " has no version (its .dist and .smd name none): it cannot be published");
    StoreImport req;
    req.url = inst->url;
    req.name = kPackageName;
    req.version = inst->info.version;
    req.filename = inst->filename.empty() ? urlFilename(inst->url) : inst->filename;
    req.expectedSize = inst->size;
    req.base = base;
    if (!inst->info.title.empty()) {
      catalog::PackageMetadata scratch;
      if (auto p = catalog::applyOverride(&scratch, "title", inst->info.title))
        OLOG_WARN("apple publish %s: the product's title is not usable (%s): the package's own is kept", id.c_str(),
                  p->c_str());
      else
        req.overrides.emplace_back("title", inst->info.title);
    }
    // Apple's InstallAssistant.pkg names its own identifier; a file that
    // does not (or cannot be read) still gets one MDM can track.
    req.fallbacks.emplace_back("bundle_id", "com.apple.pkg.InstallAssistant");
    // PackageVersion has no field for the build (inst->info.build): it is in
    // the Apple products list, not in the package record.
    return importFromStore(ctx, req, actor);
  }, 0, appleRunner(ctx));
}

}  // namespace

void registerApplePublishRoute(RouteTable& routes, const ServerContext* ctx) {
  routes.add("POST", "/api/v1/apple/products/{id}/publish", catalogWrite(ctx, config::Scope::Publish, &publishProduct));
}

}  // namespace orchard::server
