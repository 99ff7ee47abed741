// Apple's chunklist parser and the streaming verifier (see chunklist.h).
//
// The verifier's one state: (index_, inChunk_) names the chunk being hashed
// and how much of it has gone into the SHA-256 context. A write may end
// mid-chunk, span chunks or cover several; each completed chunk is
// finalised, compared and the context started again. Once failed_ is set
// nothing changes any more: the first failure is the one reported.
//
// The SHA-256 context is libcrypto's EVP (the only OpenSSL header catalog/
// uses here). An EVP call failing on a valid context is not something the
// input can cause, but it is handled as a verification failure rather than
// asserted, so a broken libcrypto cannot make a package look verified.
#include "catalog/apple/chunklist.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

namespace orchard::catalog::apple {

namespace {

uint32_t le32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

uint64_t le64(const unsigned char* p) { return uint64_t(le32(p)) | uint64_t(le32(p + 4)) << 32; }

constexpr uint8_t kFileVersion = 1;
constexpr uint8_t kMethodSha256 = 1;

}  // namespace

uint64_t Chunklist::totalSize() const {
  uint64_t total = 0;
  for (const Chunk& c : chunks) total += c.size;
  return total;
}

Result<Chunklist> parseChunklist(std::string_view bytes) {
  if (bytes.size() > kChunklistMaxBytes) return Error{Errc::Invalid, 0, "chunklist: larger than 8 MiB"};
  if (bytes.size() < kChunklistHeaderSize) return Error{Errc::Invalid, 0, "chunklist: shorter than its header"};
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (le32(p) != kChunklistMagic) return Error{Errc::Invalid, 0, "chunklist: bad magic"};
  if (le32(p + 4) != kChunklistHeaderSize) return Error{Errc::Invalid, 0, "chunklist: unexpected header size"};
  if (p[8] != kFileVersion) return Error{Errc::Invalid, 0, "chunklist: unknown file version"};
  if (p[9] != kMethodSha256) return Error{Errc::Invalid, 0, "chunklist: chunks are not hashed with SHA-256"};
  const uint64_t count = le64(p + 12);
  const uint64_t offset = le64(p + 20);
  const uint64_t signatureOffset = le64(p + 28);
  if (count == 0) return Error{Errc::Invalid, 0, "chunklist: no chunks"};
  if (offset < kChunklistHeaderSize) return Error{Errc::Invalid, 0, "chunklist: entries overlap the header"};
  // Both bounds before any multiplication: count and offset are the input's.
  const uint64_t size = bytes.size();
  if (offset > size || count > (size - offset) / kChunklistEntrySize)
    return Error{Errc::Invalid, 0, "chunklist: entries run past the end"};
  const uint64_t entriesEnd = offset + count * kChunklistEntrySize;
  if (signatureOffset != 0 && (signatureOffset < entriesEnd || signatureOffset > size))
    return Error{Errc::Invalid, 0, "chunklist: signature offset overlaps the entries or the end"};

  Chunklist list;
  list.chunks.reserve(count);  // bounded above by bytes.size() / 36
  for (uint64_t i = 0; i < count; ++i) {
    const unsigned char* e = p + offset + i * kChunklistEntrySize;
    Chunk c;
    c.size = le32(e);
    if (c.size == 0) return Error{Errc::Invalid, 0, "chunklist: a chunk of size 0"};
    std::memcpy(c.sha256.data(), e + 4, c.sha256.size());
    list.chunks.push_back(c);
  }
  return list;
}

struct ChunkVerifier::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

ChunkVerifier::ChunkVerifier(Chunklist list) : list_(std::move(list)), ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (!ctx_->md || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) {
    failed_ = true;
    failure_ = "cannot start SHA-256";
  }
}

ChunkVerifier::~ChunkVerifier() = default;

bool ChunkVerifier::update(const char* data, size_t n) {
  if (failed_) return false;
  while (n > 0) {
    if (index_ >= list_.chunks.size()) {
      failed_ = true;
      failure_ = "more bytes than the chunklist covers (" + std::to_string(list_.totalSize()) + ")";
      return false;
    }
    const Chunk& chunk = list_.chunks[index_];
    const size_t take = static_cast<size_t>(std::min<uint64_t>(n, chunk.size - inChunk_));
    if (EVP_DigestUpdate(ctx_->md, data, take) != 1) {
      failed_ = true;
      failure_ = "SHA-256 update failed";
      return false;
    }
    data += take;
    n -= take;
    inChunk_ += take;
    seen_ += take;
    if (inChunk_ < chunk.size) break;
    std::array<uint8_t, 32> got{};
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_->md, got.data(), &len) != 1 || len != got.size() ||
        EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) {
      failed_ = true;
      failure_ = "SHA-256 finalisation failed";
      return false;
    }
    if (got != chunk.sha256) {
      failed_ = true;
      const uint64_t end = seen_ - 1;
      const uint64_t start = seen_ - chunk.size;
      failure_ = "chunk " + std::to_string(index_) + " of " + std::to_string(list_.chunks.size()) + " (bytes " +
                 std::to_string(start) + "-" + std::to_string(end) + ") does not match its SHA-256";
      return false;
    }
    ++index_;
    inChunk_ = 0;
  }
  return true;
}

bool ChunkVerifier::finish() {
  if (failed_) return false;
  if (index_ != list_.chunks.size()) {
    failed_ = true;
    failure_ = "the data ended in chunk " + std::to_string(index_) + " of " + std::to_string(list_.chunks.size()) +
               " after " + std::to_string(seen_) + " of " + std::to_string(list_.totalSize()) + " bytes";
    return false;
  }
  return true;
}

}  // namespace orchard::catalog::apple
