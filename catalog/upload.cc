// Upload: one package file streaming to disk (see catalog.h). The bytes are
// hashed in the same pass that writes them: SHA-256 of the whole file and
// of each 10 MiB chunk (the manifest's sha256s), so a 15 GB installer is
// read once and never held in memory. Hard parts: a write that lands across
// a chunk boundary feeds two chunk digests; more bytes than declared is a
// refusal, not a bigger file; the two digests are two SHA-256 passes, so
// the handler runs writeWhole() and hashChunks() of one piece on two
// threads at once (they touch disjoint state); and an Upload that is dropped at any point
// (client gone, checksum wrong, disk full, daemon stopping) removes its temp
// file and returns its reservation.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "catalog/catalog.h"
#include "catalog/digest.h"
#include "common/log.h"

namespace orchard::catalog {

namespace {

std::string randomName() {
  std::random_device rd;
  unsigned char b[12];
  for (auto& c : b) c = static_cast<unsigned char>(rd());
  return hexLower(b, sizeof b);
}

}  // namespace

struct Upload::Hashers {
  EVP_MD_CTX* whole = EVP_MD_CTX_new();
  EVP_MD_CTX* chunk = EVP_MD_CTX_new();
  Hashers() {
    EVP_DigestInit_ex(whole, EVP_sha256(), nullptr);
    EVP_DigestInit_ex(chunk, EVP_sha256(), nullptr);
  }
  ~Hashers() {
    EVP_MD_CTX_free(whole);
    EVP_MD_CTX_free(chunk);
  }
  static std::string done(EVP_MD_CTX* c) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(c, d, &n);
    return hexLower(d, n);
  }
};

Upload::Upload(Catalog* c, std::string name, std::string version, std::string filename, uint64_t declared,
               std::string expectSha, uint64_t reserved)
    : catalog_(c),
      name_(std::move(name)),
      version_(std::move(version)),
      filename_(std::move(filename)),
      declared_(declared),
      expectSha_(std::move(expectSha)),
      reserved_(reserved),
      hash_(std::make_unique<Hashers>()) {
  path_ = c->options_.dir + "/tmp/" + randomName() + ".part";
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) OLOG_WARN("catalog: cannot create %s: %s", path_.c_str(), std::strerror(errno));
}

Upload::~Upload() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) {
    if (!path_.empty()) ::unlink(path_.c_str());
    catalog_->release(reserved_, name_ + '\0' + version_);
  }
}

std::optional<Problem> Upload::write(const char* data, size_t n) {
  if (auto p = writeWhole(data, n)) return p;
  hashChunks(data, n);
  return std::nullopt;
}

std::optional<Problem> Upload::writeWhole(const char* data, size_t n) {
  if (fd_ < 0) return Problem{Errc::Io, "cannot create the upload's temp file under storage.dir/packages/tmp"};
  if (n > declared_ - received_)
    return Problem{Errc::Invalid, "the body is longer than its Content-Length"};
  size_t off = 0;
  while (off < n) {
    ssize_t w = ::write(fd_, data + off, n - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOSPC || errno == EDQUOT) return Problem{Errc::NoSpace, "the disk is full"};
      return Problem{Errc::Io, std::string("writing the upload: ") + std::strerror(errno)};
    }
    off += static_cast<size_t>(w);
  }
  EVP_DigestUpdate(hash_->whole, data, n);
  received_ += n;
  return std::nullopt;
}

void Upload::hashChunks(const char* data, size_t n) {
  size_t at = 0;
  while (at < n) {
    const size_t take = static_cast<size_t>(std::min<uint64_t>(n - at, kChunkSize - chunkFill_));
    EVP_DigestUpdate(hash_->chunk, data + at, take);
    chunkFill_ += take;
    at += take;
    if (chunkFill_ == kChunkSize) {
      chunks_.push_back(Hashers::done(hash_->chunk));
      EVP_DigestInit_ex(hash_->chunk, EVP_sha256(), nullptr);
      chunkFill_ = 0;
    }
  }
}

std::optional<Problem> Upload::finish() {
  if (fd_ < 0) return Problem{Errc::Io, "cannot create the upload's temp file under storage.dir/packages/tmp"};
  if (received_ != declared_)
    return Problem{Errc::Invalid, "the body ended after " + std::to_string(received_) + " of " +
                                      std::to_string(declared_) + " bytes"};
  if (chunkFill_ > 0 || chunks_.empty()) chunks_.push_back(Hashers::done(hash_->chunk));
  chunkFill_ = 0;
  sha_ = Hashers::done(hash_->whole);
  if (!expectSha_.empty() && expectSha_ != sha_)
    return Problem{Errc::Invalid, "X-Checksum-Sha256 does not match: the body's SHA-256 is " + sha_};
  if (::fsync(fd_) != 0) {
    if (errno == ENOSPC || errno == EDQUOT) return Problem{Errc::NoSpace, "the disk is full"};
    return Problem{Errc::Io, std::string("fsync of the upload: ") + std::strerror(errno)};
  }
  finished_ = true;
  return std::nullopt;
}

}  // namespace orchard::catalog
