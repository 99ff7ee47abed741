// TLS contexts: the server side of the `[tls] listen` addresses and the
// client side of HTTPS origins, both OpenSSL (Debian's libssl), both used
// through TlsStream (tls_stream.h).
//
// Server defaults: TLS 1.2 and 1.3 only; in 1.2 only ECDHE key exchange with
// AEAD ciphers (AES-GCM, ChaCha20-Poly1305): no RSA key exchange, no CBC;
// the server's cipher order; no renegotiation, no compression; ALPN
// `http/1.1` (a client offering only other protocols is answered without
// ALPN, never refused for it); session tickets sealed with a process-wide
// key ring that rotates every 12 hours and accepts the two previous keys, so
// a ticket lives at most 36 hours and a reload (a new SSL_CTX for a renewed
// certificate) keeps resumption working; SSL_MODE_RELEASE_BUFFERS, so an
// idle keep-alive connection holds no record buffers.
//
// Client defaults: TLS 1.2 and 1.3, the system CA store plus
// `upstream.ca_file`, peer verification always on (there is no way to turn
// it off), SNI and the host name (or IP address) checked against the
// certificate, and a session cache per origin (host:port) so a new pooled
// connection resumes instead of a full handshake.
//
// Kernel TLS: OpenSSL's kTLS needs a socket BIO (SSL_set_fd), which would
// take the socket away from libuv; over memory BIOs every record is
// encrypted in user space. kernelTlsAvailable() reports whether this kernel
// offers the `tls` ULP at all (this machine's does not), and each
// connection counts which path it took (always user space today).
#pragma once

#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace orchard::server::tls {

// Process-wide, summed nowhere else: each is touched once per handshake or
// per error, never per byte.
struct Counters {
  std::atomic<uint64_t> handshakes{0};          // completed, both roles
  std::atomic<uint64_t> handshake_failures{0};  // both roles
  std::atomic<uint64_t> resumed{0};             // completed by resumption
  std::atomic<uint64_t> verify_failures{0};     // origin certificates refused
  std::atomic<uint64_t> errors{0};              // OpenSSL error queue entries drained
  std::atomic<uint64_t> userspace_connections{0};  // records encrypted in user space
  std::atomic<uint64_t> ktls_connections{0};       // records encrypted by the kernel
};
Counters& counters();

// Pops every entry of this thread's OpenSSL error queue, counting each;
// returns the first as text ("" when the queue was empty).
std::string drainErrors();

// Whether the kernel offers the `tls` upper-layer protocol (probed once).
bool kernelTlsAvailable();

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using CtxPtr = std::shared_ptr<SSL_CTX>;

// A server context for `certPath` (PEM chain, leaf first) and `keyPath`.
// Null with *error set when a file cannot be read or the key does not
// match the certificate.
CtxPtr makeServerContext(const std::string& certPath, const std::string& keyPath, std::string* error);
// A new server-side SSL for one accepted connection (accept state).
SSL* newServerSsl(SSL_CTX* ctx);

// The client side: one per process (and per upstream.ca_file value).
class ClientContext {
 public:
  // Null with *error set when caFile is named but cannot be read.
  static std::shared_ptr<ClientContext> create(const std::string& caFile, std::string* error);
  ~ClientContext();
  // A new SSL in connect state for host:port: SNI (for a name, not an IP
  // literal), the certificate checked against `host`, and the last session
  // this origin gave us, if any.
  SSL* newSsl(const std::string& host, uint16_t port);
  const std::string& caFile() const { return caFile_; }
  size_t cachedSessions();

 private:
  ClientContext() = default;
  static int onNewSession(SSL* ssl, SSL_SESSION* session);
  SSL_CTX* ctx_ = nullptr;
  std::string caFile_;
  std::mutex mu_;
  std::unordered_map<std::string, SSL_SESSION*> sessions_;  // "host:port" -> last session
};

// SHA-256 of a certificate's DER, as upper-case hex pairs joined by ':'.
std::string fingerprintSha256(X509* cert);
// The same for the first certificate of a PEM file ("" when unreadable).
std::string fingerprintOfPemFile(const std::string& path);

}  // namespace orchard::server::tls
