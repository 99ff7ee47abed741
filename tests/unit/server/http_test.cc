// Tests for server/http's header utilities: case-insensitive lookup, token
// lists (several fields, spaces, empty members), and endToEndHeaders, which
// drops hop-by-hop fields and the ones the message's Connection names while
// keeping every other field, duplicates included, in order.
#include "server/http/message.h"

#include <gtest/gtest.h>

namespace orchard::server {
namespace {

TEST(Http, IEquals) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("Host", "Hosts"));
  EXPECT_FALSE(iequals("Host", "Hose"));
}

TEST(Http, FindHeaderIsCaseInsensitiveAndReturnsTheFirst) {
  const HeaderList h = {{"Content-Type", "text/plain"}, {"X-Dup", "one"}, {"x-dup", "two"}, {"ETAG", "\"v\""},
                        {"Empty", ""}};
  EXPECT_EQ(findHeader(h, "content-type"), "text/plain");
  EXPECT_EQ(findHeader(h, "CONTENT-TYPE"), "text/plain");
  EXPECT_EQ(findHeader(h, "Content-Type"), "text/plain");
  EXPECT_EQ(findHeader(h, "etag"), "\"v\"");
  EXPECT_EQ(findHeader(h, "X-DUP"), "one");
  ASSERT_TRUE(findHeader(h, "empty").has_value());
  EXPECT_EQ(*findHeader(h, "empty"), "");
  EXPECT_FALSE(findHeader(h, "Content").has_value());
  EXPECT_FALSE(findHeader(h, "Content-Type2").has_value());
  EXPECT_FALSE(findHeader({}, "Host").has_value());
}

TEST(Http, RequestHeadHeaderUsesFindHeader) {
  RequestHead r;
  r.headers = {{"Host", "swcdn.apple.com"}};
  EXPECT_EQ(r.header("HOST"), "swcdn.apple.com");
  EXPECT_FALSE(r.header("Range").has_value());
}

TEST(Http, HeaderHasToken) {
  struct Case {
    HeaderList h;
    const char* name;
    const char* token;
    bool want;
  } cases[] = {
      {{{"Connection", "close"}}, "connection", "close", true},
      {{{"Connection", "Close"}}, "Connection", "CLOSE", true},
      {{{"Connection", "keep-alive, Upgrade"}}, "Connection", "upgrade", true},
      {{{"Connection", "keep-alive,Upgrade"}}, "Connection", "keep-alive", true},
      {{{"Connection", " \tkeep-alive \t, upgrade\t "}}, "Connection", "keep-alive", true},
      {{{"Connection", ",, close ,,"}}, "Connection", "close", true},
      {{{"Connection", "keep-alive"}, {"connection", "X-Foo"}}, "Connection", "x-foo", true},  // second field
      {{{"Cache-Control", "no-cache, no-store"}}, "Cache-Control", "no-store", true},
      {{{"Connection", "closed"}}, "Connection", "close", false},  // whole tokens only
      {{{"Connection", "clo"}}, "Connection", "close", false},
      {{{"Connection", "keep alive"}}, "Connection", "keep", false},
      {{{"Connection", ""}}, "Connection", "close", false},
      {{{"Connection", ", ,"}}, "Connection", "", false},  // empty members are not tokens
      {{{"Keep-Alive", "close"}}, "Connection", "close", false},  // other field
      {{}, "Connection", "close", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.name) + " / " + c.token + " in " + (c.h.empty() ? "" : c.h.front().second));
    EXPECT_EQ(headerHasToken(c.h, c.name, c.token), c.want);
  }
}

TEST(Http, IsHopByHop) {
  for (const char* n : {"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding",
                        "Upgrade", "Proxy-Authenticate", "Proxy-Authorization", "Content-Length"})
    EXPECT_TRUE(isHopByHop(n)) << n;
  for (const char* n : {"Content-Type", "ETag", "Trailers", "Age", "Date", "Cache-Control", "Authorization", ""})
    EXPECT_FALSE(isHopByHop(n)) << n;
}

TEST(Http, EndToEndHeadersDropsHopByHopAndConnectionNamed) {
  const HeaderList in = {
      {"Date", "Sun, 06 Nov 1994 08:49:37 GMT"},
      {"Connection", "keep-alive, X-Secret , x-other"},
      {"Content-Type", "application/octet-stream"},
      {"Keep-Alive", "timeout=5"},
      {"X-Secret", "1"},
      {"Transfer-Encoding", "chunked"},
      {"Set-Cookie", "a=1"},
      {"Content-Length", "10"},
      {"x-OTHER", "2"},
      {"Set-Cookie", "b=2"},
      {"TE", "trailers"},
      {"Upgrade", "h2c"},
      {"Trailer", "X-Checksum"},
      {"Proxy-Authenticate", "Basic"},
      {"Proxy-Connection", "keep-alive"},
      {"ETag", "\"v1\""},
      {"X-Secret-Not", "kept"},
  };
  const HeaderList want = {
      {"Date", "Sun, 06 Nov 1994 08:49:37 GMT"},
      {"Content-Type", "application/octet-stream"},
      {"Set-Cookie", "a=1"},
      {"Set-Cookie", "b=2"},
      {"ETag", "\"v1\""},
      {"X-Secret-Not", "kept"},
  };
  EXPECT_EQ(endToEndHeaders(in), want);
}

TEST(Http, EndToEndHeadersUsesEveryConnectionField) {
  const HeaderList in = {{"connection", "X-A"}, {"X-A", "1"}, {"X-B", "2"}, {"CONNECTION", "x-b"}, {"X-C", "3"}};
  EXPECT_EQ(endToEndHeaders(in), (HeaderList{{"X-C", "3"}}));
}

TEST(Http, EndToEndHeadersKeepsEverythingWithoutHopByHop) {
  const HeaderList in = {{"B", "2"}, {"A", "1"}, {"B", "3"}, {"Age", "5"}};
  EXPECT_EQ(endToEndHeaders(in), in);
  EXPECT_TRUE(endToEndHeaders({}).empty());
}

TEST(Http, ReasonPhrase) {
  EXPECT_STREQ(reasonPhrase(200), "OK");
  EXPECT_STREQ(reasonPhrase(206), "Partial Content");
  EXPECT_STREQ(reasonPhrase(403), "Forbidden");
  EXPECT_STREQ(reasonPhrase(501), "Not Implemented");
  // Every status the box's own routes answer has its phrase (the JSON
  // errors' "error" is it): 401, 409, 414, 422, 507.
  EXPECT_STREQ(reasonPhrase(401), "Unauthorized");
  EXPECT_STREQ(reasonPhrase(409), "Conflict");
  EXPECT_STREQ(reasonPhrase(414), "URI Too Long");
  EXPECT_STREQ(reasonPhrase(422), "Unprocessable Content");
  EXPECT_STREQ(reasonPhrase(507), "Insufficient Storage");
  EXPECT_STREQ(reasonPhrase(799), "Unknown");
}

// requestHeadProblem: the RFC 9112 rules llhttp leaves to us, one row each.
TEST(Http, RequestHeadProblemTable) {
  struct Row {
    const char* name;
    std::string method;
    uint8_t minor;
    HeaderList headers;
    bool chunked;
    std::optional<uint64_t> length;
    bool refused;
  };
  const Row rows[] = {
      {"plain GET", "GET", 1, {{"Host", "a"}}, false, std::nullopt, false},
      {"GET with Content-Length: 0", "GET", 1, {{"Host", "a"}, {"Content-Length", "0"}}, false, 0, false},
      {"GET with a body", "GET", 1, {{"Host", "a"}, {"Content-Length", "65"}}, false, 65, true},
      {"HEAD with a body", "HEAD", 1, {{"Host", "a"}, {"Content-Length", "3"}}, false, 3, true},
      {"GET chunked", "GET", 1, {{"Host", "a"}, {"Transfer-Encoding", "chunked"}}, true, std::nullopt, true},
      {"POST with a body", "POST", 1, {{"Host", "a"}, {"Content-Length", "3"}}, false, 3, false},
      {"POST chunked", "POST", 1, {{"Host", "a"}, {"Transfer-Encoding", " Chunked "}}, true, std::nullopt, false},
      {"POST gzip", "POST", 1, {{"Host", "a"}, {"Transfer-Encoding", "gzip"}}, true, std::nullopt, true},
      {"POST gzip, chunked", "POST", 1, {{"Host", "a"}, {"Transfer-Encoding", "gzip, chunked"}}, true,
       std::nullopt, true},
      {"two TE fields", "POST", 1, {{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}},
       true, std::nullopt, true},
      {"space before colon", "GET", 1, {{"Host ", "a"}}, false, std::nullopt, true},
      {"tab in a name", "GET", 1, {{"Host", "a"}, {"X\tY", "1"}}, false, std::nullopt, true},
      {"empty name", "GET", 1, {{"Host", "a"}, {"", "1"}}, false, std::nullopt, true},
      {"no Host on 1.1", "GET", 1, {{"User-Agent", "x"}}, false, std::nullopt, true},
      {"no Host on 1.0", "GET", 0, {{"User-Agent", "x"}}, false, std::nullopt, false},
      {"two Hosts", "GET", 1, {{"Host", "a"}, {"host", "a"}}, false, std::nullopt, true},
      {"two Hosts on 1.0", "GET", 0, {{"Host", "a"}, {"Host", "b"}}, false, std::nullopt, true},
      {"chunked on 1.0", "POST", 0, {{"Transfer-Encoding", "chunked"}}, true, std::nullopt, true},
  };
  for (const Row& r : rows) {
    RequestHead h;
    h.method = r.method;
    h.versionMinor = r.minor;
    h.headers = r.headers;
    h.chunked = r.chunked;
    h.contentLength = r.length;
    EXPECT_EQ(requestHeadProblem(h) != nullptr, r.refused) << r.name;
  }
}

TEST(Http, TokenChars) {
  for (char c : std::string("!#$%&'*+-.^_`|~09azAZ")) EXPECT_TRUE(isTokenChar(static_cast<unsigned char>(c))) << c;
  for (char c : std::string(" \t:\"(),/;<=>?@[\\]{}\x7f")) EXPECT_FALSE(isTokenChar(static_cast<unsigned char>(c))) << int(c);
  EXPECT_FALSE(isTokenChar(0));
  EXPECT_FALSE(isTokenChar(0x80));
}

}  // namespace
}  // namespace orchard::server
