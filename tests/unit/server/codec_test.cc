// Table tests of Http1Codec (server/http/codec.h): every request and response
// shape parsed whole and split at every byte boundary (the same head, body
// and events whatever the split), pipelined messages with pause and resume,
// the head limits (TooLarge, the 431 case) against syntax errors (Invalid,
// the 400 case), the version rules, 1xx interim answers, and the sink
// stopping the parse.
#include "server/http/codec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace orchard::server {
namespace {

using S = Http1Codec::Status;

// Records everything the codec hands its sink.
struct Recorder final : Http1Codec::Sink {
  Http1Codec* codec = nullptr;
  std::vector<RequestHead> requests;
  std::vector<ResponseHead> responses;
  std::vector<std::string> bodies;  // one per message, appended as it arrives
  int begins = 0;
  int ends = 0;
  Http1Codec::Next next = Http1Codec::Next::Body;
  bool stopInBody = false;
  bool stopAtEnd = false;

  void onMessageBegin() override {
    ++begins;
    bodies.emplace_back();
  }
  Http1Codec::Next onHead() override {
    requests.push_back(std::move(codec->request()));
    responses.push_back(std::move(codec->response()));
    return next;
  }
  bool onBody(const char* at, size_t n) override {
    bodies.back().append(at, n);
    return !stopInBody;
  }
  bool onMessageEnd() override {
    ++ends;
    return !stopAtEnd;
  }
};

struct Run {
  std::vector<S> statuses;  // each non-NeedMore status, in order
  S last = S::NeedMore;
};

// Feeds `chunks` one after the other as reads; after each message, resumes
// and parses the rest of that read (as ClientConn does with pending bytes).
// Stops at the first error. `eof`: then calls finish().
Run feed(Http1Codec& codec, const std::vector<std::string>& chunks, bool eof = false) {
  Run run;
  for (const std::string& chunk : chunks) {
    size_t at = 0;
    while (at < chunk.size()) {
      Http1Codec::Result r = codec.execute(chunk.data() + at, chunk.size() - at);
      run.last = r.status;
      if (r.status == S::NeedMore) break;
      run.statuses.push_back(r.status);
      if (r.status != S::Message) return run;
      at += r.consumed;
      codec.resume();
    }
  }
  if (eof) {
    Http1Codec::Result r = codec.finish();
    run.last = r.status;
    if (r.status != S::NeedMore) run.statuses.push_back(r.status);
  }
  return run;
}

constexpr Http1Codec::Limits kClient{64 * 1024, 256};
constexpr Http1Codec::Limits kOrigin{64 * 1024, SIZE_MAX};

struct Parsed {
  Recorder rec;
  Run run;
};

void parse(Parsed& p, Http1Codec::Type type, const std::vector<std::string>& chunks, bool eof = false,
           Http1Codec::Limits limits = kClient) {
  Http1Codec codec(type, &p.rec, limits);
  p.rec.codec = &codec;
  p.run = feed(codec, chunks, eof);
}

// ---- requests ----

struct RequestCase {
  const char* name;
  std::string bytes;
  size_t messages;  // complete requests in `bytes`
};

const std::vector<RequestCase>& requestCases() {
  static const std::vector<RequestCase> k = {
      {"simple GET", "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n", 1},
      {"many fields, whitespace to trim",
       "GET /x HTTP/1.1\r\nHost: h\r\nAccept: */* \t\r\nRange:  bytes=0-9\t\r\nX-Empty:\r\nUser-Agent: a b c\r\n\r\n", 1},
      {"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", 1},
      {"content-length body", "PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world", 1},
      {"chunked body", "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
       1},
      {"pipelined", "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
       3},
      {"pipelined after a body",
       "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\nHost: h\r\n\r\n", 2},
  };
  return k;
}

TEST(Http1Codec, RequestsParseTheSameAtEverySplit) {
  for (const RequestCase& c : requestCases()) {
    Parsed whole;
    parse(whole, Http1Codec::Type::Request, {c.bytes});
    ASSERT_EQ(whole.rec.ends, static_cast<int>(c.messages)) << c.name;
    ASSERT_EQ(whole.run.statuses, std::vector<S>(c.messages, S::Message)) << c.name;
    for (size_t i = 1; i < c.bytes.size(); ++i) {
      Parsed split;
      parse(split, Http1Codec::Type::Request, {c.bytes.substr(0, i), c.bytes.substr(i)});
      SCOPED_TRACE(std::string(c.name) + ", split at " + std::to_string(i));
      ASSERT_EQ(split.rec.ends, whole.rec.ends);
      ASSERT_EQ(split.rec.requests.size(), whole.rec.requests.size());
      for (size_t m = 0; m < whole.rec.requests.size(); ++m) {
        const RequestHead& a = whole.rec.requests[m];
        const RequestHead& b = split.rec.requests[m];
        EXPECT_EQ(a.method, b.method);
        EXPECT_EQ(a.target, b.target);
        EXPECT_EQ(a.headers, b.headers);
        EXPECT_EQ(a.keepAlive, b.keepAlive);
        EXPECT_EQ(a.chunked, b.chunked);
        EXPECT_EQ(a.contentLength, b.contentLength);
      }
      EXPECT_EQ(split.rec.bodies, whole.rec.bodies);
    }
  }
}

TEST(Http1Codec, RequestHeadFields) {
  Parsed p;
  parse(p, Http1Codec::Type::Request, {requestCases()[1].bytes});
  ASSERT_EQ(p.rec.requests.size(), 1u);
  const RequestHead& r = p.rec.requests[0];
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/x");
  EXPECT_EQ(r.versionMajor, 1);
  EXPECT_EQ(r.versionMinor, 1);
  EXPECT_TRUE(r.keepAlive);
  EXPECT_FALSE(r.hasBody());
  const HeaderList want = {{"Host", "h"}, {"Accept", "*/*"}, {"Range", "bytes=0-9"}, {"X-Empty", ""}, {"User-Agent", "a b c"}};
  EXPECT_EQ(r.headers, want);
}

TEST(Http1Codec, RequestFraming) {
  Parsed p;
  parse(p, Http1Codec::Type::Request, {requestCases()[2].bytes});
  ASSERT_EQ(p.rec.requests.size(), 1u);
  EXPECT_FALSE(p.rec.requests[0].keepAlive);
  EXPECT_EQ(p.rec.requests[0].versionMinor, 0);

  Parsed cl;
  parse(cl, Http1Codec::Type::Request, {requestCases()[3].bytes});
  ASSERT_EQ(cl.rec.requests.size(), 1u);
  EXPECT_EQ(cl.rec.requests[0].contentLength, 11u);
  EXPECT_FALSE(cl.rec.requests[0].chunked);
  EXPECT_EQ(cl.rec.bodies[0], "hello world");

  Parsed ch;
  parse(ch, Http1Codec::Type::Request, {requestCases()[4].bytes});
  ASSERT_EQ(ch.rec.requests.size(), 1u);
  EXPECT_TRUE(ch.rec.requests[0].chunked);
  EXPECT_FALSE(ch.rec.requests[0].contentLength);
  EXPECT_EQ(ch.rec.bodies[0], "hello world");

  // A coding other than chunked still counts as a body (refused later by
  // requestHeadProblem(), never read as bodiless).
  Parsed gz;
  parse(gz, Http1Codec::Type::Request, {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"});
  ASSERT_EQ(gz.rec.requests.size(), 1u);
  EXPECT_TRUE(gz.rec.requests[0].chunked);
  EXPECT_TRUE(gz.rec.requests[0].hasBody());

  Parsed close;
  parse(close, Http1Codec::Type::Request, {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"});
  ASSERT_EQ(close.rec.requests.size(), 1u);
  EXPECT_FALSE(close.rec.requests[0].keepAlive);
}

TEST(Http1Codec, PipelinedMessagesPauseBetween) {
  Recorder rec;
  Http1Codec codec(Http1Codec::Type::Request, &rec, kClient);
  rec.codec = &codec;
  const std::string two = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
  Http1Codec::Result r = codec.execute(two.data(), two.size());
  ASSERT_EQ(r.status, S::Message);
  EXPECT_EQ(r.consumed, two.size() / 2);  // the second request is left unparsed
  EXPECT_EQ(rec.ends, 1);
  codec.resume();
  r = codec.execute(two.data() + r.consumed, two.size() - r.consumed);
  ASSERT_EQ(r.status, S::Message);
  EXPECT_EQ(r.consumed, two.size() / 2);
  ASSERT_EQ(rec.requests.size(), 2u);
  EXPECT_EQ(rec.requests[1].target, "/2");
}

struct ErrorCase {
  const char* name;
  std::string bytes;
  S want;
};

std::string fields(int count) {
  std::string s;
  for (int i = 0; i < count; ++i) s += "X-F" + std::to_string(i) + ": v\r\n";
  return s;
}

TEST(Http1Codec, RequestLimitsAndErrors) {
  const std::string big(64 * 1024, 'a');
  const std::vector<ErrorCase> cases = {
      {"target over 64 KiB", "GET /" + big + " HTTP/1.1\r\nHost: h\r\n\r\n", S::TooLarge},
      {"one value over 64 KiB", "GET / HTTP/1.1\r\nHost: h\r\nX: " + big + "\r\n\r\n", S::TooLarge},
      {"fields adding up past 64 KiB",
       "GET / HTTP/1.1\r\nHost: h\r\n" + [] {
         std::string s;
         for (int i = 0; i < 40; ++i) s += "X-" + std::to_string(i) + ": " + std::string(2000, 'v') + "\r\n";
         return s;
       }() + "\r\n",
       S::TooLarge},
      {"257 fields", "GET / HTTP/1.1\r\nHost: h\r\n" + fields(256) + "\r\n", S::TooLarge},
      {"space before the colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", S::Invalid},
      {"bare LF line end", "GET / HTTP/1.1\nHost: h\n\n", S::Invalid},
      {"not a method", "G@T / HTTP/1.1\r\nHost: h\r\n\r\n", S::Invalid},
      {"bad chunk terminator", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
       S::Invalid},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", S::BadVersion},
  };
  for (const ErrorCase& c : cases) {
    Parsed p;
    parse(p, Http1Codec::Type::Request, {c.bytes});
    EXPECT_EQ(p.run.last, c.want) << c.name;
    // Split anywhere, the verdict is the same.
    for (size_t i : {size_t{1}, c.bytes.size() / 3, c.bytes.size() / 2, c.bytes.size() - 1}) {
      Parsed s;
      parse(s, Http1Codec::Type::Request, {c.bytes.substr(0, i), c.bytes.substr(i)});
      EXPECT_EQ(s.run.last, c.want) << c.name << ", split at " << i;
    }
  }
  // Exactly at the limits is fine: 256 fields, a 64 KiB head.
  Parsed ok;
  parse(ok, Http1Codec::Type::Request, {"GET / HTTP/1.1\r\n" + fields(255) + "Host: h\r\n\r\n"});
  EXPECT_EQ(ok.run.last, S::Message);
  const std::string head = "GET /" + std::string(64 * 1024 - 1 - 4 - 1, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  Parsed edge;
  parse(edge, Http1Codec::Type::Request, {head});  // target 64 KiB - 5, "Host" and "h": exactly 64 KiB
  EXPECT_EQ(edge.run.last, S::Message);
}

TEST(Http1Codec, TargetLengthLimitIsItsOwnVerdict) {
  // server.max_uri_length: a target one byte over is TooLarge with
  // targetTooLong() (414 to a client), however the bytes arrive; one at the
  // limit parses, and a large head with a short target is the head's limit.
  const Http1Codec::Limits lim{64 * 1024, 100, 1024};
  const std::string over = "GET /" + std::string(1024, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";  // 1025 bytes
  const std::string at = "GET /" + std::string(1023, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  for (size_t split : {size_t{3}, size_t{600}, over.size() - 1}) {
    Recorder rec;
    Http1Codec codec(Http1Codec::Type::Request, &rec, lim);
    rec.codec = &codec;
    Http1Codec::Result r = codec.execute(over.data(), split);
    if (r.status == S::NeedMore) r = codec.execute(over.data() + split, over.size() - split);
    EXPECT_EQ(r.status, S::TooLarge) << split;
    EXPECT_TRUE(codec.targetTooLong()) << split;
  }
  Parsed ok;
  parse(ok, Http1Codec::Type::Request, {at}, false, lim);
  EXPECT_EQ(ok.run.last, S::Message);
  Recorder rec;
  Http1Codec codec(Http1Codec::Type::Request, &rec, lim);
  rec.codec = &codec;
  const std::string fat = "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(64 * 1024, 'v') + "\r\n\r\n";
  EXPECT_EQ(codec.execute(fat.data(), fat.size()).status, S::TooLarge);
  EXPECT_FALSE(codec.targetTooLong());
  // 100 fields pass, 101 do not (server.max_header_count).
  Parsed hundred, more;
  parse(hundred, Http1Codec::Type::Request, {"GET / HTTP/1.1\r\n" + fields(99) + "Host: h\r\n\r\n"}, false, lim);
  EXPECT_EQ(hundred.run.last, S::Message);
  parse(more, Http1Codec::Type::Request, {"GET / HTTP/1.1\r\n" + fields(100) + "Host: h\r\n\r\n"}, false, lim);
  EXPECT_EQ(more.run.last, S::TooLarge);
}

TEST(Http1Codec, SinkStopsTheParse) {
  const std::string req = requestCases()[3].bytes;
  {
    Recorder rec;
    rec.next = Http1Codec::Next::Stop;
    Http1Codec codec(Http1Codec::Type::Request, &rec, kClient);
    rec.codec = &codec;
    EXPECT_EQ(codec.execute(req.data(), req.size()).status, S::Stopped);
    EXPECT_EQ(rec.bodies[0], "");
  }
  {
    Recorder rec;
    rec.stopInBody = true;
    Http1Codec codec(Http1Codec::Type::Request, &rec, kClient);
    rec.codec = &codec;
    EXPECT_EQ(codec.execute(req.data(), req.size()).status, S::Stopped);
    EXPECT_EQ(rec.ends, 0);
  }
  {
    Recorder rec;
    rec.stopAtEnd = true;
    Http1Codec codec(Http1Codec::Type::Request, &rec, kClient);
    rec.codec = &codec;
    EXPECT_EQ(codec.execute(req.data(), req.size()).status, S::Stopped);
    EXPECT_EQ(rec.ends, 1);
  }
}

// ---- responses ----

struct ResponseCase {
  const char* name;
  std::string bytes;
  bool eof;          // ends at the peer's end of stream (close-delimited)
  int status;
  std::string body;
  bool keepAlive;
};

const std::vector<ResponseCase>& responseCases() {
  static const std::vector<ResponseCase> k = {
      {"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"x\"  \r\n\r\nhello", false, 200, "hello", true},
      {"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", false, 200,
       "abcde", true},
      {"interim answers first",
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\nHTTP/1.1 404 Not Found\r\n"
       "Content-Length: 2\r\n\r\nno",
       false, 404, "no", true},
      {"interim with a length it must not have", "HTTP/1.1 100 Continue\r\nContent-Length: 4\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
       false, 200, "x", true},
      {"close-delimited", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true, 200, "until the end", false},
      {"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 200, "ok", false},
  };
  return k;
}

TEST(Http1Codec, ResponsesParseTheSameAtEverySplit) {
  for (const ResponseCase& c : responseCases()) {
    for (size_t i = 0; i < c.bytes.size(); ++i) {
      SCOPED_TRACE(std::string(c.name) + ", split at " + std::to_string(i));
      Parsed p;
      std::vector<std::string> chunks = {c.bytes};
      if (i > 0) chunks = {c.bytes.substr(0, i), c.bytes.substr(i)};
      parse(p, Http1Codec::Type::Response, chunks, c.eof, kOrigin);
      ASSERT_EQ(p.run.statuses, std::vector<S>{S::Message});
      ASSERT_EQ(p.rec.responses.size(), 1u);  // interim answers never reach the sink
      const ResponseHead& h = p.rec.responses[0];
      EXPECT_EQ(h.status, c.status);
      EXPECT_EQ(p.rec.bodies.back(), c.body);
      EXPECT_EQ(h.keepAlive, c.keepAlive);
      EXPECT_EQ(p.rec.ends, 1);
    }
  }
  Parsed p;
  parse(p, Http1Codec::Type::Response, {responseCases()[0].bytes}, false, kOrigin);
  const ResponseHead& h = p.rec.responses[0];
  EXPECT_EQ(h.reason, "OK");
  EXPECT_EQ(h.contentLength, 5u);
  EXPECT_FALSE(h.chunked);
  EXPECT_EQ(h.headers, (HeaderList{{"Content-Length", "5"}, {"ETag", "\"x\""}}));
  Parsed c;
  parse(c, Http1Codec::Type::Response, {responseCases()[1].bytes}, false, kOrigin);
  EXPECT_TRUE(c.rec.responses[0].chunked);
  EXPECT_FALSE(c.rec.responses[0].contentLength);
}

TEST(Http1Codec, NoBodyAnswerEndsAtItsHead) {
  // The answer to a HEAD: a length, no body; what follows is not its body.
  Recorder rec;
  rec.next = Http1Codec::Next::NoBody;
  Http1Codec codec(Http1Codec::Type::Response, &rec, kOrigin);
  rec.codec = &codec;
  const std::string a = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
  Http1Codec::Result r = codec.execute(a.data(), a.size());
  EXPECT_EQ(r.status, S::Message);
  EXPECT_EQ(r.consumed, a.size());
  EXPECT_EQ(rec.bodies[0], "");
}

TEST(Http1Codec, ResponseVersionsAndLimits) {
  const std::vector<ErrorCase> cases = {
      {"HTTP/2.0", "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", S::BadVersion},
      {"Transfer-Encoding on HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", S::BadVersion},
      {"HTTP/2.0 interim", "HTTP/2.0 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", S::BadVersion},
      {"status 20", "HTTP/1.1 20 X\r\nContent-Length: 0\r\n\r\n", S::BadStatus},
      {"status 099", "HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n", S::BadStatus},
      {"head over 64 KiB", "HTTP/1.1 200 OK\r\nX: " + std::string(64 * 1024, 'v') + "\r\n\r\n", S::TooLarge},
      {"interim heads count towards the limit",
       "HTTP/1.1 103 Early Hints\r\nLink: " + std::string(40000, 'l') + "\r\n\r\nHTTP/1.1 200 OK\r\nX: " +
           std::string(30000, 'v') + "\r\nContent-Length: 0\r\n\r\n",
       S::TooLarge},
      {"garbage", "HTTP/1.1 2x0 OK\r\n\r\n", S::Invalid},
      {"bad chunk terminator", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n", S::Invalid},
  };
  for (const ErrorCase& c : cases) {
    Parsed p;
    parse(p, Http1Codec::Type::Response, {c.bytes}, false, kOrigin);
    EXPECT_EQ(p.run.last, c.want) << c.name;
    EXPECT_TRUE(p.rec.responses.empty() || c.want == S::Invalid) << c.name;
  }
  // Many fields are fine on a response (no count limit there).
  Parsed many;
  parse(many, Http1Codec::Type::Response, {"HTTP/1.1 200 OK\r\n" + fields(1000) + "Content-Length: 0\r\n\r\n"}, false,
        kOrigin);
  EXPECT_EQ(many.run.last, S::Message);
}

TEST(Http1Codec, ResetStartsOver) {
  Recorder rec;
  Http1Codec codec(Http1Codec::Type::Response, &rec, kOrigin);
  rec.codec = &codec;
  const std::string bad = "HTTP/1.1 2x0 OK\r\n\r\n";
  EXPECT_EQ(codec.execute(bad.data(), bad.size()).status, S::Invalid);
  EXPECT_NE(codec.error(), nullptr);
  codec.reset();
  const std::string good = responseCases()[0].bytes;
  EXPECT_EQ(codec.execute(good.data(), good.size()).status, S::Message);
  EXPECT_TRUE(codec.keepAlive());
  ASSERT_EQ(rec.responses.size(), 1u);
  EXPECT_EQ(rec.responses[0].status, 200);
}

}  // namespace
}  // namespace orchard::server
