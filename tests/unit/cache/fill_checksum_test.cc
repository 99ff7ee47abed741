// Tests for cache/fill's block checksums: recorded for whole fills, fills
// of unknown length, fills whose first run starts mid-block (a block then
// completed by two fetchers), and kept by Partial records across a resume.
// Fixture: fill_test_util.h.
#include "cache/fill.h"

#include <algorithm>
#include <string>

#include "tests/unit/cache/fill_test_util.h"

namespace orchard::cache {
namespace {

using namespace orchard::cache::fill_test;

// ---- block checksums ----

std::string patternedBody(uint64_t size) {
  std::string body(size, '\0');
  for (uint64_t i = 0; i < size; ++i) body[i] = static_cast<char>((i * 7 + i / 65536) & 0xff);
  return body;
}

void expectSumsOf(const ObjectMeta& meta, const std::string& body) {
  ASSERT_EQ(meta.blockSize, Fill::kBlockSize);
  const uint64_t blocks = (body.size() + Fill::kBlockSize - 1) / Fill::kBlockSize;
  ASSERT_EQ(meta.sums.size(), blocks);
  for (uint64_t b = 0; b < blocks; ++b) {
    const uint64_t off = b * Fill::kBlockSize;
    EXPECT_EQ(meta.sums[b], blockChecksum(body.data() + off, std::min<uint64_t>(Fill::kBlockSize, body.size() - off)))
        << "block " << b;
  }
}

// Writes body[from, ...) as fetcher `id` in 64 KiB pieces until its run ends.
void writeRun(Fill& fill, uint32_t id, const std::string& body, uint64_t from) {
  uint64_t at = from;
  while (at < body.size()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(64 << 10, body.size() - at));
    Result<size_t> w = fill.write(id, body.data() + at, n);
    ASSERT_TRUE(w.ok()) << w.error().message();
    at += *w;
    if (*w < n) break;
  }
}

TEST_F(FillTest, WholeFillRecordsAChecksumPerBlock) {
  const std::string body = patternedBody(2 * Fill::kBlockSize + Fill::kBlockSize / 2);
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, body.size()).ok());
  for (uint64_t at = 0; at < body.size(); at += 100'000)
    ASSERT_TRUE(append(*fill, std::string_view(body).substr(at, 100'000)).ok());
  fill->finish(1'700'000'000);
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  expectSumsOf(*meta, body);
  ASSERT_NE(meta->verified, nullptr);
  EXPECT_FALSE(meta->verified->allVerified()) << "the first hit verifies";
}

TEST_F(FillTest, FillOfUnknownLengthRecordsChecksums) {
  const std::string body = patternedBody(Fill::kBlockSize + 17);
  auto fill = newFill();
  ASSERT_TRUE(fill->begin(headFor(kA), true, std::nullopt).ok());  // chunked
  ASSERT_TRUE(append(*fill, body).ok());
  fill->finish(1'700'000'000);
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  expectSumsOf(*meta, body);
}

TEST_F(FillTest, FillStartedMidBlockRecordsTheChecksumOfTheBlockTwoFetchersWrote) {
  // A cold range starts at the exact byte asked for: block 1 is written from
  // its middle by the first run and whole by the run that fills behind it.
  const std::string body = patternedBody(3 * Fill::kBlockSize + 5);
  const uint64_t start = Fill::kBlockSize + Fill::kBlockSize / 2 + 3;
  auto fill = newFill();
  Fill::Fetch first = fill->firstFetch(start);
  ASSERT_TRUE(fill->begin(headFor(kA), true, body.size()).ok());
  writeRun(*fill, first.id, body, start);
  Fill::Next next = fill->fetcherDone(first.id);
  ASSERT_TRUE(next.fetch.has_value());
  EXPECT_EQ(next.fetch->start, 0u);
  fill->checkpoint(1'700'000'000);  // sums what is complete so far (block 2, 3)
  writeRun(*fill, next.fetch->id, body, 0);
  Fill::Next last = fill->fetcherDone(next.fetch->id);
  ASSERT_TRUE(last.complete);
  fill->complete(1'700'000'001);
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  expectSumsOf(*meta, body);
  EXPECT_EQ(storedBytes(kA), body);
}

TEST_F(FillTest, PartialRecordKeepsChecksumsOfItsBlocksAcrossAResume) {
  const std::string body = patternedBody(3 * Fill::kBlockSize + 1000);
  {
    auto fill = newFill();
    Fill::Fetch f = fill->firstFetch(0);
    ASSERT_TRUE(fill->begin(headFor(kA), true, body.size()).ok());
    ASSERT_TRUE(fill->write(f.id, body.data(), 2 * Fill::kBlockSize + 100).ok());
    fill->checkpoint(1'700'000'000);
    fill->fail(Error{Errc::Closed, 0, "origin went away"});
  }
  auto partial = store_->lookupPartial(kA);
  ASSERT_NE(partial, nullptr);
  ASSERT_EQ(partial->sums.size(), 4u);
  EXPECT_EQ(static_cast<unsigned char>(partial->blocks[0]), 0x03);
  for (uint64_t b = 0; b < 2; ++b)
    EXPECT_EQ(partial->sums[b], blockChecksum(body.data() + b * Fill::kBlockSize, Fill::kBlockSize));
  // The record as stored (a restart between the two runs changes nothing).
  ObjectMeta decoded = decodeMeta(encodeMeta(*partial)).value();
  EXPECT_EQ(decoded.sums, partial->sums);

  auto resumed = newFill();
  ASSERT_TRUE(resumed->adopt(decoded).ok());
  Fill::Fetch f = resumed->firstFetch(0);
  EXPECT_EQ(f.start, 2 * Fill::kBlockSize);
  writeRun(*resumed, f.id, body, f.start);
  ASSERT_TRUE(resumed->fetcherDone(f.id).complete);
  resumed->complete(1'700'000'002);
  auto meta = store_->lookup(kA);
  ASSERT_NE(meta, nullptr);
  expectSumsOf(*meta, body);
}

}  // namespace
}  // namespace orchard::cache
