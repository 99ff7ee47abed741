// Tests for catalog/catalog.h: an upload's digests (whole and per 10 MiB
// chunk, pieces landing across a chunk boundary), what begin() refuses
// from the head (Exists, Busy, NoSpace) and what it finds identical, the
// commit (the blob in place, the record and the audit entry), content-
// addressed storage (two versions, one blob, freed with the last), and what
// open() sweeps after a crash (temp files, blobs no record names, a record
// whose blob is gone).
#include "catalog/catalog.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

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
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7 + i / 4096);
  return s;
}

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-catalog-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
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
  std::unique_ptr<Upload> begin(std::string_view name, std::string_view version, uint64_t size,
                                std::string_view sha = {}) {
    auto b = cat_->begin(name, version, "f.dmg", size, sha);
    EXPECT_TRUE(std::holds_alternative<Catalog::Begun>(b)) << std::get<Problem>(b).detail;
    if (!std::holds_alternative<Catalog::Begun>(b)) return nullptr;
    return std::move(std::get<Catalog::Begun>(b).upload);
  }
  // Publishes `data` in pieces of `piece` bytes; the record, or null.
  std::shared_ptr<const PackageVersion> publish(std::string_view name, std::string_view version,
                                                const std::string& data, size_t piece = 1 << 20) {
    auto up = begin(name, version, data.size(), sha256Hex(data));
    if (!up) return nullptr;
    for (size_t at = 0; at < data.size(); at += piece) {
      auto p = up->write(data.data() + at, std::min(piece, data.size() - at));
      EXPECT_FALSE(p) << p->detail;
    }
    auto f = up->finish();
    EXPECT_FALSE(f) << f->detail;
    auto c = cat_->commit(std::move(up), PackageVersion{}, Actor{"10.0.0.1", "admin"}, 1700000000);
    if (auto* p = std::get_if<Problem>(&c)) {
      ADD_FAILURE() << p->detail;
      return nullptr;
    }
    return std::get<Catalog::Committed>(c).version;
  }
  size_t filesIn(const std::string& sub) {
    size_t n = 0;
    for (auto& e : fs::recursive_directory_iterator(root_ + "/packages/" + sub))
      if (e.is_regular_file()) ++n;
    return n;
  }

  std::string root_;
  std::shared_ptr<db::Database> db_;
  std::unique_ptr<Catalog> cat_;
};

TEST_F(CatalogTest, DigestsOfTheWholeAndOfEachChunkWhateverThePieces) {
  const std::string data = bytes(25 * 1024 * 1024 + 5, 'a');
  for (size_t piece : {size_t(1) << 20, size_t(777777), size_t(kChunkSize + 3)}) {
    const std::string version = "p" + std::to_string(piece);
    auto rec = publish("digests", version, data, piece);
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->sha256, sha256Hex(data));
    ASSERT_EQ(rec->chunks.size(), 3u);
    EXPECT_EQ(rec->chunks[0], sha256Hex(std::string_view(data).substr(0, kChunkSize)));
    EXPECT_EQ(rec->chunks[1], sha256Hex(std::string_view(data).substr(kChunkSize, kChunkSize)));
    EXPECT_EQ(rec->chunks[2], sha256Hex(std::string_view(data).substr(2 * kChunkSize)));
  }
  // Exactly two chunks: no empty third one.
  auto even = publish("even", "1", bytes(2 * kChunkSize, 'b'));
  ASSERT_TRUE(even);
  EXPECT_EQ(even->chunks.size(), 2u);
  auto empty = publish("empty", "1", "");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->chunks, std::vector<std::string>{sha256Hex("")});
}

TEST_F(CatalogTest, ChecksumMismatchAndShortBodyLeaveNothing) {
  const std::string data = bytes(100000, 'c');
  auto up = begin("bad", "1", data.size(), std::string(64, '0'));
  ASSERT_TRUE(up);
  ASSERT_FALSE(up->write(data.data(), data.size()));
  auto p = up->finish();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->code, Errc::Invalid);
  EXPECT_NE(p->detail.find(sha256Hex(data)), std::string::npos);
  up.reset();
  EXPECT_EQ(filesIn("tmp"), 0u);
  EXPECT_EQ(cat_->usedBytes(), 0u);
  EXPECT_FALSE(cat_->find("bad", "1"));

  auto shortUp = begin("short", "1", 10);
  ASSERT_TRUE(shortUp);
  ASSERT_FALSE(shortUp->write("12345", 5));
  EXPECT_EQ(shortUp->finish()->code, Errc::Invalid);
  EXPECT_EQ(shortUp->write("123456", 6)->code, Errc::Invalid) << "more than declared";
}

TEST_F(CatalogTest, BeginRefusesFromTheHead) {
  const std::string data = bytes(5000, 'd');
  ASSERT_TRUE(publish("pkg", "1", data));
  // Same bytes (by checksum): identical, nothing to upload.
  auto same = cat_->begin("pkg", "1", "f.dmg", data.size(), sha256Hex(data));
  ASSERT_TRUE(std::holds_alternative<Catalog::Begun>(same));
  EXPECT_TRUE(std::get<Catalog::Begun>(same).identical);
  EXPECT_FALSE(std::get<Catalog::Begun>(same).upload);
  // Other bytes: Exists.
  auto other = cat_->begin("pkg", "1", "f.dmg", data.size(), std::string(64, 'e'));
  ASSERT_TRUE(std::holds_alternative<Problem>(other));
  EXPECT_EQ(std::get<Problem>(other).code, Errc::Exists);
  // A publish of a version already running: Busy, until it ends.
  auto first = begin("race", "1", 10);
  auto second = cat_->begin("race", "1", "f.dmg", 10, {});
  ASSERT_TRUE(std::holds_alternative<Problem>(second));
  EXPECT_EQ(std::get<Problem>(second).code, Errc::Busy);
  first.reset();
  EXPECT_TRUE(begin("race", "1", 10));
}

TEST_F(CatalogTest, LimitCountsDistinctBlobsAndReservations) {
  reopen(/*limit=*/3 << 20);
  const std::string two = bytes(2 << 20, 'f');
  ASSERT_TRUE(publish("a", "1", two));
  EXPECT_EQ(cat_->usedBytes(), two.size());
  auto tooBig = cat_->begin("b", "1", "f.dmg", 2 << 20, {});
  ASSERT_TRUE(std::holds_alternative<Problem>(tooBig));
  EXPECT_EQ(std::get<Problem>(tooBig).code, Errc::NoSpace);
  // The same bytes under another name need no space and are stored once.
  ASSERT_TRUE(publish("b", "1", two));
  EXPECT_EQ(cat_->usedBytes(), two.size());
  EXPECT_EQ(filesIn("blobs"), 1u);
  EXPECT_EQ(filesIn("tmp"), 0u) << "the second copy's upload is removed, not left behind";
  // A running upload holds its declared size.
  auto up = begin("c", "1", 1 << 20);
  EXPECT_EQ(cat_->usedBytes(), two.size() + (1 << 20));
  up.reset();
  EXPECT_EQ(cat_->usedBytes(), two.size());
}

TEST_F(CatalogTest, RemoveFreesTheBlobWithTheLastVersionAndIsAudited) {
  const std::string data = bytes(3000, 'g');
  auto a = publish("a", "1", data);
  ASSERT_TRUE(publish("b", "2", data));
  const std::string blob = cat_->blobPath(a->sha256);
  EXPECT_FALSE(cat_->remove("a", "1", Actor{"10.0.0.2", "admin"}, 1700000100));
  EXPECT_TRUE(fs::exists(blob));
  EXPECT_FALSE(cat_->find("a", "1"));
  EXPECT_EQ(cat_->remove("a", "1", Actor{}, 0)->code, Errc::NotFound);
  EXPECT_FALSE(cat_->remove("b", "2", Actor{}, 1700000200));
  EXPECT_FALSE(fs::exists(blob));
  EXPECT_EQ(cat_->usedBytes(), 0u);

  auto log = cat_->audit(0, 100);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 4u);
  EXPECT_EQ((*log)[0].action, "publish");
  EXPECT_EQ((*log)[0].object, "a/1");
  EXPECT_EQ((*log)[0].client, "10.0.0.1");
  EXPECT_EQ((*log)[2].action, "delete");
  EXPECT_EQ((*log)[2].client, "10.0.0.2");
  auto page = cat_->audit((*log)[1].seq, 1);
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].seq, (*log)[2].seq);
}

TEST_F(CatalogTest, ReopenKeepsRecordsAndSweepsWhatACrashLeft) {
  const std::string data = bytes(4000, 'h');
  auto rec = publish("keep", "1.0", data);
  ASSERT_TRUE(publish("lost", "1.0", bytes(5000, 'i')));
  cat_->noteDownload("keep", "1.0");
  // What a crash leaves: a temp file, a blob no record names, a record whose blob is gone.
  std::ofstream(root_ + "/packages/tmp/abc.part") << "half";
  fs::create_directories(root_ + "/packages/blobs/ff");
  std::ofstream(root_ + "/packages/blobs/ff/" + std::string(64, 'f')) << "orphan";
  fs::remove(cat_->blobPath(cat_->find("lost", "1.0")->sha256));
  reopen();
  auto back = cat_->find("keep", "1.0");
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, *rec);
  EXPECT_FALSE(cat_->find("lost", "1.0")) << "a record whose file is gone is never served";
  EXPECT_EQ(filesIn("tmp"), 0u);
  EXPECT_FALSE(fs::exists(root_ + "/packages/blobs/ff/" + std::string(64, 'f')));
  EXPECT_EQ(cat_->downloads("keep", "1.0"), 1u);
  EXPECT_EQ(cat_->usedBytes(), data.size());
  // The audit sequence goes on after the last entry.
  ASSERT_TRUE(publish("next", "1", "x"));
  auto log = cat_->audit(0, 100);
  EXPECT_EQ(log->back().seq, log->size());
}

TEST_F(CatalogTest, VersionsNewestFirst) {
  for (const char* v : {"1.9", "1.10", "2.0b3", "2.0", "1.10.1"}) ASSERT_TRUE(publish("order", v, v));
  std::vector<std::string> got;
  for (const auto& v : cat_->versions("order")) got.push_back(v->version);
  EXPECT_EQ(got, (std::vector<std::string>{"2.0", "2.0b3", "1.10.1", "1.10", "1.9"}));
  EXPECT_EQ(cat_->names(), std::vector<std::string>{"order"});
}

}  // namespace
}  // namespace orchard::catalog
