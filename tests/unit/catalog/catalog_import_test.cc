// Tests for Catalog::importFile (catalog/catalog.h, "Imports"): a file on
// the same file system becomes a package by a hard link (the blob shares
// the source's inode; the source may go afterwards), hashed exactly as an
// upload is (whole and per 10 MiB chunk); on another file system it is
// copied. Refusals (size, checksum, the limit, the prepare step, other
// bytes under the version, a source that is gone) leave no temp file, no
// blob and no record; the same bytes again change nothing; two versions of
// the same bytes take their space once; the audit says "import".
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "catalog/catalog.h"

namespace orchard::catalog {
namespace {

namespace fs = std::filesystem;

std::string sha256Hex(std::string_view data) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d);
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : d) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string bytes(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 13 + i / 1000);
  return s;
}

std::string readAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void writeFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

ino_t inodeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

class CatalogImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-import-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    fs::create_directories(root_ + "/objects/ab");  // stands in for the cache's object files
    reopen();
  }
  void TearDown() override {
    cat_.reset();
    db_.reset();
    fs::remove_all(root_);
  }
  void reopen(uint64_t limit = 1ull << 30) {
    cat_.reset();
    db_.reset();
    auto d = db::Database::open(root_ + "/index", families());
    ASSERT_TRUE(d.ok()) << d.error().message();
    db_ = std::shared_ptr<db::Database>(std::move(d).value());
    auto c = Catalog::open({root_ + "/packages", limit}, db_);
    ASSERT_TRUE(c.ok()) << c.error().message();
    cat_ = std::move(c).value();
  }
  // A cache object file holding `data`.
  std::string object(const std::string& name, const std::string& data) {
    const std::string p = root_ + "/objects/ab/" + name;
    writeFile(p, data);
    return p;
  }
  std::variant<Catalog::Imported, Problem> import(std::string_view name, std::string_view version,
                                                  const std::string& path, uint64_t size, std::string sha = {},
                                                  const Catalog::ImportPrepare& prepare = {}) {
    Catalog::ImportSource src;
    src.path = path;
    src.size = size;
    src.expectSha = std::move(sha);
    src.note = "from http://pkgs.example/" + std::string(name);
    return cat_->importFile(name, version, "f.pkg", src, prepare, Actor{"10.0.0.9", "admin"}, 1700000000);
  }
  Catalog::Imported imported(std::variant<Catalog::Imported, Problem> r) {
    if (auto* p = std::get_if<Problem>(&r)) {
      ADD_FAILURE() << p->detail;
      return {};
    }
    return std::get<Catalog::Imported>(r);
  }
  size_t filesIn(const std::string& sub) {
    size_t n = 0;
    for (auto& e : fs::recursive_directory_iterator(root_ + "/packages/" + sub))
      if (e.is_regular_file()) ++n;
    return n;
  }
  // Nothing an import could leave behind.
  void expectNothingLeft(std::string_view name, std::string_view version) {
    EXPECT_EQ(filesIn("tmp"), 0u);
    EXPECT_EQ(filesIn("blobs"), 0u);
    EXPECT_EQ(cat_->find(name, version), nullptr);
    EXPECT_EQ(cat_->usedBytes(), 0u);
  }

  std::string root_;
  std::shared_ptr<db::Database> db_;
  std::unique_ptr<Catalog> cat_;
};

TEST_F(CatalogImportTest, LinkedBlobSharesTheSourceInodeAndHashesLikeAnUpload) {
  const std::string data = bytes(2 * kChunkSize + 12345, 'q');
  const std::string src = object("0123.1", data);
  auto imp = imported(import("tool", "1.0", src, data.size()));
  ASSERT_TRUE(imp.version);
  EXPECT_TRUE(imp.created);
  EXPECT_TRUE(imp.linked);
  const PackageVersion& v = *imp.version;
  EXPECT_EQ(v.sha256, sha256Hex(data));
  EXPECT_EQ(v.size, data.size());
  ASSERT_EQ(v.chunks.size(), 3u);
  EXPECT_EQ(v.chunks[0], sha256Hex(std::string_view(data).substr(0, kChunkSize)));
  EXPECT_EQ(v.chunks[1], sha256Hex(std::string_view(data).substr(kChunkSize, kChunkSize)));
  EXPECT_EQ(v.chunks[2], sha256Hex(std::string_view(data).substr(2 * kChunkSize)));
  EXPECT_EQ(inodeOf(cat_->blobPath(v.sha256)), inodeOf(src));
  EXPECT_EQ(filesIn("tmp"), 0u);
  EXPECT_EQ(cat_->usedBytes(), data.size());

  auto audit = cat_->audit(0, 10);
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ((*audit)[0].action, "import");
  EXPECT_EQ((*audit)[0].object, "tool/1.0");
  EXPECT_NE((*audit)[0].detail.find("linked"), std::string::npos) << (*audit)[0].detail;
  EXPECT_NE((*audit)[0].detail.find("from http://pkgs.example/tool"), std::string::npos) << (*audit)[0].detail;
}

TEST_F(CatalogImportTest, RemovingTheSourceAfterwardsLeavesThePackageIntact) {
  const std::string data = bytes(300000, 'r');
  const std::string src = object("0456.7", data);
  auto imp = imported(import("tool", "2.0", src, data.size(), sha256Hex(data)));
  ASSERT_TRUE(imp.version);
  ASSERT_EQ(::unlink(src.c_str()), 0);  // the cache evicts its copy
  EXPECT_EQ(readAll(cat_->blobPath(imp.version->sha256)), data);
  reopen();  // and the box restarts
  auto v = cat_->find("tool", "2.0");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->sha256, sha256Hex(data));
  EXPECT_EQ(readAll(cat_->blobPath(v->sha256)), data);
}

TEST_F(CatalogImportTest, SizeMismatchIsRefusedAndLeavesNothing) {
  const std::string data = bytes(5000, 's');
  const std::string src = object("0789.1", data);
  for (uint64_t size : {uint64_t(4999), uint64_t(5001), uint64_t(0)}) {
    auto r = import("tool", "3.0", src, size);
    ASSERT_TRUE(std::holds_alternative<Problem>(r)) << size;
    EXPECT_EQ(std::get<Problem>(r).code, Errc::Invalid);
    EXPECT_NE(std::get<Problem>(r).detail.find("5000 bytes"), std::string::npos) << std::get<Problem>(r).detail;
    expectNothingLeft("tool", "3.0");
  }
  EXPECT_EQ(readAll(src), data);  // the source is left as it was
}

TEST_F(CatalogImportTest, ChecksumMismatchIsRefusedAndLeavesNothing) {
  const std::string data = bytes(7000, 't');
  const std::string src = object("0aaa.1", data);
  auto r = import("tool", "4.0", src, data.size(), sha256Hex("other bytes"));
  ASSERT_TRUE(std::holds_alternative<Problem>(r));
  EXPECT_EQ(std::get<Problem>(r).code, Errc::Invalid);
  expectNothingLeft("tool", "4.0");
  auto bad = import("tool", "4.0", src, data.size(), "not-hex");
  ASSERT_TRUE(std::holds_alternative<Problem>(bad));
  EXPECT_EQ(std::get<Problem>(bad).code, Errc::Invalid);
  expectNothingLeft("tool", "4.0");
}

TEST_F(CatalogImportTest, QuotaCountsImportsOnceAndRefusesWhatDoesNotFit) {
  reopen(/*limit=*/100000);
  const std::string big = bytes(100001, 'u');
  auto r = import("big", "1", object("0bbb.1", big), big.size());
  ASSERT_TRUE(std::holds_alternative<Problem>(r));
  EXPECT_EQ(std::get<Problem>(r).code, Errc::NoSpace);
  expectNothingLeft("big", "1");

  const std::string data = bytes(60000, 'v');
  const std::string src = object("0ccc.1", data);
  ASSERT_TRUE(imported(import("pkg", "1", src, data.size())).version);
  EXPECT_EQ(cat_->usedBytes(), data.size());
  // Another version of the same bytes: stored once, counted once (and with
  // the checksum known, it needs no space to begin).
  auto again = imported(import("pkg", "2", src, data.size(), sha256Hex(data)));
  ASSERT_TRUE(again.version);
  EXPECT_TRUE(again.created);
  EXPECT_EQ(again.version->sha256, sha256Hex(data));
  EXPECT_EQ(cat_->usedBytes(), data.size());
  EXPECT_EQ(filesIn("blobs"), 1u);
  EXPECT_EQ(filesIn("tmp"), 0u);
  // Other bytes that do not fit beside them.
  const std::string more = bytes(50000, 'w');
  auto full = import("pkg", "3", object("0ddd.1", more), more.size());
  ASSERT_TRUE(std::holds_alternative<Problem>(full));
  EXPECT_EQ(std::get<Problem>(full).code, Errc::NoSpace);
  EXPECT_EQ(cat_->usedBytes(), data.size());
  EXPECT_EQ(filesIn("tmp"), 0u);
}

TEST_F(CatalogImportTest, SameBytesAgainChangeNothingOtherBytesAreExists) {
  const std::string data = bytes(9000, 'x');
  const std::string src = object("0eee.1", data);
  ASSERT_TRUE(imported(import("tool", "5.0", src, data.size())).version);
  // Without a checksum the bytes decide at the commit, with one at once.
  for (std::string sha : {std::string(), sha256Hex(data)}) {
    auto same = imported(import("tool", "5.0", src, data.size(), sha));
    ASSERT_TRUE(same.version);
    EXPECT_FALSE(same.created);
    EXPECT_EQ(filesIn("tmp"), 0u);
  }
  const std::string other = bytes(9000, 'y');
  const std::string src2 = object("0fff.1", other);
  for (std::string sha : {std::string(), sha256Hex(other)}) {
    auto r = import("tool", "5.0", src2, other.size(), sha);
    ASSERT_TRUE(std::holds_alternative<Problem>(r));
    EXPECT_EQ(std::get<Problem>(r).code, Errc::Exists);
    EXPECT_EQ(filesIn("tmp"), 0u);
    EXPECT_EQ(filesIn("blobs"), 1u);
  }
  EXPECT_EQ(cat_->find("tool", "5.0")->sha256, sha256Hex(data));
  EXPECT_EQ(cat_->usedBytes(), data.size());
  auto audit = cat_->audit(0, 10);
  ASSERT_TRUE(audit.ok());
  EXPECT_EQ(audit->size(), 1u);  // one change only
}

TEST_F(CatalogImportTest, SourceGoneIsNotFound) {
  auto r = import("tool", "6.0", root_ + "/objects/ab/1111.1", 10);
  ASSERT_TRUE(std::holds_alternative<Problem>(r));
  EXPECT_EQ(std::get<Problem>(r).code, Errc::NotFound);
  expectNothingLeft("tool", "6.0");
}

TEST_F(CatalogImportTest, PrepareReadsTheWholeFileAndItsRefusalLeavesNothing) {
  const std::string data = bytes(4096, 'z');
  const std::string src = object("1222.1", data);
  std::string seen;
  auto refuse = [&](const std::string& path, PackageVersion*) -> std::optional<Problem> {
    seen = readAll(path);
    return Problem{Errc::Unsupported, "catalog.require_signed is set"};
  };
  auto r = import("tool", "7.0", src, data.size(), {}, refuse);
  ASSERT_TRUE(std::holds_alternative<Problem>(r));
  EXPECT_EQ(std::get<Problem>(r).code, Errc::Unsupported);
  EXPECT_EQ(seen, data);
  expectNothingLeft("tool", "7.0");

  auto fill = [](const std::string&, PackageVersion* v) -> std::optional<Problem> {
    v->metadata.title = "Tool";
    v->metadata.bundleId = "org.example.tool";
    return std::nullopt;
  };
  auto imp = imported(import("tool", "7.0", src, data.size(), {}, fill));
  ASSERT_TRUE(imp.version);
  EXPECT_EQ(imp.version->metadata.title, "Tool");
  EXPECT_EQ(imp.version->metadata.bundleId, "org.example.tool");
}

TEST_F(CatalogImportTest, AnotherFileSystemIsCopied) {
  struct stat a, b;
  ASSERT_EQ(::stat(root_.c_str(), &a), 0);
  if (::stat("/dev/shm", &b) != 0 || a.st_dev == b.st_dev) GTEST_SKIP() << "no second file system at /dev/shm";
  char tmpl[] = "/dev/shm/orchard-import-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string other = tmpl;
  const std::string data = bytes(kChunkSize + 77, 'c');
  const std::string src = other + "/obj";
  writeFile(src, data);
  auto imp = imported(import("tool", "8.0", src, data.size()));
  fs::remove_all(other);
  ASSERT_TRUE(imp.version);
  EXPECT_TRUE(imp.created);
  EXPECT_FALSE(imp.linked);
  EXPECT_EQ(imp.version->sha256, sha256Hex(data));
  ASSERT_EQ(imp.version->chunks.size(), 2u);
  EXPECT_EQ(imp.version->chunks[1], sha256Hex(std::string_view(data).substr(kChunkSize)));
  EXPECT_EQ(readAll(cat_->blobPath(imp.version->sha256)), data);
  EXPECT_EQ(filesIn("tmp"), 0u);
  auto audit = cat_->audit(0, 10);
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_NE((*audit)[0].detail.find("copied"), std::string::npos) << (*audit)[0].detail;
}

}  // namespace
}  // namespace orchard::catalog
