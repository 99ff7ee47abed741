// BodySender: the one body loop. It sends a response body made of segments
// (the whole body, one range, or the parts of a multipart/byteranges) from
// one of two sources:
//   - a stored file (fd_), each block checked against its checksum before
//     its first send (Store::ensureVerified), or
//   - a fill in flight (fill_), read past this reader's cursor as the
//     fetchers land bytes, waiting (STYLE pattern 3: "give me bytes past my
//     cursor, or register me") when none are there yet.
// One reused buffer from the loop's BufferPool, one write in flight: memory
// per response is that buffer (256 KiB) whatever the object size, and a
// slow client only slows its own cursor. Under buffer pressure (many
// clients that stopped reading) writes are bounded to 16 KiB queued per
// connection.
//
// Stored files: the loop never waits for the disk. A read is tried with
// RWF_NOWAIT (page cache only); bytes not cached, and blocks whose checksum
// was not verified yet in this generation, are verified and read on the
// thread pool (DiskRead), then written like any other. Where the stream
// has a kernel path (TcpStream with ORCHARD_SEND_PATH=sendfile or splice)
// and more than one buffer is left, verified bytes the page cache holds
// (cachestat) go by sendFile() instead, holding no buffer; a stream or file
// that refuses it (TLS, EINVAL) is copied. Fills in flight are always
// copied (Fill::read picks the file or the relay window).
//
// It is the hit fast path and the path of every body the box sends from a
// file: the proxy's Transaction derives from it, and so will the handlers
// that serve published packages. A deriving class fills segs_ / headOut_ /
// the source, calls beginBody(), and implements finish() (the response
// ended; clean = its framing is complete) and fetchFrom() (a fill needs a
// fetcher for bytes no fetcher will bring soon).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cache/fill.h"
#include "cache/key.h"
#include "cache/object_meta.h"
#include "cache/range.h"
#include "server/http/handler.h"

namespace orchard::server {

struct WorkerContext;

class BodySender {
 public:
  struct Segment {
    std::string prefix;  // written before the bytes (multipart part headers)
    uint64_t first = 0;
    uint64_t end = 0;    // exclusive; kToEnd: to the end of a body of unknown length
  };
  static constexpr uint64_t kToEnd = UINT64_MAX;

 protected:
  BodySender(WorkerContext* wc, ResponseWriter* w) : wc_(wc), conn_(w) {}
  // Where the body bytes are counted besides bytes_to_clients when the
  // client is a cache (bytes_to_children, bytes_to_peers); null otherwise.
  std::atomic<uint64_t>* cacheClientBytes_ = nullptr;
  virtual ~BodySender();
  virtual void finish(bool clean) = 0;
  virtual void fetchFrom(const cache::Fill::Fetch& fetch) = 0;

  // For a Partial or Unsatisfiable range result against a body of `length`:
  // lays out segs_ (one range, or the parts of a multipart/byteranges with
  // trailer_), sets *status to 206 or 416 (then *noBody), and returns the
  // framing headers (Content-Range / Content-Type / Content-Length).
  std::string layoutRanges(const cache::RangeResult& rr, uint64_t length, std::string_view contentType, int* status,
                           bool* noBody);
  // Takes a buffer and starts sending segs_ (headOut_ goes with the first bytes).
  void beginBody();
  void pump();
  void flushHead();  // writes headOut_ alone (before a wait, a prefix or the end)
  void bodyWritten(int status);
  void releaseBuffer();
  void closeFile();  // gives the stored file back (OpenFileCache) or closes it
  bool sendKernel(int fd, uint64_t avail);
  bool armWritable(size_t pending);
  // Reads that would wait for the disk leave the loop: blocks not verified
  // yet (verifying reads them) or bytes not in the page cache are verified
  // and read into buf_ on the thread pool, then written like any copy.
  bool rangeVerified(uint64_t off, uint64_t len) const;
  void readOffLoop(int fd, size_t want);
  struct DiskRead;
  void diskReadDone(DiskRead* r);

  WorkerContext* wc_;
  ResponseWriter* conn_;  // null once the connection closed
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  cache::CacheKey key_;  // the object whose bytes are sent

  // Source: a fill ...
  std::shared_ptr<cache::Fill> fill_;
  static constexpr uint32_t kNoCursor = UINT32_MAX;
  uint32_t fillCursor_ = kNoCursor;  // this reader's cursor in fill_ (relay backpressure)
  // ... or a stored file.
  int fd_ = -1;  // owned, or borrowed from the loop's OpenFileCache
  bool cachedFd_ = false;
  uint64_t fdGen_ = 0;
  std::shared_ptr<void> pin_;  // keeps the object from eviction while it is read
  std::shared_ptr<const cache::ObjectMeta> storedMeta_;  // its checksums and verified blocks

  // The body.
  std::vector<Segment> segs_;
  size_t seg_ = 0;
  bool prefixSent_ = false;
  std::string trailer_;      // multipart closing boundary
  uint64_t cursor_ = 0;
  bool chunkedOut_ = false;  // client framing when the length is unknown
  bool wholeBody_ = false;   // a 200 with the whole body (not a range)
  bool writing_ = false;
  bool finished_ = false;
  std::string headOut_;      // response head not written yet: goes out with the first bytes
  uint64_t bytesSent_ = 0;

  // Kernel path (sendfile) for stored files: per sendfile call, and per run
  // of calls before the loop is yielded to other connections.
  static constexpr size_t kKernelChunk = 2 << 20;
  static constexpr uint64_t kKernelBurst = 8 << 20;
  bool kernelPath_ = true;  // false once the stream or file refused it (copy the rest)
  uint64_t burst_ = 0;      // kernel-path bytes since the loop last turned
  size_t ready_ = 0;        // bytes at cursor_ already in buf_ (read off the loop)

 private:
  char* buf_ = nullptr;            // borrowed from the worker's BufferPool
  std::unique_ptr<char[]> small_;  // chunked answers under memory pressure: 16 KiB reads instead
  char chunkHead_[24];
  std::string headInFlight_;  // the head inside the body write in flight
};

}  // namespace orchard::server
