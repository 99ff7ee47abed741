// The box's own CA and leaf (see local_ca.h). Everything is OpenSSL 3's
// EVP/X509 API; files are written whole to a temporary name and renamed.
#include "server/net/local_ca.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

#include "server/net/tls_context.h"

namespace orchard::server::tls {
namespace {

struct Free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  void operator()(X509* x) const { X509_free(x); }
  void operator()(BIO* b) const { BIO_free(b); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Free>;
using CertPtr = std::unique_ptr<X509, Free>;

constexpr long kCaDays = 3650;
constexpr long kLeafDays = 397;
constexpr long kRenewDays = 30;

bool readFile(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[8192];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
  ::close(fd);
  return n == 0;
}

bool writeFileAtomic(const std::string& path, const std::string& data, mode_t mode, std::string* error) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    *error = tmp + ": " + std::strerror(errno);
    return false;
  }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      *error = tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    off += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

KeyPtr readKey(const std::string& path) {
  std::string pem;
  if (!readFile(path, &pem)) return nullptr;
  std::unique_ptr<BIO, Free> b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  KeyPtr k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k) drainErrors();
  return k;
}

CertPtr readCert(const std::string& path) {
  std::string pem;
  if (!readFile(path, &pem)) return nullptr;
  std::unique_ptr<BIO, Free> b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  CertPtr c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) drainErrors();
  return c;
}

std::string keyPem(EVP_PKEY* k) {
  std::unique_ptr<BIO, Free> b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  char* p = nullptr;
  long n = BIO_get_mem_data(b.get(), &p);
  return std::string(p, static_cast<size_t>(n));
}

std::string certPem(X509* c) {
  std::unique_ptr<BIO, Free> b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), c);
  char* p = nullptr;
  long n = BIO_get_mem_data(b.get(), &p);
  return std::string(p, static_cast<size_t>(n));
}

bool addExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A certificate for `key`'s public half, signed by issuerKey (itself when
// issuer is null: self-signed).
CertPtr makeCert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuerKey, long days,
                 std::time_t now, const std::vector<std::pair<int, std::string>>& exts) {
  CertPtr c(X509_new());
  if (!c) return nullptr;
  X509_set_version(c.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return nullptr;
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.get()));
  BN_free(bn);
  X509_time_adj_ex(X509_getm_notBefore(c.get()), 0, -3600, &now);  // an hour of clock skew
  X509_time_adj_ex(X509_getm_notAfter(c.get()), static_cast<int>(days), 0, &now);
  X509_set_pubkey(c.get(), key);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("Orchard"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509* iss = issuer ? issuer : c.get();
  for (const auto& [nid, value] : exts)
    if (!addExt(c.get(), iss, nid, value)) return nullptr;
  if (X509_sign(c.get(), issuerKey, EVP_sha256()) <= 0) return nullptr;
  return c;
}

// The DNS names and IP addresses (as text) in a certificate's SANs.
std::set<std::string> sansOf(X509* cert) {
  std::set<std::string> out;
  auto* gens = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (!gens) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(gens); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(gens, i);
    if (g->type == GEN_DNS) {
      const ASN1_IA5STRING* s = g->d.dNSName;
      out.insert(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                             static_cast<size_t>(ASN1_STRING_length(s))));
    } else if (g->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* s = g->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {0};
      const int len = ASN1_STRING_length(s);
      if (len == 4 || len == 16)
        inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), text, sizeof text);
      out.insert(text);
    }
  }
  GENERAL_NAMES_free(gens);
  return out;
}

std::string canonicalAddress(const std::string& a) {
  unsigned char buf[16];
  char text[INET6_ADDRSTRLEN] = {0};
  if (inet_pton(AF_INET, a.c_str(), buf) == 1) inet_ntop(AF_INET, buf, text, sizeof text);
  else if (inet_pton(AF_INET6, a.c_str(), buf) == 1) inet_ntop(AF_INET6, buf, text, sizeof text);
  else return "";
  return text;
}

}  // namespace

void localNamesAndAddresses(const std::string& extraName, std::vector<std::string>* names,
                            std::vector<std::string>* addresses) {
  std::set<std::string> n{"localhost"};
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) == 0 && host[0]) {
    n.insert(host);
    addrinfo hints{};
    hints.ai_flags = AI_CANONNAME;
    addrinfo* res = nullptr;
    if (::getaddrinfo(host, nullptr, &hints, &res) == 0) {
      if (res && res->ai_canonname && std::strchr(res->ai_canonname, '.')) n.insert(res->ai_canonname);
      ::freeaddrinfo(res);
    }
  }
  if (!extraName.empty()) n.insert(extraName);
  std::set<std::string> a{"127.0.0.1", "::1"};
  ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) == 0) {
    for (ifaddrs* i = ifs; i; i = i->ifa_next) {
      if (!i->ifa_addr) continue;
      char text[INET6_ADDRSTRLEN] = {0};
      if (i->ifa_addr->sa_family == AF_INET) {
        auto* s = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
        const uint32_t v = ntohl(s->sin_addr.s_addr);
        if ((v >> 16) == 0xA9FE) continue;  // 169.254/16
        inet_ntop(AF_INET, &s->sin_addr, text, sizeof text);
      } else if (i->ifa_addr->sa_family == AF_INET6) {
        auto* s = reinterpret_cast<sockaddr_in6*>(i->ifa_addr);
        if (IN6_IS_ADDR_LINKLOCAL(&s->sin6_addr)) continue;
        inet_ntop(AF_INET6, &s->sin6_addr, text, sizeof text);
      } else {
        continue;
      }
      a.insert(text);
    }
    ::freeifaddrs(ifs);
  }
  names->assign(n.begin(), n.end());
  addresses->assign(a.begin(), a.end());
}

bool ensureLocalCertificate(const std::string& storageDir, const std::vector<std::string>& names,
                            const std::vector<std::string>& addresses, std::time_t now, LocalCertificate* out,
                            std::string* error) {
  const std::string dir = storageDir + "/tls";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *error = dir + ": " + std::strerror(errno);
    return false;
  }
  out->caPath = dir + "/ca.pem";
  out->certPath = dir + "/cert.pem";
  out->keyPath = dir + "/key.pem";
  const std::string caKeyPath = dir + "/ca.key";

  KeyPtr caKey = readKey(caKeyPath);
  CertPtr ca = readCert(out->caPath);
  if (!caKey || !ca || X509_check_private_key(ca.get(), caKey.get()) != 1) {
    drainErrors();
    caKey.reset(EVP_EC_gen("P-256"));
    if (!caKey) {
      *error = "making the local CA key: " + drainErrors();
      return false;
    }
    ca = makeCert(caKey.get(), "Orchard local CA", nullptr, caKey.get(), kCaDays, now,
                  {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                   {NID_key_usage, "critical,keyCertSign,cRLSign"},
                   {NID_subject_key_identifier, "hash"}});
    if (!ca) {
      *error = "making the local CA certificate: " + drainErrors();
      return false;
    }
    if (!writeFileAtomic(caKeyPath, keyPem(caKey.get()), 0600, error) ||
        !writeFileAtomic(out->caPath, certPem(ca.get()), 0644, error))
      return false;
    out->madeCa = true;
  }

  // The names the leaf must cover.
  std::set<std::string> want(names.begin(), names.end());
  for (const auto& a : addresses)
    if (std::string c = canonicalAddress(a); !c.empty()) want.insert(c);

  CertPtr leaf = readCert(out->certPath);
  KeyPtr leafKey = readKey(out->keyPath);
  bool fresh = leaf && leafKey && !out->madeCa && X509_check_private_key(leaf.get(), leafKey.get()) == 1;
  if (fresh) {
    EVP_PKEY* caPub = X509_get0_pubkey(ca.get());
    std::time_t renewAt = now + kRenewDays * 86400;
    const std::set<std::string> have = sansOf(leaf.get());
    fresh = X509_verify(leaf.get(), caPub) == 1 && X509_cmp_time(X509_get0_notAfter(leaf.get()), &renewAt) > 0 &&
            std::includes(have.begin(), have.end(), want.begin(), want.end());
  }
  drainErrors();
  if (!fresh) {
    leafKey.reset(EVP_EC_gen("P-256"));
    if (!leafKey) {
      *error = "making the certificate key: " + drainErrors();
      return false;
    }
    std::string san;
    for (const auto& n : names) san += (san.empty() ? "DNS:" : ",DNS:") + n;
    for (const auto& a : addresses)
      if (std::string c = canonicalAddress(a); !c.empty()) san += (san.empty() ? "IP:" : ",IP:") + c;
    const std::string cn = names.empty() ? std::string("orchard") : names.front();
    leaf = makeCert(leafKey.get(), cn, ca.get(), caKey.get(), kLeafDays, now,
                    {{NID_basic_constraints, "critical,CA:FALSE"},
                     {NID_key_usage, "critical,digitalSignature"},
                     {NID_ext_key_usage, "serverAuth"},
                     {NID_subject_alt_name, san},
                     {NID_subject_key_identifier, "hash"},
                     {NID_authority_key_identifier, "keyid:always"}});
    if (!leaf) {
      *error = "making the certificate: " + drainErrors();
      return false;
    }
    // The chain file carries the CA too, so a client that has the CA as a
    // trust anchor sees the whole path.
    if (!writeFileAtomic(out->keyPath, keyPem(leafKey.get()), 0600, error) ||
        !writeFileAtomic(out->certPath, certPem(leaf.get()) + certPem(ca.get()), 0644, error))
      return false;
    out->madeLeaf = true;
  }
  out->caPem = certPem(ca.get());
  out->leafFingerprint = fingerprintSha256(leaf.get());
  out->caFingerprint = fingerprintSha256(ca.get());
  return true;
}

}  // namespace orchard::server::tls
