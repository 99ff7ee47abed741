// Reads a flat package's Distribution and PackageInfo files with libarchive
// and checks its signature (see pkg_reader.h).
//
// Order of work: the xar header and TOC are read and bounded by our own
// code first (xar_toc.h), so libarchive is only ever handed an archive
// whose TOC is at most 16 MiB and 100000 entries; then the signature is
// checked over the raw bytes; then libarchive walks the entries, reading
// only Distribution and the (top-level or one-directory-deep) PackageInfo
// files, each with a hard size cap, and skipping everything else. For a
// file, libarchive's skip seeks, so a multi-GB Payload costs nothing.
// libarchive re-checks the TOC checksum itself and refuses a mismatch;
// that refusal is reported as Corrupt, since our own check saw why.
#include "catalog/pkg_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <openssl/err.h>

#include <functional>
#include <memory>

#include "catalog/pkg_xml.h"
#include "catalog/xar_toc.h"

namespace orchard::catalog {

namespace {

struct ArchiveFree {
  void operator()(archive* a) const noexcept { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveFree>;
using OpenFn = std::function<int(archive*)>;

// Reads the current entry's data, refusing more than `limit` bytes.
Result<std::string> readEntry(archive* a, size_t limit, const char* tooBig) {
  std::string out;
  char buf[16384];
  while (true) {
    la_ssize_t n = archive_read_data(a, buf, sizeof buf);
    if (n == 0) return out;
    if (n < 0) return Error{Errc::Invalid, 0, "xar: an entry's data cannot be read"};
    if (out.size() + static_cast<size_t>(n) > limit) return Error{Errc::Invalid, 0, tooBig};
    out.append(buf, static_cast<size_t>(n));
  }
}

// "PackageInfo" at the top ("" in *dir) or "<dir>/PackageInfo" one level down.
bool packageInfoDir(std::string_view name, std::string* dir) {
  if (name == "PackageInfo") {
    dir->clear();
    return true;
  }
  constexpr std::string_view kTail = "/PackageInfo";
  if (!name.ends_with(kTail)) return false;
  std::string_view d = name.substr(0, name.size() - kTail.size());
  if (d.empty() || d.find('/') != std::string_view::npos) return false;
  *dir = std::string(d);
  return true;
}

struct Found {
  bool hasDistribution = false;
  DistributionInfo distribution;
  std::vector<FoundComponent> components;
};

Result<Found> readEntries(const OpenFn& open, bool tocChecksumBad, bool libarchiveKnowsSum) {
  ArchivePtr a(archive_read_new());
  if (!a) return Error{Errc::NoSpace, ENOMEM, "xar: cannot allocate a reader"};
  archive_read_support_format_xar(a.get());
  if (open(a.get()) != ARCHIVE_OK) {
    if (tocChecksumBad) return Error{Errc::Corrupt, 0, "xar: the table of contents does not match its checksum"};
    if (!libarchiveKnowsSum) return Error{Errc::Unsupported, 0, "xar: libarchive reads only SHA-1, MD5 or no TOC checksum"};
    return Error{Errc::Invalid, archive_errno(a.get()), "xar: libarchive cannot read the archive"};
  }
  Found found;
  size_t entries = 0;
  while (true) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r == ARCHIVE_FATAL || r == ARCHIVE_RETRY) {
      if (tocChecksumBad) return Error{Errc::Corrupt, 0, "xar: the table of contents does not match its checksum"};
      return Error{Errc::Invalid, archive_errno(a.get()), "xar: libarchive cannot read the archive"};
    }
    if (++entries > kMaxXarEntries) return Error{Errc::Invalid, 0, "xar: more than 100000 entries"};
    const char* raw = archive_entry_pathname(e);
    if (!raw || archive_entry_filetype(e) != AE_IFREG) continue;
    std::string_view name = raw;
    std::string dir;
    if (name == "Distribution") {
      if (found.hasDistribution) return Error{Errc::Invalid, 0, "xar: two Distribution files"};
      auto text = readEntry(a.get(), kMaxDistributionBytes, "Distribution is over 4 MiB");
      if (!text) return text.error();
      auto d = parseDistribution(*text);
      if (!d) return d.error();
      found.hasDistribution = true;
      found.distribution = std::move(*d);
    } else if (packageInfoDir(name, &dir)) {
      if (found.components.size() == kMaxComponents)
        return Error{Errc::Invalid, 0, "xar: more than 64 component PackageInfo files"};
      auto text = readEntry(a.get(), kMaxPackageInfoBytes, "PackageInfo is over 1 MiB");
      if (!text) return text.error();
      auto c = parsePackageInfo(*text);
      if (!c) return c.error();
      found.components.push_back(FoundComponent{std::move(dir), std::move(*c)});
    }
  }
  return found;
}

void addSignatureWarnings(const SignatureInfo& s, std::vector<std::string>* w) {
  if (!s.present)
    w->push_back("unsigned: the package has no signature");
  else if (!s.verified)
    w->push_back("signature not verified: " + s.problem);
  else if (!s.trusted)
    w->push_back("signature chain not trusted: " + s.problem);
}

Result<PackageFileInfo> readPackage(const ByteSource& src, const OpenFn& open, const TrustStore* roots) {
  PackageFileInfo info;
  if (!looksLikeXar(src)) return info;
  auto toc = readXarToc(src);
  if (!toc) return toc.error();
  info.signature = verifyXarSignature(*toc, src, roots);
  const bool checksumBad = info.signature.problem == kProblemTocChanged;
  const uint32_t alg = toc->header.cksumAlg;
  auto found = readEntries(open, checksumBad, alg <= 2);
  ERR_clear_error();  // libarchive may hash with libcrypto
  if (!found) return found.error();
  if (!found->hasDistribution && found->components.empty()) {
    info.warnings.push_back("a xar archive without Distribution or PackageInfo is not an installer package");
    info.signature = SignatureInfo{};
    return info;
  }
  info.isPackage = true;
  info.metadata = mergeMetadata(found->hasDistribution ? &found->distribution : nullptr, found->components);
  if (!found->hasDistribution)
    info.warnings.push_back(
        "component package: MDM's InstallEnterpriseApplication needs a distribution package (productbuild --package)");
  addSignatureWarnings(info.signature, &info.warnings);
  return info;
}

}  // namespace

Result<PackageFileInfo> readPackageFile(const std::string& path, const TrustStore* roots) {
  auto src = ByteSource::ofFile(path);
  if (!src) return src.error();
  return readPackage(**src, [&path](archive* a) { return archive_read_open_filename(a, path.c_str(), 65536); },
                     roots);
}

Result<PackageFileInfo> readPackageBytes(std::string_view bytes, const TrustStore* roots) {
  auto src = ByteSource::ofMemory(bytes);
  return readPackage(*src, [bytes](archive* a) {
    return archive_read_open_memory(a, const_cast<char*>(bytes.data()), bytes.size());
  }, roots);
}

}  // namespace orchard::catalog
