// TLS contexts (see tls_context.h). The hard parts: the ticket key ring is
// shared by every server context of the process (a reload makes a new
// context, and tickets issued under the old one must still open), and the
// client session cache must survive the SSL it came from (SSL_SESSION is
// reference counted: the cache holds one reference per origin).
#include "server/net/tls_context.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "common/log.h"

namespace orchard::server::tls {
namespace {

// TLS 1.2 suites: ECDHE only, AEAD only, the strongest first.
constexpr const char* kCiphers12 =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// ---- session ticket keys ----
// A key: a 16-byte name (sent in the ticket), an AES-256 key and an HMAC key.
struct TicketKey {
  std::array<unsigned char, 16> name;
  std::array<unsigned char, 32> aes;
  std::array<unsigned char, 32> hmac;
  int64_t made = 0;  // steady seconds
};

class TicketKeys {
 public:
  static constexpr int64_t kRotateSeconds = 12 * 3600;
  static constexpr size_t kKeep = 3;  // the current key and two previous

  // The key to seal a new ticket with (rotating when the current one is old).
  bool current(TicketKey* out) {
    std::lock_guard lock(mu_);
    const int64_t now = nowSeconds();
    if (keys_.empty() || now - keys_.front().made >= kRotateSeconds) {
      TicketKey k;
      if (RAND_bytes(k.name.data(), sizeof k.name) != 1 || RAND_bytes(k.aes.data(), sizeof k.aes) != 1 ||
          RAND_bytes(k.hmac.data(), sizeof k.hmac) != 1)
        return false;
      k.made = now;
      keys_.insert(keys_.begin(), k);
      if (keys_.size() > kKeep) keys_.resize(kKeep);
    }
    *out = keys_.front();
    return true;
  }
  // The key a ticket names; *renew when it is not the current one.
  bool find(const unsigned char* name, TicketKey* out, bool* renew) {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < keys_.size(); ++i)
      if (std::memcmp(keys_[i].name.data(), name, 16) == 0) {
        *out = keys_[i];
        *renew = i != 0;
        return true;
      }
    return false;
  }

 private:
  static int64_t nowSeconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  std::mutex mu_;
  std::vector<TicketKey> keys_;  // newest first
};

TicketKeys& ticketKeys() {
  static TicketKeys k;
  return k;
}

// SSL_CTX_set_tlsext_ticket_key_evp_cb: 1 = ok, 2 = ok and reissue, 0 = no
// ticket (a full handshake), -1 = error.
int ticketCallback(SSL*, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cctx, EVP_MAC_CTX* hctx,
                   int enc) {
  TicketKey k;
  bool renew = false;
  if (enc) {
    if (!ticketKeys().current(&k)) return -1;
    std::memcpy(name, k.name.data(), 16);
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1;
  } else if (!ticketKeys().find(name, &k, &renew)) {
    return 0;
  }
  if (EVP_CipherInit_ex(cctx, EVP_aes_256_cbc(), nullptr, k.aes.data(), iv, enc) != 1) return -1;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac.data(), k.hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(hctx, params) != 1) return -1;
  return renew ? 2 : 1;
}

int alpnSelect(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
               void*) {
  unsigned char* sel = nullptr;
  if (SSL_select_next_proto(&sel, outlen, kAlpnHttp11, sizeof kAlpnHttp11, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;  // no common protocol: go on without ALPN
}

void commonOptions(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_cipher_list(ctx, kCiphers12);
}

int sessionKeyIndex() {
  static const int idx = SSL_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<std::string*>(ptr);
      });
  return idx;
}
int clientContextIndex() {
  static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

bool isIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

Counters& counters() {
  static Counters c;
  return c;
}

std::string drainErrors() {
  std::string first;
  while (unsigned long e = ERR_get_error()) {
    counters().errors.fetch_add(1, std::memory_order_relaxed);
    if (first.empty()) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      const char* reason = ERR_reason_error_string(e);
      first = reason ? reason : buf;
    }
  }
  return first;
}

bool kernelTlsAvailable() {
  // Setting the ULP needs a connected TCP socket: a loopback pair, once.
  static const bool available = [] {
    int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (l >= 0 && c >= 0 && ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(l, 1) == 0 &&
        ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0 &&
        ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      ok = ::setsockopt(c, IPPROTO_TCP, TCP_ULP, "tls", sizeof "tls") == 0;
    }
    if (l >= 0) ::close(l);
    if (c >= 0) ::close(c);
    return ok;
  }();
  return available;
}

CtxPtr makeServerContext(const std::string& certPath, const std::string& keyPath, std::string* error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    *error = "cannot make a TLS context: " + drainErrors();
    return nullptr;
  }
  CtxPtr holder(ctx, SslCtxFree{});
  commonOptions(ctx);
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  // TLS 1.3: AES-128-GCM first (as Mozilla's "modern" list has it): as
  // strong as anything a Mac offers and the cheapest per byte with AES-NI.
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384");
  if (SSL_CTX_use_certificate_chain_file(ctx, certPath.c_str()) != 1) {
    *error = "tls.certificate " + certPath + ": " + drainErrors();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, keyPath.c_str(), SSL_FILETYPE_PEM) != 1) {
    *error = "tls.private_key " + keyPath + ": " + drainErrors();
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    *error = "tls.private_key " + keyPath + " does not match tls.certificate " + certPath + ": " + drainErrors();
    return nullptr;
  }
  SSL_CTX_set_alpn_select_cb(ctx, alpnSelect, nullptr);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticketCallback);
  // Tickets only (stateless): no server-side session cache to grow.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_timeout(ctx, 36 * 3600);
  return holder;
}

SSL* newServerSsl(SSL_CTX* ctx) {
  SSL* ssl = SSL_new(ctx);
  if (ssl) SSL_set_accept_state(ssl);
  else drainErrors();
  return ssl;
}

std::shared_ptr<ClientContext> ClientContext::create(const std::string& caFile, std::string* error) {
  std::shared_ptr<ClientContext> c(new ClientContext);
  c->caFile_ = caFile;
  c->ctx_ = SSL_CTX_new(TLS_client_method());
  if (!c->ctx_) {
    *error = "cannot make a TLS context: " + drainErrors();
    return nullptr;
  }
  commonOptions(c->ctx_);
  SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_set_default_verify_paths(c->ctx_) != 1) drainErrors();  // no system store: only ca_file
  if (!caFile.empty() && SSL_CTX_load_verify_locations(c->ctx_, caFile.c_str(), nullptr) != 1) {
    *error = "upstream.ca_file " + caFile + ": " + drainErrors();
    return nullptr;
  }
  SSL_CTX_set_alpn_protos(c->ctx_, kAlpnHttp11, sizeof kAlpnHttp11);
  SSL_CTX_set_session_cache_mode(c->ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(c->ctx_, &ClientContext::onNewSession);
  SSL_CTX_set_ex_data(c->ctx_, clientContextIndex(), c.get());
  return c;
}

ClientContext::~ClientContext() {
  for (auto& [key, s] : sessions_) SSL_SESSION_free(s);
  if (ctx_) SSL_CTX_free(ctx_);
}

size_t ClientContext::cachedSessions() {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

SSL* ClientContext::newSsl(const std::string& host, uint16_t port) {
  SSL* ssl = SSL_new(ctx_);
  if (!ssl) {
    drainErrors();
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  if (isIpLiteral(host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, host.c_str());
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(ssl, host.c_str());
  }
  auto* key = new std::string(host + ":" + std::to_string(port));
  SSL_set_ex_data(ssl, sessionKeyIndex(), key);
  std::lock_guard lock(mu_);
  if (auto it = sessions_.find(*key); it != sessions_.end()) SSL_set_session(ssl, it->second);
  return ssl;
}

int ClientContext::onNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* self = static_cast<ClientContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), clientContextIndex()));
  auto* key = static_cast<std::string*>(SSL_get_ex_data(ssl, sessionKeyIndex()));
  if (!self || !key) return 0;
  std::lock_guard lock(self->mu_);
  SSL_SESSION*& slot = self->sessions_[*key];
  if (slot) SSL_SESSION_free(slot);
  slot = session;
  return 1;  // we keep the reference OpenSSL gave us
}

std::string fingerprintSha256(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!cert || X509_digest(cert, EVP_sha256(), md, &n) != 1) return "";
  std::string out;
  char b[4];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, i ? ":%02X" : "%02X", md[i]);
    out += b;
  }
  return out;
}

std::string fingerprintOfPemFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return "";
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!cert) {
    drainErrors();
    return "";
  }
  std::string fp = fingerprintSha256(cert);
  X509_free(cert);
  return fp;
}

}  // namespace orchard::server::tls
