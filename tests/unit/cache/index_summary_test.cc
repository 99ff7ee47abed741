// The start-up path's decoders: decodeMetaSummary() must accept and reject
// exactly what decodeMeta() does and agree with it on every field it
// reads, on records of every kind and version and on damaged ones; and the
// "cache.summary" value (encodeSummary()/decodeSummary()) round-trips and
// marks a bad record as one.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "cache/index.h"
#include "cache/object_meta.h"
#include "tests/unit/cache/meta_v2.h"

namespace orchard::cache {
namespace {

std::vector<ObjectMeta> samples() {
  std::vector<ObjectMeta> out;
  ObjectMeta c;
  c.key = "http://swcdn.apple.com/content/downloads/x/InstallAssistant.pkg";
  c.size = 3 * kChecksumBlockSize + 7;
  c.gen = 123456789;
  c.headers = {{"Content-Type", "application/octet-stream"}, {"ETag", "\"v\""}};
  c.responseTime = 1'700'000'000;
  c.lastAccess = 1'700'000'500;
  out.push_back(c);  // no checksums: version 2
  c.blockSize = kChecksumBlockSize;
  c.sums = {1, 2, 3, 4};
  out.push_back(c);  // version 3
  ObjectMeta p = c;
  p.kind = ObjectMeta::Kind::Partial;
  p.blocks = std::string(1, '\x05');
  p.sums = {9, 0, 8, 0};
  out.push_back(p);
  ObjectMeta s;
  s.key = "http://swcdn.apple.com/varies";
  s.kind = ObjectMeta::Kind::VaryStub;
  s.vary = "accept-encoding";
  s.lastAccess = -3;
  out.push_back(s);
  return out;
}

void expectSameVerdict(std::string_view bytes) {
  Result<ObjectMeta> full = decodeMeta(bytes);
  Result<MetaSummary> sum = decodeMetaSummary(bytes);
  ASSERT_EQ(full.ok(), sum.ok());
  if (!full) return;
  EXPECT_EQ(sum->kind, full->kind);
  EXPECT_EQ(sum->gen, full->gen);
  EXPECT_EQ(sum->size, full->size);
  EXPECT_EQ(sum->key, full->key);
  EXPECT_EQ(sum->responseTime, full->responseTime);
  EXPECT_EQ(sum->lastAccess, full->lastAccess);
  EXPECT_EQ(sum->sums, full->kind == ObjectMeta::Kind::Complete && !full->sums.empty());
}

TEST(MetaSummaryTest, AgreesWithTheFullDecodeOnEveryKindAndVersion) {
  for (const ObjectMeta& m : samples()) {
    expectSameVerdict(encodeMeta(m));
    if (m.sums.empty()) expectSameVerdict(oldformat::encodeMetaV2(m));
  }
}

TEST(MetaSummaryTest, AgreesWithTheFullDecodeOnDamagedRecords) {
  std::mt19937_64 rng(7);
  for (const ObjectMeta& m : samples()) {
    const std::string good = encodeMeta(m);
    for (size_t cut = 0; cut < good.size(); ++cut) expectSameVerdict(std::string_view(good).substr(0, cut));
    for (int i = 0; i < 2000; ++i) {
      std::string bad = good;
      bad[rng() % bad.size()] = static_cast<char>(rng());
      expectSameVerdict(bad);
    }
    expectSameVerdict(good + "x");
  }
}

TEST(IndexSummaryTest, RoundTripsAndMarksBadRecords) {
  for (const ObjectMeta& m : samples()) {
    const Hash128 h = hashKey(m.key);
    IndexSummary s;
    const std::string enc = encodeSummary(h, encodeMeta(m));
    EXPECT_LE(enc.size(), 24u);
    ASSERT_TRUE(decodeSummary(enc, &s));
    EXPECT_TRUE(s.valid);
    EXPECT_EQ(s.kind, m.kind);
    EXPECT_EQ(s.gen, m.gen);
    EXPECT_EQ(s.size, m.size);
    EXPECT_EQ(s.usedAt, static_cast<uint32_t>(std::max<int64_t>(0, std::max(m.lastAccess, m.responseTime))));
    EXPECT_EQ(s.sums, m.kind == ObjectMeta::Kind::Complete && !m.sums.empty());
    // Under another hash, or undecodable: a bad record.
    ASSERT_TRUE(decodeSummary(encodeSummary(Hash128{1, 2}, encodeMeta(m)), &s));
    EXPECT_FALSE(s.valid);
  }
  IndexSummary s;
  ASSERT_TRUE(decodeSummary(encodeSummary(Hash128{1, 2}, "\x01garbage"), &s));
  EXPECT_FALSE(s.valid);
  EXPECT_FALSE(decodeSummary("", &s));
  EXPECT_FALSE(decodeSummary(std::string("\x02\x00\x00\x01\x01\x01", 6), &s));  // unknown version
  EXPECT_FALSE(decodeSummary(std::string("\x01\x00\x00\x01\x01\x01\x01", 7), &s));  // trailing byte
}

}  // namespace
}  // namespace orchard::cache
