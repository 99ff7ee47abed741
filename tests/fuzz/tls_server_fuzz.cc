// Fuzz target: the TLS record path of an HTTPS listener. The input is what
// a client sends (a ClientHello and whatever follows), fed to a server-side
// TlsStream (server/net/tls_stream.h) through its memory BIO in chunks
// whose sizes the first byte picks, over an in-memory inner stream, with
// the box's own certificate (made once in a temporary directory).
//
// Invariants beyond "no crash, no leak (ASan)":
//   - the stream never delivers plaintext: no input can finish a handshake
//     (the fuzzer cannot compute a Finished), so onStreamData never runs;
//   - a broken stream says why (failure() is not empty) and reports it once;
//   - what the server wrote back stays bounded (its flight and an alert);
//   - no OpenSSL error is left on the thread's queue afterwards;
//   - close() frees everything (one loop run).
#include <openssl/err.h>
#include <stdlib.h>
#include <uv.h>

#include <cstdint>
#include <ctime>
#include <string>

#include "server/net/local_ca.h"
#include "server/net/stream.h"
#include "server/net/tls_context.h"
#include "server/net/tls_stream.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace orchard::server;

// The inner stream: takes every write, remembers the reader.
class MemStream final : public Stream {
 public:
  StreamReader* reader = nullptr;
  size_t written = 0;
  int startReading(StreamReader* r) override {
    reader = r;
    reading_ = true;
    return 0;
  }
  void stopReading() override { reading_ = false; }
  int tryWrite(const uv_buf_t* bufs, unsigned n) override {
    size_t t = 0;
    for (unsigned i = 0; i < n; ++i) t += bufs[i].len;
    written += t;
    return static_cast<int>(t);
  }
  int write(const uv_buf_t* bufs, unsigned n, Completion done) override {
    tryWrite(bufs, n);
    pending_ = done;
    return 0;
  }
  int writeOwned(std::string data, Completion done) override {
    written += data.size();
    if (done.fn) pending_ = done;
    return 0;
  }
  size_t queuedBytes() const override { return 0; }
  int shutdown(Completion done) override {
    pending_ = done;
    return 0;
  }
  void close(Completion closed) override {
    Completion p = pending_;
    delete this;
    p(UV_ECANCELED);
    closed(0);
  }
  int peerAddress(struct sockaddr_storage*) const override { return UV_ENOTCONN; }

 private:
  ~MemStream() override = default;
  Completion pending_;
};

struct Reader final : StreamReader {
  size_t data = 0;
  int errors = 0;
  int ends = 0;
  void onStreamData(const char*, size_t n) override { data += n; }
  void onStreamEnd() override { ++ends; }
  void onStreamError(int) override { ++errors; }
};

struct Setup {
  uv_loop_t loop;
  orchard::server::tls::CtxPtr ctx;
  Setup() {
    uv_loop_init(&loop);
    char tmpl[] = "/tmp/orchard-fuzz-tls-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    orchard::server::tls::LocalCertificate cert;
    std::string err;
    if (!orchard::server::tls::ensureLocalCertificate(tmpl, {"localhost"}, {"127.0.0.1"}, std::time(nullptr), &cert,
                                                       &err))
      std::abort();
    ctx = orchard::server::tls::makeServerContext(cert.certPath, cert.keyPath, &err);
    if (!ctx) std::abort();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Setup setup;
  if (size == 0) return 0;
  const size_t chunk = 1 + (data[0] % 64) * 37;  // 1 .. 2332 bytes per inner read
  ++data;
  --size;

  auto* inner = new MemStream;
  TlsStream* s = TlsStream::create(&setup.loop, inner, orchard::server::tls::newServerSsl(setup.ctx.get()));
  Reader reader;
  s->startReading(&reader);
  for (size_t off = 0; off < size && inner->reader; off += chunk) {
    const size_t n = size - off < chunk ? size - off : chunk;
    if (!inner->reading()) break;
    inner->reader->onStreamData(reinterpret_cast<const char*>(data) + off, n);
    uv_run(&setup.loop, UV_RUN_NOWAIT);
    if (reader.errors) break;
  }
  FUZZ_CHECK(reader.data == 0, "plaintext delivered without a finished handshake (%zu bytes)", reader.data);
  FUZZ_CHECK(reader.errors <= 1, "the break was reported %d times", reader.errors);
  FUZZ_CHECK(reader.errors == 0 || !s->failure().empty(), "a broken stream with no reason");
  FUZZ_CHECK(inner->written < 64 * 1024, "the server wrote %zu bytes back", inner->written);
  s->close(Completion{});
  uv_run(&setup.loop, UV_RUN_NOWAIT);
  FUZZ_CHECK(ERR_peek_error() == 0, "an OpenSSL error was left on the queue");
  return 0;
}
