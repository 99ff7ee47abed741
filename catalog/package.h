// The catalog's records: what a published package version is, what was
// read from its file, and what its signature proved. Plain values shared
// by the metadata reader (pkg_reader.h), the catalog store (catalog.h), the
// manifest writer (manifest.h) and the HTTP handlers (server/catalog/).
// Records are stored as JSON (nlohmann) in the catalog's column families;
// toJson()/fromJson() are the one place that knows the field names, which
// are also the API's (../shared/INTERFACE.md): extend, never rename.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"

namespace orchard::catalog {

// An app (or other) bundle a package installs.
struct BundleInfo {
  std::string id;       // CFBundleIdentifier
  std::string version;  // CFBundleShortVersionString (else CFBundleVersion)
  std::string path;     // install path inside the package, when known
  bool operator==(const BundleInfo&) const = default;
};

// A component a distribution package references (pkg-ref).
struct PkgRef {
  std::string id;
  std::string version;
  uint64_t installKBytes = 0;
  bool operator==(const PkgRef&) const = default;
};

// What the box knows about the software inside a package file. Every field
// may be empty: a .dmg has only what the request gave.
struct PackageMetadata {
  std::string title;
  std::string bundleId;       // the main bundle: the one the manifest names
  std::string bundleVersion;  // always set in a manifest (macOS detects updates by it)
  std::string packageId;      // the product's (or single component's) identifier
  std::string packageVersion;
  std::string minOs;          // allowed-os-versions / os-version min
  std::string maxOs;          // ... before; empty when unbounded
  std::vector<std::string> archs;  // hostArchitectures ("arm64", "x86_64")
  std::vector<BundleInfo> bundles;
  std::vector<PkgRef> pkgRefs;
  bool distribution = false;  // a product archive with a Distribution file
  // What the file is: "distribution" (a product archive), "component" (a
  // flat package without a Distribution), "file" (not a flat package: a
  // .dmg or anything else, described by the request alone).
  std::string kind;
  // Where each set field came from: "Distribution", "PackageInfo",
  // "request" (a query parameter of the PUT), or a file's name inside the
  // archive ("Payload/...Info.plist"). Keys are the JSON field names.
  std::map<std::string, std::string> source;
  bool operator==(const PackageMetadata&) const = default;
};

// What the xar signature proved (see xar_signature.h). "signed" means
// verified, not present.
struct SignatureInfo {
  bool present = false;   // the table of contents declares a signature
  bool verified = false;  // the RSA signature over the TOC checksum checked out with the leaf certificate
  bool trusted = false;   // and the chain ends in a root of catalog.trusted_roots
  std::vector<std::string> chain;  // subjects, leaf first (RFC 2253 form)
  std::string problem;    // why not verified/trusted; empty when both hold
  bool operator==(const SignatureInfo&) const = default;
};

// One published version of a package, as the catalog keeps it.
struct PackageVersion {
  std::string name;
  std::string version;
  std::string filename;
  uint64_t size = 0;
  std::string sha256;                // hex, lower case: the blob's address
  std::vector<std::string> chunks;   // SHA-256 (hex) of each kChunkSize piece, in order
  int64_t published = 0;             // Unix seconds
  std::string publishedBy;           // token identity ("admin", or a scope's name)
  PackageMetadata metadata;
  SignatureInfo signature;
  std::vector<std::string> warnings;  // e.g. "unsigned: ..." (the publish still succeeded)
  bool operator==(const PackageVersion&) const = default;
};

// The manifest's chunk size: InstallEnterpriseApplication's sha256-size.
inline constexpr uint64_t kChunkSize = 10ull << 20;

void toJson(nlohmann::json& j, const BundleInfo& v);
void toJson(nlohmann::json& j, const PkgRef& v);
void toJson(nlohmann::json& j, const PackageMetadata& v);
void toJson(nlohmann::json& j, const SignatureInfo& v);
// `withChunks`: the stored record has the chunk hashes; API answers leave
// them out (the manifest carries them).
void toJson(nlohmann::json& j, const PackageVersion& v, bool withChunks = true);

// Reads a stored record back. Invalid when a field has the wrong type or a
// required one (name, version, filename, size, sha256) is missing.
Result<PackageVersion> packageVersionFromJson(const nlohmann::json& j);
Result<PackageMetadata> metadataFromJson(const nlohmann::json& j);

}  // namespace orchard::catalog
