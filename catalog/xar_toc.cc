// Reads a xar's header and table of contents itself (see xar_toc.h), for
// the signature check and to bound what libarchive is later given.
//
// Hard parts: the header's TOC lengths are attacker-chosen u64s, so they
// are checked against kMaxTocBytes and the file size before any buffer is
// sized from them; the uncompressed length must match what zlib produces
// exactly (zlib's uncompress() refuses to write more than it was given
// room for, which is what bounds a zlib bomb). Certificates arrive as
// base64 text with line breaks, which EVP_DecodeBlock does not skip.
#include "catalog/xar_toc.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "catalog/safe_xml.h"

namespace orchard::catalog {

namespace {

class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string_view b) : bytes_(b) {}
  uint64_t size() const override { return bytes_.size(); }
  Result<std::string> readAt(uint64_t offset, size_t n) const override {
    if (offset > bytes_.size() || n > bytes_.size() - offset)
      return Error{Errc::Invalid, 0, "xar: a range runs past the end of the file"};
    return std::string(bytes_.substr(offset, n));
  }

 private:
  std::string_view bytes_;
};

class FileSource final : public ByteSource {
 public:
  FileSource(int fd, uint64_t size) : fd_(fd), size_(size) {}
  ~FileSource() override { ::close(fd_); }
  uint64_t size() const override { return size_; }
  Result<std::string> readAt(uint64_t offset, size_t n) const override {
    if (offset > size_ || n > size_ - offset)
      return Error{Errc::Invalid, 0, "xar: a range runs past the end of the file"};
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd_, out.data() + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Error{Errc::Io, errno, "xar: cannot read the file"};
      if (r == 0) return Error{Errc::Invalid, 0, "xar: the file ended early"};
      got += static_cast<size_t>(r);
    }
    return out;
  }

 private:
  int fd_;
  uint64_t size_;
};

uint16_t be16(const unsigned char* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const unsigned char* p) { return uint32_t{be16(p)} << 16 | be16(p + 2); }
uint64_t be64(const unsigned char* p) { return uint64_t{be32(p)} << 32 | be32(p + 4); }

constexpr size_t kHeaderSize = 28;
constexpr size_t kNamedHeaderSize = kHeaderSize + 36;

Result<std::string> decodeBase64(std::string_view text) {
  std::string clean;
  clean.reserve(text.size());
  for (char c : text)
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') clean.push_back(c);
  if (clean.empty() || clean.size() % 4 != 0 || clean.size() > (256u << 10))
    return Error{Errc::Invalid, 0, "xar: a signing certificate is not base64"};
  std::string out(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) {
    ERR_clear_error();
    return Error{Errc::Invalid, 0, "xar: a signing certificate is not base64"};
  }
  size_t pad = clean.ends_with("==") ? 2 : clean.ends_with("=") ? 1 : 0;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

Result<HeapRange> heapRange(xml::Node n, const char* what) {
  HeapRange r;
  std::string off = xml::text(xml::firstChild(n, "offset"));
  std::string size = xml::text(xml::firstChild(n, "size"));
  char* end = nullptr;
  errno = 0;
  r.offset = std::strtoull(off.c_str(), &end, 10);
  bool good = !off.empty() && off[0] != '-' && *end == '\0' && errno == 0;
  r.size = std::strtoull(size.c_str(), &end, 10);
  good = good && !size.empty() && size[0] != '-' && *end == '\0' && errno == 0;
  if (!good) return Error{Errc::Invalid, 0, what};
  return r;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

}  // namespace

std::unique_ptr<ByteSource> ByteSource::ofMemory(std::string_view bytes) {
  return std::make_unique<MemorySource>(bytes);
}

Result<std::unique_ptr<ByteSource>> ByteSource::ofFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{errno == ENOENT ? Errc::NotFound : Errc::Io, errno, "package: cannot open the file"};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int err = errno ? errno : EINVAL;
    ::close(fd);
    return Error{Errc::Io, err, "package: not a regular file"};
  }
  return std::unique_ptr<ByteSource>(std::make_unique<FileSource>(fd, static_cast<uint64_t>(st.st_size)));
}

bool looksLikeXar(const ByteSource& src) {
  auto head = src.readAt(0, 4);
  return head && *head == "xar!";
}

Result<XarHeader> parseXarHeader(std::string_view head) {
  if (head.size() < kHeaderSize) return Error{Errc::Invalid, 0, "xar: truncated header"};
  const auto* p = reinterpret_cast<const unsigned char*>(head.data());
  if (std::memcmp(p, "xar!", 4) != 0) return Error{Errc::Invalid, 0, "xar: no xar! magic"};
  XarHeader h;
  h.size = be16(p + 4);
  h.version = be16(p + 6);
  h.tocCompressed = be64(p + 8);
  h.tocUncompressed = be64(p + 16);
  h.cksumAlg = be32(p + 24);
  if (h.size < kHeaderSize || h.size > 4096) return Error{Errc::Invalid, 0, "xar: implausible header size"};
  if (h.version != 1) return Error{Errc::Invalid, 0, "xar: unknown header version"};
  switch (h.cksumAlg) {
    case 0: h.cksumName = "none"; break;
    case 1: h.cksumName = "sha1"; break;
    case 2: h.cksumName = "md5"; break;
    case 3:
      if (h.size >= kNamedHeaderSize) {
        if (head.size() < kNamedHeaderSize) return Error{Errc::Invalid, 0, "xar: truncated header"};
        std::string_view n = head.substr(kHeaderSize, 36);
        h.cksumName = lower(std::string(n.substr(0, n.find('\0'))));
      } else {
        h.cksumName = "sha256";  // Apple's xar: 3 is SHA-256 in a 28-byte header
      }
      break;
    case 4: h.cksumName = "sha512"; break;
    default: return Error{Errc::Invalid, 0, "xar: unknown checksum algorithm"};
  }
  if (h.tocCompressed == 0) return Error{Errc::Invalid, 0, "xar: empty table of contents"};
  if (h.tocCompressed > kMaxTocBytes || h.tocUncompressed > kMaxTocBytes)
    return Error{Errc::Invalid, 0, "xar: table of contents over 16 MiB"};
  return h;
}

Result<XarToc> readXarToc(const ByteSource& src) {
  const uint64_t want = src.size() < kNamedHeaderSize ? src.size() : kNamedHeaderSize;
  auto head = src.readAt(0, want);
  if (!head) return head.error();
  auto header = parseXarHeader(*head);
  if (!header) return header.error();
  XarToc toc;
  toc.header = std::move(*header);
  const XarHeader& h = toc.header;
  if (h.size > src.size() || h.tocCompressed > src.size() - h.size)
    return Error{Errc::Invalid, 0, "xar: table of contents runs past the end of the file"};
  auto compressed = src.readAt(h.size, h.tocCompressed);
  if (!compressed) return compressed.error();
  toc.compressed = std::move(*compressed);
  toc.heapStart = h.size + h.tocCompressed;

  std::string xmlText(h.tocUncompressed, '\0');
  uLongf outLen = static_cast<uLongf>(xmlText.size());
  int z = ::uncompress(reinterpret_cast<Bytef*>(xmlText.data()), &outLen,
                       reinterpret_cast<const Bytef*>(toc.compressed.data()), static_cast<uLong>(toc.compressed.size()));
  if (z == Z_BUF_ERROR && outLen == xmlText.size())
    return Error{Errc::Invalid, 0, "xar: table of contents is longer than the header says"};
  if (z != Z_OK) return Error{Errc::Invalid, z, "xar: table of contents is not zlib data"};
  if (outLen != xmlText.size()) return Error{Errc::Invalid, 0, "xar: table of contents is shorter than the header says"};

  auto doc = xml::parseUntrusted(xmlText, "xar: table of contents is not well-formed XML");
  if (!doc) return doc.error();
  xml::Node t = xml::firstChild(xml::root(*doc), "toc");
  if (xml::name(xml::root(*doc)) != "xar" || !t) return Error{Errc::Invalid, 0, "xar: no <xar><toc> element"};
  toc.files = xml::countDescendants(t, "file");
  if (toc.files > kMaxXarEntries) return Error{Errc::Invalid, 0, "xar: more than 100000 entries"};

  if (xml::Node c = xml::firstChild(t, "checksum")) {
    toc.checksumStyle = lower(xml::attr(c, "style"));
    auto r = heapRange(c, "xar: <checksum> has no valid offset and size");
    if (!r) return r.error();
    toc.checksum = *r;
  }
  if (xml::Node s = xml::firstChild(t, "signature")) {
    toc.hasSignature = true;
    toc.signatureStyle = xml::attr(s, "style");
    auto r = heapRange(s, "xar: <signature> has no valid offset and size");
    if (!r) return r.error();
    toc.signature = *r;
    for (xml::Node cert : xml::descendants(s, "X509Certificate")) {
      if (toc.certificates.size() == kMaxSignatureCerts)
        return Error{Errc::Invalid, 0, "xar: more than 16 signing certificates"};
      auto der = decodeBase64(xml::text(cert));
      if (!der) return der.error();
      toc.certificates.push_back(std::move(*der));
    }
  }
  return toc;
}

}  // namespace orchard::catalog
