// Apple's chunklist (IntegrityDataURL): a binary file that lists, for
// consecutive chunks of a package, each chunk's size and SHA-256.
//
// Layout (little-endian):
//   header (36 bytes): magic u32 = 0x4C4B4E43 ("CNKL"), headerSize u32 (36),
//     fileVersion u8 (1), chunkMethod u8 (1 = SHA-256), signatureMethod u8,
//     padding u8, chunkCount u64, chunkOffset u64, signatureOffset u64
//   chunkCount entries at chunkOffset: size u32, sha256 [32]
//   a signature at signatureOffset (not checked here)
//
// Hostile input: counts and offsets are checked against the bytes actually
// given, never trusted to size an allocation. Pure.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace orchard::catalog::apple {

inline constexpr uint32_t kChunklistMagic = 0x4C4B4E43;
inline constexpr size_t kChunklistHeaderSize = 36;
inline constexpr size_t kChunklistEntrySize = 36;
// Larger chunklists are refused (a 15 GB package in Apple's ~10 MiB chunks
// has ~1,500 entries, 54 KiB).
inline constexpr size_t kChunklistMaxBytes = 8u << 20;

struct Chunk {
  uint32_t size = 0;
  std::array<uint8_t, 32> sha256{};
};

struct Chunklist {
  std::vector<Chunk> chunks;
  uint64_t totalSize() const;  // sum of the chunk sizes
};

// Errc::Invalid with a static context naming what is wrong ("chunklist:
// bad magic", "chunklist: entries run past the end", ...).
Result<Chunklist> parseChunklist(std::string_view bytes);

// Checks a byte stream against a chunklist as it passes, in any split of
// writes, holding one SHA-256 context (no copy of the data).
class ChunkVerifier {
 public:
  explicit ChunkVerifier(Chunklist list);
  ~ChunkVerifier();
  ChunkVerifier(const ChunkVerifier&) = delete;
  ChunkVerifier& operator=(const ChunkVerifier&) = delete;

  // False once a chunk's digest did not match or more bytes came than the
  // list covers; failure() then says which chunk.
  bool update(const char* data, size_t n);
  // True when every chunk was seen whole and matched.
  bool finish();
  const std::string& failure() const { return failure_; }
  uint64_t bytesSeen() const { return seen_; }

 private:
  struct Ctx;
  Chunklist list_;
  std::unique_ptr<Ctx> ctx_;
  size_t index_ = 0;        // chunk being hashed
  uint64_t inChunk_ = 0;    // bytes of it hashed so far
  uint64_t seen_ = 0;
  bool failed_ = false;
  std::string failure_;
};

}  // namespace orchard::catalog::apple
