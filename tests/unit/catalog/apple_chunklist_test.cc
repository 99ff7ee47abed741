// catalog/apple/chunklist: the parser against good and hostile files (every
// header field, counts and offsets that overflow or run past the end, every
// truncation), and the verifier against every split of the same stream into
// writes, a wrong digest at each chunk, a flipped byte at each position,
// too many and too few bytes. Chunklists are built here by a small writer
// (the layout in chunklist.h), with chunk sizes far below Apple's so every
// position can be tried.
#include "catalog/apple/chunklist.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "catalog/digest.h"

namespace orchard::catalog::apple {
namespace {

void putLe(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>(v >> (8 * i) & 0xff));
}

struct Header {
  uint32_t magic = kChunklistMagic;
  uint32_t headerSize = 36;
  uint8_t version = 1;
  uint8_t method = 1;
  uint8_t signatureMethod = 2;
  uint64_t count = 0;      // 0: the real count
  uint64_t offset = 36;
  uint64_t signature = 0;  // 0: just after the entries
};

std::string header(const Header& h) {
  std::string out;
  putLe(&out, h.magic, 4);
  putLe(&out, h.headerSize, 4);
  out.push_back(static_cast<char>(h.version));
  out.push_back(static_cast<char>(h.method));
  out.push_back(static_cast<char>(h.signatureMethod));
  out.push_back(0);
  putLe(&out, h.count, 8);
  putLe(&out, h.offset, 8);
  putLe(&out, h.signature, 8);
  return out;
}

// A chunklist for `data` in chunks of `chunk` bytes (the last one short).
std::string build(std::string_view data, size_t chunk, Header h = {}, int badChunk = -1) {
  std::string entries;
  uint64_t count = 0;
  for (size_t off = 0, i = 0; off < data.size(); off += chunk, ++i) {
    std::string_view c = data.substr(off, chunk);
    Sha256Digest d = sha256(c);
    if (static_cast<int>(i) == badChunk) d[5] ^= 0x40;
    putLe(&entries, c.size(), 4);
    entries.append(reinterpret_cast<const char*>(d.data()), d.size());
    ++count;
  }
  if (h.count == 0) h.count = count;
  if (h.signature == 0) h.signature = 36 + entries.size();
  return header(h) + entries + std::string(256, 's');
}

std::string stream(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 12345;
  for (auto& c : s) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 16);
  }
  return s;
}

TEST(AppleChunklist, ParsesEntriesAndTotal) {
  const std::string data = stream(1000);
  auto r = parseChunklist(build(data, 300));
  ASSERT_TRUE(r) << r.error().context;
  ASSERT_EQ(r->chunks.size(), 4u);
  EXPECT_EQ(r->chunks[0].size, 300u);
  EXPECT_EQ(r->chunks[3].size, 100u);
  EXPECT_EQ(r->totalSize(), 1000u);
  Sha256Digest d = sha256(std::string_view(data).substr(300, 300));
  EXPECT_EQ(0, std::memcmp(r->chunks[1].sha256.data(), d.data(), 32));
}

TEST(AppleChunklist, EntriesMayStartAfterAGapAndHaveNoSignature) {
  const std::string data = stream(100);
  std::string entries = build(data, 64).substr(36);  // entries + signature
  std::string file = header(Header{.count = 2, .offset = 40, .signature = 40 + 72}) + "gap!" + entries;
  auto r = parseChunklist(file);
  ASSERT_TRUE(r) << r.error().context;
  EXPECT_EQ(r->totalSize(), 100u);
  // signatureOffset 0 means none.
  std::string noSig = header(Header{.count = 2, .offset = 36, .signature = 0}) + entries.substr(0, 72);
  EXPECT_TRUE(parseChunklist(noSig));
}

struct Hostile {
  const char* name;
  std::string bytes;
  const char* error;  // a substring of the context
};

TEST(AppleChunklist, RefusesHostileFiles) {
  const std::string data = stream(500);
  const std::string good = build(data, 100);
  std::string zeroChunk = good;
  std::memset(&zeroChunk[36], 0, 4);
  const std::vector<Hostile> cases = {
      {"empty", "", "shorter than its header"},
      {"35 bytes", good.substr(0, 35), "shorter than its header"},
      {"bad magic", build(data, 100, Header{.magic = 0x4C4B4E44}), "bad magic"},
      {"header size", build(data, 100, Header{.headerSize = 40}), "header size"},
      {"version 2", build(data, 100, Header{.version = 2}), "file version"},
      {"method 2", build(data, 100, Header{.method = 2}), "SHA-256"},
      {"no chunks", header(Header{.count = 0, .signature = 36}), "no chunks"},
      {"count + 1 (into the signature)", build(data, 100, Header{.count = 6}), "signature offset"},
      {"count past the end", build(data, 100, Header{.count = 13}), "past the end"},
      {"count 2^63", build(data, 100, Header{.count = 1ull << 63}), "past the end"},
      {"count * 36 wraps", build(data, 100, Header{.count = 0x71C71C71C71C71C8ull}), "past the end"},
      {"count max", build(data, 100, Header{.count = ~0ull}), "past the end"},
      {"offset inside header", build(data, 100, Header{.offset = 35}), "overlap the header"},
      {"offset 0", build(data, 100, Header{.offset = 0}), "overlap the header"},
      {"offset past end", build(data, 100, Header{.offset = 1u << 20}), "past the end"},
      {"offset max", build(data, 100, Header{.offset = ~0ull}), "past the end"},
      {"offset + entries one past end", build(data, 100, Header{.offset = 36 + 256 + 1}), "past the end"},
      {"signature inside entries", build(data, 100, Header{.signature = 40}), "signature offset"},
      {"signature past end", build(data, 100, Header{.signature = 1u << 20}), "signature offset"},
      {"chunk of size 0", zeroChunk, "size 0"},
      {"larger than 8 MiB", good + std::string(kChunklistMaxBytes, '\0'), "larger than"},
  };
  for (const auto& c : cases) {
    auto r = parseChunklist(c.bytes);
    ASSERT_FALSE(r) << c.name;
    EXPECT_EQ(r.error().code, Errc::Invalid) << c.name;
    EXPECT_NE(std::string(r.error().context).find(c.error), std::string::npos)
        << c.name << ": " << r.error().context;
  }
}

TEST(AppleChunklist, EveryTruncationBeforeTheEntriesEndIsRefused) {
  const std::string good = build(stream(450), 100);  // 5 entries end at 36 + 180
  const size_t entriesEnd = 36 + 5 * 36;
  for (size_t n = 0; n < good.size(); ++n) {
    auto r = parseChunklist(std::string_view(good).substr(0, n));
    // A cut signature is not seen here (nothing checks it), a cut entry is.
    EXPECT_EQ(bool(r), n >= entriesEnd) << n;
  }
}

Chunklist parsed(std::string_view data, size_t chunk, int bad = -1) {
  auto r = parseChunklist(build(data, chunk, {}, bad));
  EXPECT_TRUE(r);
  return r ? std::move(*r) : Chunklist{};
}

TEST(AppleChunkVerifier, AcceptsTheStreamInEverySplit) {
  const std::string data = stream(7 * 13 + 5);  // chunks of 13, the last one 5
  for (size_t step = 1; step <= data.size(); ++step) {
    ChunkVerifier v(parsed(data, 13));
    for (size_t off = 0; off < data.size(); off += step) {
      const size_t n = std::min(step, data.size() - off);
      ASSERT_TRUE(v.update(data.data() + off, n)) << "step " << step << " at " << off << ": " << v.failure();
    }
    EXPECT_TRUE(v.finish()) << "step " << step << ": " << v.failure();
    EXPECT_EQ(v.bytesSeen(), data.size());
    EXPECT_TRUE(v.failure().empty());
  }
}

TEST(AppleChunkVerifier, EmptyWritesChangeNothing) {
  const std::string data = stream(40);
  ChunkVerifier v(parsed(data, 16));
  EXPECT_TRUE(v.update(data.data(), 0));
  EXPECT_TRUE(v.update(data.data(), 16));
  EXPECT_TRUE(v.update(nullptr, 0));
  EXPECT_TRUE(v.update(data.data() + 16, 24));
  EXPECT_TRUE(v.finish());
}

TEST(AppleChunkVerifier, AWrongDigestFailsAtThatChunkInEverySplit) {
  const std::string data = stream(5 * 11 + 3);  // 6 chunks
  for (int bad = 0; bad < 6; ++bad) {
    for (size_t step : {size_t(1), size_t(4), size_t(11), size_t(12), size_t(58)}) {
      ChunkVerifier v(parsed(data, 11, bad));
      bool ok = true;
      for (size_t off = 0; off < data.size() && ok; off += step) ok = v.update(data.data() + off, std::min(step, data.size() - off));
      EXPECT_FALSE(ok) << bad << "/" << step;
      EXPECT_FALSE(v.finish());
      const uint64_t end = std::min<uint64_t>((bad + 1) * 11, data.size());
      // The verifier stops at the end of the bad chunk; bytes after it in
      // the same write are not counted.
      EXPECT_EQ(v.bytesSeen(), end) << bad << "/" << step;
      EXPECT_NE(v.failure().find("chunk " + std::to_string(bad) + " of 6"), std::string::npos) << v.failure();
      // Once failed, nothing more is accepted.
      EXPECT_FALSE(v.update(data.data(), 1));
    }
  }
}

TEST(AppleChunkVerifier, AFlippedByteAnywhereFailsItsChunk) {
  const std::string data = stream(4 * 9 + 2);
  const Chunklist list = parsed(data, 9);
  for (size_t pos = 0; pos < data.size(); ++pos) {
    std::string bad = data;
    bad[pos] ^= 1;
    ChunkVerifier v(list);
    EXPECT_FALSE(v.update(bad.data(), bad.size())) << pos;
    EXPECT_NE(v.failure().find("chunk " + std::to_string(pos / 9) + " "), std::string::npos) << pos << v.failure();
  }
}

TEST(AppleChunkVerifier, TooManyOrTooFewBytes) {
  const std::string data = stream(30);
  {
    ChunkVerifier v(parsed(data, 10));
    EXPECT_TRUE(v.update(data.data(), 30));
    EXPECT_FALSE(v.update("x", 1));
    EXPECT_NE(v.failure().find("more bytes"), std::string::npos);
    EXPECT_FALSE(v.finish());
  }
  {
    const std::string more = data + "y";
    ChunkVerifier v(parsed(data, 10));
    EXPECT_FALSE(v.update(more.data(), more.size()));
    EXPECT_EQ(v.bytesSeen(), 30u);
  }
  for (size_t n = 0; n < 30; ++n) {
    ChunkVerifier v(parsed(data, 10));
    EXPECT_TRUE(v.update(data.data(), n));
    EXPECT_FALSE(v.finish()) << n;
    EXPECT_NE(v.failure().find("ended in chunk " + std::to_string(n / 10)), std::string::npos) << v.failure();
    EXPECT_FALSE(v.finish());  // stays failed
  }
}

}  // namespace
}  // namespace orchard::catalog::apple
