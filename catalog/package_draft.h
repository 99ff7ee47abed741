// What a package version's record says about its file, read from the file
// itself before the commit: its metadata (pkg_reader.h), the admin's
// overrides (request_metadata.h), the defaults the manifest needs, and the
// signature policy (catalog.require_signed). One function for every way a
// file gets into the catalog: the PUT publish (server/catalog/
// publish_handler.cc) and the imports from the cache (server/catalog/
// import.cc), so they cannot drift apart.
//
// Blocking file I/O: call it where the file is read anyway (the thread
// pool, an import's job), never on a loop.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/package.h"
#include "catalog/xar_signature.h"

namespace orchard::catalog {

struct DraftOptions {
  // Query-style overrides (name, value), applied in order with
  // applyOverride(); validated by the caller beforehand (a bad one here is
  // skipped).
  std::vector<std::pair<std::string, std::string>> overrides;
  // A JSON object of the same fields (parseMetadataJson), applied after
  // `overrides`; empty: none.
  std::string metadataJson;
  // Values used only where the file and the overrides left the field empty
  // ("bundle_id", "title"): an Apple installer's identifier when its file
  // names none.
  std::vector<std::pair<std::string, std::string>> fallbacks;
  bool requireSigned = false;                  // catalog.require_signed
  std::shared_ptr<const TrustStore> roots;     // catalog.trusted_roots; may be null
};

// Fills draft->metadata, signature and warnings from the whole file at
// `path` for name/version. Problems: Invalid when the file looks like a
// package but cannot be read, or the metadata stays incomplete (a .dmg
// without bundle_id) or an override is refused; Unsupported when
// requireSigned refuses it.
std::optional<Problem> draftFromFile(const std::string& path, std::string_view name, std::string_view version,
                                     const DraftOptions& options, PackageVersion* draft);

}  // namespace orchard::catalog
