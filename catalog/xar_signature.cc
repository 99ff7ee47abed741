// Verifies a xar's RSA signature and certificate chain (see
// xar_signature.h) and loads the trusted roots.
//
// Hard parts: the signature covers the TOC checksum, not the TOC, so the
// checksum must be recomputed from the compressed TOC bytes before the
// signature means anything; the digest is verified "pre-hashed"
// (EVP_PKEY_verify with the signature md set, which wraps it in the
// DigestInfo PKCS#1 v1.5 expects) rather than hashed again. Every OpenSSL
// failure leaves entries on the thread's error queue; they are cleared on
// every path out (the Drain guard), so they never surface in a later TLS
// call. Objects are held in unique_ptrs with their OpenSSL free functions.
#include "catalog/xar_signature.h"

#include <cstring>
#include <memory>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

namespace orchard::catalog {

namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const noexcept { Free(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
void freeStack(STACK_OF(X509) * s) { sk_X509_free(s); }  // a macro in OpenSSL 3
using StackPtr = std::unique_ptr<STACK_OF(X509), Deleter<freeStack>>;

// Leaves the OpenSSL error queue empty however the scope is left.
struct Drain {
  ~Drain() { ERR_clear_error(); }
};

std::string subjectOf(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) return "?";
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

const EVP_MD* digestFor(const std::string& style) {
  if (style == "sha1") return EVP_sha1();
  if (style == "sha256") return EVP_sha256();
  if (style == "sha512") return EVP_sha512();
  return nullptr;  // md5 and anything else: not accepted for a signature
}

// (a): the stored checksum against the hash of the compressed TOC.
// Returns the digest the signature must cover, or sets `problem`.
std::string checkTocChecksum(const XarToc& toc, const ByteSource& src, const EVP_MD* md, std::string* problem) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(toc.compressed.data(), toc.compressed.size(), digest, &len, md, nullptr) != 1) {
    *problem = "cannot hash the table of contents";
    return {};
  }
  if (toc.checksum.size != len) {
    *problem = "the TOC checksum has the wrong size for " + toc.checksumStyle;
    return {};
  }
  if (toc.checksum.offset > src.size()) {
    *problem = "the TOC checksum lies outside the file";
    return {};
  }
  auto stored = src.readAt(toc.heapStart + toc.checksum.offset, len);
  if (!stored) {
    *problem = "the TOC checksum lies outside the file";
    return {};
  }
  std::string computed(reinterpret_cast<char*>(digest), len);
  if (*stored != computed) {
    *problem = kProblemTocChanged;
    return {};
  }
  return computed;
}

// (b): PKCS#1 v1.5 over the digest itself with the leaf's key.
bool checkRsa(X509* leaf, const EVP_MD* md, const std::string& digest, const std::string& sig) {
  PkeyPtr key(X509_get_pubkey(leaf));
  if (!key || EVP_PKEY_base_id(key.get()) != EVP_PKEY_RSA) return false;
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key.get(), nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), md) != 1)
    return false;
  return EVP_PKEY_verify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                         reinterpret_cast<const unsigned char*>(digest.data()), digest.size()) == 1;
}

// (c): the chain from the TOC's certificates to a root.
bool checkChain(const std::vector<X509Ptr>& certs, const TrustStore& roots, std::string* problem) {
  StackPtr untrusted(sk_X509_new_null());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!untrusted || !ctx) {
    *problem = "out of memory checking the chain";
    return false;
  }
  for (size_t i = 1; i < certs.size(); ++i) sk_X509_push(untrusted.get(), certs[i].get());
  if (X509_STORE_CTX_init(ctx.get(), roots.store(), certs[0].get(), untrusted.get()) != 1) {
    *problem = "cannot set up the chain check";
    return false;
  }
  if (X509_verify_cert(ctx.get()) == 1) return true;
  *problem = std::string("chain not trusted: ") + X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
  return false;
}

}  // namespace

TrustStore::~TrustStore() { X509_STORE_free(store_); }

Result<std::shared_ptr<TrustStore>> TrustStore::loadPem(const std::string& path) {
  Drain drain;
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    int err = errno;
    return Error{err == ENOENT ? Errc::NotFound : Errc::Io, err, "trusted roots: cannot read the PEM file"};
  }
  std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>> store(X509_STORE_new());
  if (!store) return Error{Errc::NoSpace, ENOMEM, "trusted roots: out of memory"};
  size_t count = 0;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
      unsigned long e = ERR_peek_last_error();
      if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) break;  // end of file
      return Error{Errc::Invalid, 0, "trusted roots: a certificate in the PEM file does not parse"};
    }
    if (X509_STORE_add_cert(store.get(), cert.get()) != 1) {
      unsigned long e = ERR_peek_last_error();
      if (ERR_GET_REASON(e) != X509_R_CERT_ALREADY_IN_HASH_TABLE)
        return Error{Errc::Invalid, 0, "trusted roots: a certificate cannot be added"};
    }
    ++count;
  }
  if (count == 0) return Error{Errc::Invalid, 0, "trusted roots: no certificate in the PEM file"};
  return std::shared_ptr<TrustStore>(new TrustStore(store.release(), count));
}

SignatureInfo verifyXarSignature(const XarToc& toc, const ByteSource& src, const TrustStore* roots) {
  Drain drain;
  SignatureInfo info;
  if (!toc.hasSignature) {
    info.problem = "unsigned";
    return info;
  }
  info.present = true;

  std::vector<X509Ptr> certs;
  for (const std::string& der : toc.certificates) {
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!cert) {
      info.problem = "a signing certificate does not parse";
      return info;
    }
    info.chain.push_back(subjectOf(cert.get()));
    certs.push_back(std::move(cert));
  }
  if (certs.empty()) {
    info.problem = "the signature carries no certificate";
    return info;
  }
  if (toc.signatureStyle != "RSA") {
    info.problem = "unsupported signature style " + toc.signatureStyle.substr(0, 32);
    return info;
  }
  if (toc.checksumStyle != toc.header.cksumName) {
    info.problem = "the TOC checksum style differs from the header's";
    return info;
  }
  const EVP_MD* md = digestFor(toc.checksumStyle);
  if (!md) {
    info.problem = "the TOC checksum algorithm " + toc.checksumStyle.substr(0, 32) + " cannot carry a signature";
    return info;
  }
  std::string digest = checkTocChecksum(toc, src, md, &info.problem);
  if (digest.empty()) return info;
  if (toc.signature.size == 0 || toc.signature.size > 2048 || toc.signature.offset > src.size()) {
    info.problem = "the signature has an implausible size or offset";
    return info;
  }
  auto sig = src.readAt(toc.heapStart + toc.signature.offset, toc.signature.size);
  if (!sig) {
    info.problem = "the signature lies outside the file";
    return info;
  }
  if (!checkRsa(certs[0].get(), md, digest, *sig)) {
    info.problem = "the signature does not match the TOC checksum with the leaf certificate's key";
    return info;
  }
  info.verified = true;
  if (!roots) {
    info.problem = "no trusted roots are configured";
    return info;
  }
  info.trusted = checkChain(certs, *roots, &info.problem);
  return info;
}

}  // namespace orchard::catalog
