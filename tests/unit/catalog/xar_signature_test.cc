// xar_toc.h and xar_signature.h: the header and TOC bounds, the trust
// store, and each way a signature can hold or fail (fixtures from
// tests/tools/xarpkg.py).
#include "catalog/xar_signature.h"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include "tests/unit/catalog/xar_fixture.h"

namespace orchard::catalog {
namespace {

using testing::XarFixtures;

class XarSignatureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dist_ = fx().write("dist.xml", testing::kSimpleDistribution);
    info_ = fx().write("pi.xml", testing::kSimplePackageInfo);
    auto roots = TrustStore::loadPem(fx().ca("trusted") + "-root.pem");
    ASSERT_TRUE(roots) << roots.error().message();
    roots_ = *roots;
  }
  static XarFixtures& fx() { return XarFixtures::get(); }

  std::string build(const std::string& extra) {
    return fx().build("s.pkg", "--distribution " + dist_ + " --component com.example.foo.pkg=" + info_ + " " + extra);
  }

  SignatureInfo verify(const std::string& file, const TrustStore* roots) {
    bytes_ = XarFixtures::slurp(file);
    auto src = ByteSource::ofMemory(bytes_);
    auto toc = readXarToc(*src);
    EXPECT_TRUE(toc) << toc.error().message();
    if (!toc) return {};
    SignatureInfo s = verifyXarSignature(*toc, *src, roots);
    EXPECT_EQ(ERR_peek_error(), 0u) << "OpenSSL error queue left non-empty";
    return s;
  }

  std::string dist_, info_, bytes_;
  std::shared_ptr<TrustStore> roots_;
};

TEST_F(XarSignatureTest, SignedByTrustedCaIsVerifiedAndTrusted) {
  SignatureInfo s = verify(build("--sign " + fx().ca("trusted")), roots_.get());
  EXPECT_TRUE(s.present);
  EXPECT_TRUE(s.verified);
  EXPECT_TRUE(s.trusted) << s.problem;
  EXPECT_EQ(s.problem, "");
  EXPECT_EQ(s.chain, (std::vector<std::string>{"CN=trusted Installer,O=Orchard Test",
                                               "CN=trusted Intermediate CA,O=Orchard Test"}));
}

TEST_F(XarSignatureTest, TocChangedAfterSigningIsNotVerified) {
  // The TOC is edited and its new checksum stored: the checksum holds, the signature does not.
  SignatureInfo s = verify(build("--sign " + fx().ca("trusted") + " --tamper toc"), roots_.get());
  EXPECT_TRUE(s.present);
  EXPECT_FALSE(s.verified);
  EXPECT_FALSE(s.trusted);
  EXPECT_EQ(s.problem, "the signature does not match the TOC checksum with the leaf certificate's key");
}

TEST_F(XarSignatureTest, TocChangedWithoutNewChecksumIsNotVerified) {
  SignatureInfo s = verify(build("--sign " + fx().ca("trusted") + " --tamper toc-nosum"), roots_.get());
  EXPECT_FALSE(s.verified);
  EXPECT_EQ(s.problem, kProblemTocChanged);
}

TEST_F(XarSignatureTest, StoredChecksumChangedIsNotVerified) {
  SignatureInfo s = verify(build("--sign " + fx().ca("trusted") + " --tamper checksum"), roots_.get());
  EXPECT_FALSE(s.verified);
  EXPECT_EQ(s.problem, kProblemTocChanged);
}

TEST_F(XarSignatureTest, SignatureByteChangedIsNotVerified) {
  SignatureInfo s = verify(build("--sign " + fx().ca("trusted") + " --tamper signature"), roots_.get());
  EXPECT_TRUE(s.present);
  EXPECT_FALSE(s.verified);
  EXPECT_EQ(s.chain.size(), 2u);  // still reported
}

TEST_F(XarSignatureTest, OtherCaIsVerifiedButNotTrusted) {
  SignatureInfo s = verify(build("--sign " + fx().ca("other")), roots_.get());
  EXPECT_TRUE(s.verified);
  EXPECT_FALSE(s.trusted);
  EXPECT_EQ(s.problem, "chain not trusted: unable to get local issuer certificate");
  EXPECT_EQ(s.chain.front(), "CN=other Installer,O=Orchard Test");
}

TEST_F(XarSignatureTest, MissingIntermediateIsNotTrusted) {
  SignatureInfo s = verify(build("--sign " + fx().ca("trusted") + " --no-intermediate"), roots_.get());
  EXPECT_TRUE(s.verified);
  EXPECT_FALSE(s.trusted);
  EXPECT_EQ(s.chain.size(), 1u);
}

TEST_F(XarSignatureTest, NoRootsMeansVerifiedNotTrusted) {
  SignatureInfo s = verify(build("--sign " + fx().ca("trusted")), nullptr);
  EXPECT_TRUE(s.verified);
  EXPECT_FALSE(s.trusted);
  EXPECT_EQ(s.problem, "no trusted roots are configured");
}

TEST_F(XarSignatureTest, UnsignedIsNotPresent) {
  SignatureInfo s = verify(build(""), roots_.get());
  EXPECT_FALSE(s.present);
  EXPECT_FALSE(s.verified);
  EXPECT_EQ(s.problem, "unsigned");
}

TEST(TrustStoreTest, LoadsEveryCertificateOfAPemFile) {
  auto& fx = XarFixtures::get();
  std::string base = fx.ca("trusted");
  std::string both = fx.write("both.pem", XarFixtures::slurp(base + "-root.pem") +
                                              XarFixtures::slurp(base + "-inter.pem"));
  auto store = TrustStore::loadPem(both);
  ASSERT_TRUE(store);
  EXPECT_EQ((*store)->size(), 2u);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(TrustStoreTest, MissingEmptyOrBrokenFilesAreErrors) {
  auto& fx = XarFixtures::get();
  auto missing = TrustStore::loadPem(fx.path("nope.pem"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::NotFound);
  auto empty = TrustStore::loadPem(fx.write("empty.pem", "no certificates here\n"));
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, Errc::Invalid);
  EXPECT_STREQ(empty.error().context, "trusted roots: no certificate in the PEM file");
  auto broken = TrustStore::loadPem(
      fx.write("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"));
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code, Errc::Invalid);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

std::string header(uint16_t size, uint64_t tocC, uint64_t tocU, uint32_t alg) {
  std::string h = "xar!";
  auto put = [&h](uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) h.push_back(static_cast<char>(v >> (8 * i)));
  };
  put(size, 2);
  put(1, 2);
  put(tocC, 8);
  put(tocU, 8);
  put(alg, 4);
  return h;
}

TEST(XarHeaderTest, ChecksumAlgorithms) {
  EXPECT_EQ(parseXarHeader(header(28, 10, 10, 1))->cksumName, "sha1");
  EXPECT_EQ(parseXarHeader(header(28, 10, 10, 3))->cksumName, "sha256");  // Apple's numbering
  std::string named = header(64, 10, 10, 3) + std::string("SHA256") + std::string(30, '\0');
  EXPECT_EQ(parseXarHeader(named)->cksumName, "sha256");
  EXPECT_FALSE(parseXarHeader(header(28, 10, 10, 9)));
}

TEST(XarHeaderTest, BoundsAreCheckedBeforeAnythingIsRead) {
  EXPECT_STREQ(parseXarHeader("xar!\0\x1c").error().context, "xar: truncated header");
  EXPECT_STREQ(parseXarHeader(header(28, 17u << 20, 100, 1)).error().context,
               "xar: table of contents over 16 MiB");
  EXPECT_STREQ(parseXarHeader(header(28, 100, 1ull << 40, 1)).error().context,
               "xar: table of contents over 16 MiB");
  std::string past = header(28, 1000, 1000, 1) + "short";
  auto src = ByteSource::ofMemory(past);
  EXPECT_STREQ(readXarToc(*src).error().context, "xar: table of contents runs past the end of the file");
  std::string notZlib = header(28, 5, 100, 1) + "hello";
  src = ByteSource::ofMemory(notZlib);
  EXPECT_STREQ(readXarToc(*src).error().context, "xar: table of contents is not zlib data");
}

}  // namespace
}  // namespace orchard::catalog
