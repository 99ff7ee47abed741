// draftFromFile (see package_draft.h): the file's metadata, then the
// request's values over it, then the manifest's defaults, then the
// signature policy, in that order, so a request value can complete what
// the file lacks but never lets an unsigned package past require_signed.
#include "catalog/package_draft.h"

#include "catalog/pkg_reader.h"
#include "catalog/request_metadata.h"

namespace orchard::catalog {

std::optional<Problem> draftFromFile(const std::string& path, std::string_view name, std::string_view version,
                                     const DraftOptions& options, PackageVersion* draft) {
  auto info = readPackageFile(path, options.roots.get());
  if (!info)
    return Problem{Errc::Invalid, "the file looks like a package but cannot be read: " + info.error().message()};
  const bool isPackage = info->isPackage;
  draft->metadata = std::move(info->metadata);
  draft->signature = std::move(info->signature);
  draft->warnings = std::move(info->warnings);
  draft->metadata.kind = !isPackage ? "file" : draft->metadata.distribution ? "distribution" : "component";
  for (const auto& [k, v] : options.overrides) (void)applyOverride(&draft->metadata, k, v);
  if (!options.metadataJson.empty())
    if (auto p = parseMetadataJson(options.metadataJson, &draft->metadata)) return Problem{Errc::Invalid, *p};
  for (const auto& [k, v] : options.fallbacks) {
    const bool empty = (k == "bundle_id" && draft->metadata.bundleId.empty()) ||
                       (k == "title" && draft->metadata.title.empty());
    if (empty) (void)applyOverride(&draft->metadata, k, v);
  }
  if (auto p = completeMetadata(&draft->metadata, name, version, isPackage)) return Problem{Errc::Invalid, *p};
  if (options.requireSigned) {
    std::string why;
    if (!isPackage || !draft->metadata.distribution) why = "it is not a distribution package";
    else if (!draft->signature.verified) why = "its signature is not verified: " + draft->signature.problem;
    else if (options.roots && !draft->signature.trusted) why = "its signature does not chain to catalog.trusted_roots";
    if (!why.empty()) return Problem{Errc::Unsupported, "catalog.require_signed is set and " + why};
  }
  return std::nullopt;
}

}  // namespace orchard::catalog
