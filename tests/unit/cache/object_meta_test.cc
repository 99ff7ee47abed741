// Tests for cache/object_meta: encode/decode round trips, and that damaged
// records (every truncation, bad versions, lying lengths, trailing bytes)
// decode to Errc::Corrupt without reading out of bounds; block checksums
// (version 3) and records from before them (version 2) decoding as they are.
#include "cache/object_meta.h"

#include <gtest/gtest.h>

#include <limits>
#include <memory>

#include "tests/unit/cache/meta_v2.h"

namespace orchard::cache {
namespace {

ObjectMeta sampleMeta() {
  ObjectMeta m;
  m.key = "http://swcdn.apple.com/content/downloads/x/InstallAssistant.pkg";
  m.status = 200;
  m.reason = "OK";
  m.size = 12ull << 30;
  m.headers = {{"Content-Type", "application/octet-stream"},
               {"Cache-Control", "max-age=3600"},
               {"X-Empty", ""},
               {"Set-Thing", std::string("bin\0ary", 7)}};
  m.etag = "\"abc123\"";
  m.lastModified = "Tue, 14 Nov 2023 22:13:20 GMT";
  m.requestTime = 1'700'000'000;
  m.responseTime = 1'700'000'001;
  m.lastAccess = -5;  // signed fields survive negative values
  return m;
}

void expectEqual(const ObjectMeta& a, const ObjectMeta& b) {
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.headers, b.headers);
  EXPECT_EQ(a.etag, b.etag);
  EXPECT_EQ(a.lastModified, b.lastModified);
  EXPECT_EQ(a.requestTime, b.requestTime);
  EXPECT_EQ(a.responseTime, b.responseTime);
  EXPECT_EQ(a.lastAccess, b.lastAccess);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.gen, b.gen);
  EXPECT_EQ(a.blockSize, b.blockSize);
  EXPECT_EQ(a.blocks, b.blocks);
  EXPECT_EQ(a.vary, b.vary);
  EXPECT_EQ(a.sums, b.sums);
}

// Decodes from an exactly-sized heap copy so ASan catches any overread.
Result<ObjectMeta> decodeExact(std::string_view bytes) {
  std::unique_ptr<char[]> copy(new char[bytes.size() + 1]);
  std::copy(bytes.begin(), bytes.end(), copy.get());
  return decodeMeta(std::string_view(copy.get(), bytes.size()));
}

TEST(ObjectMeta, RoundTrip) {
  ObjectMeta m = sampleMeta();
  std::string bytes = encodeMeta(m);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), 2);  // format version
  Result<ObjectMeta> d = decodeExact(bytes);
  ASSERT_TRUE(d.ok()) << d.error().message();
  expectEqual(*d, m);
}

TEST(ObjectMeta, PartialRoundTripAndBitmapSizeChecked) {
  ObjectMeta m = sampleMeta();
  m.kind = ObjectMeta::Kind::Partial;
  m.gen = 77;
  m.size = 10 * 1024 * 1024 + 1;  // 11 blocks of 1 MiB
  m.blockSize = 1024 * 1024;
  m.blocks = std::string(2, '\x05');
  Result<ObjectMeta> d = decodeExact(encodeMeta(m));
  ASSERT_TRUE(d.ok()) << d.error().message();
  expectEqual(*d, m);
  m.blocks = std::string(3, '\0');  // wrong bitmap length for 11 blocks
  EXPECT_FALSE(decodeExact(encodeMeta(m)).ok());
  m.blocks = std::string(2, '\0');
  m.blockSize = 0;
  EXPECT_FALSE(decodeExact(encodeMeta(m)).ok());
}

TEST(ObjectMeta, VaryStubRoundTrip) {
  ObjectMeta m;
  m.kind = ObjectMeta::Kind::VaryStub;
  m.key = "http://h/x";
  m.vary = "accept-language";
  Result<ObjectMeta> d = decodeExact(encodeMeta(m));
  ASSERT_TRUE(d.ok());
  expectEqual(*d, m);
}

TEST(ObjectMeta, RoundTripDefaultsAndExtremes) {
  ObjectMeta empty;
  Result<ObjectMeta> d = decodeExact(encodeMeta(empty));
  ASSERT_TRUE(d.ok());
  expectEqual(*d, empty);

  ObjectMeta x;
  x.status = 65535;
  x.size = std::numeric_limits<uint64_t>::max();
  x.requestTime = -(int64_t{1} << 40);  // the widest times a record may carry
  x.responseTime = int64_t{1} << 40;
  x.lastAccess = 0;
  x.key.assign(300, 'k');  // multi-byte length varint
  Result<ObjectMeta> e = decodeExact(encodeMeta(x));
  ASSERT_TRUE(e.ok());
  expectEqual(*e, x);
}

TEST(ObjectMeta, TimesBeyondTheSaneRangeAreCorrupt) {
  for (int64_t t : {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
                    (int64_t{1} << 40) + 1, -(int64_t{1} << 40) - 1}) {
    ObjectMeta m = sampleMeta();
    m.responseTime = t;
    Result<ObjectMeta> d = decodeExact(encodeMeta(m));
    ASSERT_FALSE(d.ok()) << t;
    EXPECT_EQ(d.error().code, Errc::Corrupt);
  }
}

TEST(ObjectMeta, EveryTruncationIsCorrupt) {
  std::string bytes = encodeMeta(sampleMeta());
  for (size_t n = 0; n < bytes.size(); ++n) {
    Result<ObjectMeta> d = decodeExact(std::string_view(bytes).substr(0, n));
    ASSERT_FALSE(d.ok()) << "prefix of " << n << " bytes decoded";
    EXPECT_EQ(d.error().code, Errc::Corrupt);
  }
}

TEST(ObjectMeta, TrailingBytesAreCorrupt) {
  std::string bytes = encodeMeta(sampleMeta()) + '\0';
  Result<ObjectMeta> d = decodeExact(bytes);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, Errc::Corrupt);
}

TEST(ObjectMeta, UnknownVersionIsCorrupt) {
  std::string bytes = encodeMeta(sampleMeta());
  for (uint8_t v : {0, 1, 4, 255}) {
    bytes[0] = static_cast<char>(v);
    Result<ObjectMeta> d = decodeExact(bytes);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, Errc::Corrupt);
  }
}

TEST(ObjectMeta, LyingLengthsAreCorrupt) {
  // version 1, key length = huge
  std::string hugeKey = "\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f";
  EXPECT_EQ(decodeExact(hugeKey).error().code, Errc::Corrupt);
  // overlong varint (11 bytes of continuation)
  std::string overlong = "\x01" + std::string(11, '\x80');
  EXPECT_EQ(decodeExact(overlong).error().code, Errc::Corrupt);
  // 10-byte varint whose last byte overflows 64 bits
  std::string overflow = "\x01" + std::string(9, '\xff') + "\x02";
  EXPECT_EQ(decodeExact(overflow).error().code, Errc::Corrupt);
  // status above 65535: key "", status 65536 (0x80 0x80 0x04)
  std::string bigStatus("\x01\x00\x80\x80\x04", 5);
  EXPECT_EQ(decodeExact(bigStatus).error().code, Errc::Corrupt);
  // header count far beyond the buffer: key "", status 200, reason "", size 0, count 2^40
  std::string manyHeaders("\x01\x00\xc8\x01\x00\x00\x80\x80\x80\x80\x80\x20", 12);
  EXPECT_EQ(decodeExact(manyHeaders).error().code, Errc::Corrupt);
}

TEST(ObjectMeta, FlippedBytesNeverCrash) {
  // Not a proof, but every single-byte corruption must either decode or be
  // Corrupt; under ASan this also checks bounds on all those paths.
  std::string bytes = encodeMeta(sampleMeta());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t v : {0x00, 0x01, 0x7f, 0x80, 0xff}) {
      std::string b = bytes;
      b[i] = static_cast<char>(v);
      Result<ObjectMeta> d = decodeExact(b);
      if (!d.ok()) {
        EXPECT_EQ(d.error().code, Errc::Corrupt);
      }
    }
  }
}

TEST(ObjectMeta, HeaderLookupIsCaseInsensitiveFirstMatch) {
  ObjectMeta m;
  m.headers = {{"Content-Type", "a"}, {"content-type", "b"}, {"ETag", "\"e\""}};
  EXPECT_EQ(m.header("content-type"), "a");
  EXPECT_EQ(m.header("CONTENT-TYPE"), "a");
  EXPECT_EQ(m.header("etag"), "\"e\"");
  EXPECT_EQ(m.header("Content-Typ"), "");
  EXPECT_EQ(m.header("missing"), "");
}

// ---- block checksums (version 3) and the version 2 records before them ----

ObjectMeta withSums(ObjectMeta m, uint32_t blockSize) {
  m.blockSize = blockSize;
  m.sums.clear();
  for (uint64_t b = 0; b < m.blockCount(); ++b) m.sums.push_back(0x0123456789abcdefull * (b + 1));
  return m;
}

TEST(ObjectMeta, CompleteChecksumsRoundTripAsVersion3) {
  ObjectMeta m = sampleMeta();
  m.size = 5 * 1024 + 1;  // 6 blocks of 1 KiB
  m = withSums(m, 1024);
  ASSERT_EQ(m.sums.size(), 6u);
  std::string bytes = encodeMeta(m);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), 3);
  Result<ObjectMeta> d = decodeExact(bytes);
  ASSERT_TRUE(d.ok()) << d.error().message();
  expectEqual(m, *d);
  EXPECT_EQ(encodeMeta(*d), bytes);
  EXPECT_EQ(d->verified, nullptr);  // in memory only: the store sets it
}

TEST(ObjectMeta, PartialEncodesChecksumsOfItsListedBlocksOnly) {
  ObjectMeta m = sampleMeta();
  m.kind = ObjectMeta::Kind::Partial;
  m.size = 10 * 1024;
  m = withSums(m, 1024);
  m.blocks = std::string("\x05\x02", 2);  // blocks 0, 2 and 9
  std::string bytes = encodeMeta(m);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), 3);
  EXPECT_EQ(bytes.size(), oldformat::encodeMetaV2(m).size() + 1 + 3 * 8) << "three checksums, not ten";
  Result<ObjectMeta> d = decodeExact(bytes);
  ASSERT_TRUE(d.ok()) << d.error().message();
  ASSERT_EQ(d->sums.size(), 10u);
  for (uint64_t b : {0, 2, 9}) EXPECT_EQ(d->sums[b], m.sums[b]) << b;
  for (uint64_t b : {1, 3, 8}) EXPECT_EQ(d->sums[b], 0u) << b;
  EXPECT_EQ(encodeMeta(*d), bytes);
}

TEST(ObjectMeta, ChecksumsThatDoNotCoverTheObjectAreNotWritten) {
  ObjectMeta m = withSums(sampleMeta(), 1u << 20);
  m.sums.pop_back();
  EXPECT_EQ(encodeMeta(m), oldformat::encodeMetaV2(m));
}

TEST(ObjectMeta, WithoutChecksumsTheEncodingIsVersion2ByteForByte) {
  ObjectMeta complete = sampleMeta();
  ObjectMeta partial = sampleMeta();
  partial.kind = ObjectMeta::Kind::Partial;
  partial.size = 3000;
  partial.blockSize = 1024;
  partial.blocks = "\x03";
  ObjectMeta stub;
  stub.kind = ObjectMeta::Kind::VaryStub;
  stub.key = "http://h/v";
  stub.vary = "accept-encoding";
  for (const ObjectMeta& m : {complete, partial, stub}) {
    std::string old = oldformat::encodeMetaV2(m);
    EXPECT_EQ(encodeMeta(m), old);
    Result<ObjectMeta> d = decodeExact(old);  // a record written by a store before the upgrade
    ASSERT_TRUE(d.ok()) << d.error().message();
    expectEqual(m, *d);
    EXPECT_TRUE(d->sums.empty());
  }
}

TEST(ObjectMeta, DamagedChecksumsAreCorrupt) {
  ObjectMeta m = sampleMeta();
  m.size = 3 * 1024;
  m = withSums(m, 1024);
  std::string bytes = encodeMeta(m);
  // Every truncation, including inside the checksums.
  for (size_t n = 0; n < bytes.size(); ++n)
    ASSERT_FALSE(decodeExact(std::string_view(bytes).substr(0, n)).ok()) << n;
  // A count that is not the block count: the count byte is just before the 24 checksum bytes.
  std::string wrong = bytes;
  wrong[wrong.size() - 25] = 2;
  EXPECT_EQ(decodeExact(wrong).error().code, Errc::Corrupt);
  // Checksums on a Vary stub.
  ObjectMeta stub;
  stub.kind = ObjectMeta::Kind::VaryStub;
  std::string stubBytes = oldformat::encodeMetaV2(stub);
  stubBytes[0] = 3;
  stubBytes.push_back('\0');
  EXPECT_EQ(decodeExact(stubBytes).error().code, Errc::Corrupt);
}

TEST(ObjectMeta, VerifiedBlocksMarksEachBlockAndThenAll) {
  VerifiedBlocks v(130);
  EXPECT_FALSE(v.allVerified());
  for (uint64_t b = 0; b < 130; ++b) {
    EXPECT_FALSE(v.test(b));
    v.mark(b);
    v.mark(b);  // twice counts once
    EXPECT_TRUE(v.test(b));
    EXPECT_EQ(v.allVerified(), b == 129);
  }
  EXPECT_TRUE(VerifiedBlocks(0).allVerified());
  uint8_t data[3] = {1, 2, 3};
  EXPECT_NE(blockChecksum(data, 3), blockChecksum(data, 2));
}

}  // namespace
}  // namespace orchard::cache
