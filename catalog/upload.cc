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
//
// An import (Catalog::importFile) is an Upload whose temp file is a hard
// link to a file already on disk (adopt()): the same two halves hash it,
// takeWhole() without the write; only when the link is refused (another
// file system) do its bytes go through write() into a fresh temp file.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

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
               std::string expectSha, uint64_t reserved, bool createFile)
    : catalog_(c),
      name_(std::move(name)),
      version_(std::move(version)),
      filename_(std::move(filename)),
      declared_(declared),
      expectSha_(std::move(expectSha)),
      reserved_(reserved),
      hash_(std::make_unique<Hashers>()) {
  if (!createFile) return;
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

std::optional<Problem> Upload::writeWhole(const char* data, size_t n) { return takeWhole(data, n, true); }

std::optional<Problem> Upload::takeWhole(const char* data, size_t n, bool write) {
  if (fd_ < 0) return Problem{Errc::Io, "cannot create the upload's temp file under storage.dir/packages/tmp"};
  if (n > declared_ - received_)
    return Problem{Errc::Invalid, "the body is longer than its Content-Length"};
  size_t off = write ? 0 : n;
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

std::optional<Problem> Upload::feed(int src, bool write) {
  constexpr size_t kPiece = 4u << 20;
  std::vector<char> buf(kPiece);
  for (;;) {
    // Fill a whole piece (short reads are allowed) so each piece costs one
    // thread hand-off.
    size_t got = 0;
    while (got < kPiece) {
      ssize_t r = ::read(src, buf.data() + got, kPiece - got);
      if (r < 0) {
        if (errno == EINTR) continue;
        return Problem{Errc::Io, std::string("reading the file to import: ") + std::strerror(errno)};
      }
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    if (got == 0) return std::nullopt;
    // The two halves touch disjoint state (see writeWhole()).
    std::thread chunks([&] { hashChunks(buf.data(), got); });
    auto p = takeWhole(buf.data(), got, write);
    chunks.join();
    if (p) return p;
    if (got < kPiece) return std::nullopt;
  }
}

std::optional<Problem> Upload::adopt(const std::string& source) {
  const std::string tmp = catalog_->options_.dir + "/tmp/" + randomName() + ".part";
  auto check = [&](int fd) -> std::optional<Problem> {
    struct stat st;
    if (::fstat(fd, &st) != 0) return Problem{Errc::Io, std::string("stat of the file to import: ") + std::strerror(errno)};
    if (!S_ISREG(st.st_mode)) return Problem{Errc::Invalid, "the file to import is not a regular file"};
    if (static_cast<uint64_t>(st.st_size) != declared_)
      return Problem{Errc::Invalid, "the file to import is " + std::to_string(st.st_size) + " bytes, not the expected " +
                                        std::to_string(declared_)};
    return std::nullopt;
  };
  if (::link(source.c_str(), tmp.c_str()) == 0) {
    path_ = tmp;  // ours from here: the destructor unlinks it unless committed
    linked_ = true;
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return Problem{Errc::Io, std::string("opening the linked file: ") + std::strerror(errno)};
    if (auto p = check(fd_)) return p;
    (void)::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
    if (auto p = feed(fd_, /*write=*/false)) return p;
    return finish();
  }
  const int linkErr = errno;
  if (linkErr == ENOENT) return Problem{Errc::NotFound, "the file to import is gone (" + source + ")"};
  if (linkErr != EXDEV && linkErr != EPERM)
    return Problem{Errc::Io, "cannot link " + source + " into the catalog: " + std::strerror(linkErr)};
  OLOG_WARN("catalog: cannot hard-link %s into %s/tmp (%s): copying its bytes instead", source.c_str(),
            catalog_->options_.dir.c_str(), std::strerror(linkErr));
  int src = ::open(source.c_str(), O_RDONLY | O_CLOEXEC);
  if (src < 0) {
    if (errno == ENOENT) return Problem{Errc::NotFound, "the file to import is gone (" + source + ")"};
    return Problem{Errc::Io, "cannot open " + source + ": " + std::strerror(errno)};
  }
  auto p = check(src);
  if (!p) {
    path_ = tmp;
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      const int e = errno;
      path_.clear();
      p = Problem{e == ENOSPC || e == EDQUOT ? Errc::NoSpace : Errc::Io,
                  "cannot create a temp file under storage.dir/packages/tmp: " + std::string(std::strerror(e))};
    } else {
      (void)::posix_fadvise(src, 0, 0, POSIX_FADV_SEQUENTIAL);
      p = feed(src, /*write=*/true);
    }
  }
  ::close(src);
  if (p) return p;
  return finish();
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
    return Problem{Errc::Invalid, action_ == "import"
                                      ? "the expected sha256 does not match: the file's SHA-256 is " + sha_
                                      : "X-Checksum-Sha256 does not match: the body's SHA-256 is " + sha_};
  if (::fsync(fd_) != 0) {
    if (errno == ENOSPC || errno == EDQUOT) return Problem{Errc::NoSpace, "the disk is full"};
    return Problem{Errc::Io, std::string("fsync of the upload: ") + std::strerror(errno)};
  }
  finished_ = true;
  return std::nullopt;
}

}  // namespace orchard::catalog
