// The raw structure of a xar archive (a macOS flat package), read without
// libarchive so that the signature can be checked over the exact bytes:
//
//   header   28 bytes, big-endian: magic "xar!", header size (u16),
//            version (u16, 1), TOC length compressed (u64), uncompressed
//            (u64), checksum algorithm (u32: 0 none, 1 SHA-1, 2 MD5, 3 SHA-256
//            in Apple's xar or "other" with a 36-byte name after the 28 bytes
//            in the open-source one, 4 SHA-512 in Apple's)
//   TOC      zlib-compressed XML: <xar><toc><checksum>, <signature>, <file>...
//   heap     starts right after the compressed TOC; the TOC checksum and
//            the signature live at the offsets the TOC gives.
//
// Everything here is untrusted input: lengths are bounded before anything
// is allocated, and a structure that does not hold is Errc::Invalid.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace orchard::catalog {

// Random access to an archive's bytes: a file (pread) or a buffer.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Exactly `n` bytes at `offset`; Invalid when the range passes the end.
  virtual Result<std::string> readAt(uint64_t offset, size_t n) const = 0;

  // A view of `bytes`, which must outlive the source.
  static std::unique_ptr<ByteSource> ofMemory(std::string_view bytes);
  // NotFound/Io with errno when the file cannot be opened.
  static Result<std::unique_ptr<ByteSource>> ofFile(const std::string& path);
};

inline constexpr uint64_t kMaxTocBytes = 16ull << 20;  // compressed or not
inline constexpr size_t kMaxXarEntries = 100000;
inline constexpr size_t kMaxSignatureCerts = 16;

struct XarHeader {
  uint16_t size = 0;
  uint16_t version = 0;
  uint64_t tocCompressed = 0;
  uint64_t tocUncompressed = 0;
  uint32_t cksumAlg = 0;
  std::string cksumName;  // "none", "sha1", "md5", "sha256", "sha512", or the header's own name
};

// A range of the heap the TOC points at.
struct HeapRange {
  uint64_t offset = 0;
  uint64_t size = 0;
};

// What the TOC says about its own integrity and signature.
struct XarToc {
  XarHeader header;
  std::string compressed;  // the TOC bytes as stored: what the checksum covers
  uint64_t heapStart = 0;
  std::string checksumStyle;  // <checksum style=...>, lower case
  HeapRange checksum;
  bool hasSignature = false;
  std::string signatureStyle;  // "RSA"
  HeapRange signature;
  std::vector<std::string> certificates;  // DER, leaf first
  size_t files = 0;                       // <file> elements
};

// True when the source starts with "xar!": anything else is not a package
// (a .dmg, say) rather than a broken one.
bool looksLikeXar(const ByteSource& src);

// Parses the header; `head` holds at least the file's first 28 bytes (64
// when there are that many).
Result<XarHeader> parseXarHeader(std::string_view head);

// Reads the header and TOC and extracts the fields above. Invalid with a
// clear static message for a truncated header, a TOC past the end of the
// file or over kMaxTocBytes, a TOC that is not zlib data or not XML, more
// than kMaxXarEntries files.
Result<XarToc> readXarToc(const ByteSource& src);

}  // namespace orchard::catalog
