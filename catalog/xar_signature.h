// What a flat package's xar signature proves, and the roots it is checked
// against (catalog.trusted_roots).
//
// A signed xar stores, in its heap, the checksum of the compressed TOC and
// an RSA signature over that checksum; the TOC lists the signing
// certificates, leaf first. verifyXarSignature() checks, in order:
//   (a) the stored checksum equals the hash of the compressed TOC bytes
//       (otherwise the TOC was changed after it was summed);
//   (b) the RSA signature is a PKCS#1 v1.5 signature over that digest with
//       the leaf certificate's key (the digest is signed directly, as
//       RSA_sign(NID_sha1, digest) does) -> SignatureInfo::verified;
//   (c) the TOC's certificates chain to a TrustStore root with
//       X509_verify_cert, OpenSSL's default time checks included
//       -> SignatureInfo::trusted.
// It never fails: what did not hold is said in SignatureInfo::problem. The
// OpenSSL error queue is left empty on return (the server's TLS code reads
// the same thread-local queue).
#pragma once

#include <memory>
#include <string>

#include "catalog/package.h"
#include "catalog/xar_toc.h"
#include "common/result.h"

struct x509_store_st;

namespace orchard::catalog {

// The certificates accepted as roots of a package signature chain.
// Immutable after loading; shared by the threads that read packages.
class TrustStore {
 public:
  // Every certificate in the PEM file at `path` becomes a trusted root.
  // NotFound/Io when the file cannot be read, Invalid when a certificate
  // does not parse or there is none; the static context says which, the
  // caller names the path (as config does for admin.token_file).
  static Result<std::shared_ptr<TrustStore>> loadPem(const std::string& path);

  ~TrustStore();
  TrustStore(const TrustStore&) = delete;
  TrustStore& operator=(const TrustStore&) = delete;

  size_t size() const { return count_; }
  x509_store_st* store() const { return store_; }  // owned by this object

 private:
  TrustStore(x509_store_st* store, size_t count) : store_(store), count_(count) {}
  x509_store_st* store_;
  size_t count_;
};

// SignatureInfo::problem when (a) fails: the TOC changed after it was summed.
inline constexpr const char* kProblemTocChanged = "the TOC checksum does not match the table of contents (it was changed)";

// `roots` may be null: the chain is then reported but never trusted.
// `src` is the archive the TOC was read from (for the heap reads).
SignatureInfo verifyXarSignature(const XarToc& toc, const ByteSource& src, const TrustStore* roots);

}  // namespace orchard::catalog
