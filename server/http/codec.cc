// Http1Codec: the llhttp settings and callbacks that collect a message head,
// written once for requests and responses. The hard parts: llhttp hands
// every token in pieces (a read can end anywhere, even inside a field name),
// so names and values are appended until the other kind starts; a callback
// can only answer llhttp with an error code, so problem_ records which rule
// (a limit, the version, the sink) stopped the parse and settle() turns it
// back into a Status; interim (1xx) answers are parsed as whole messages of
// their own, dropped, and their bytes count towards the final head's limit;
// and after each message the parser pauses, so pipelined bytes stay the
// owner's until it resumes.
#include "server/http/codec.h"

#include <array>
#include <string_view>
#include <tuple>
#include <utility>

namespace orchard::server {
namespace {

Http1Codec* self(llhttp_t* p) { return static_cast<Http1Codec*>(p->data); }

// llhttp's method names with their lengths, so a request head costs no strlen.
std::string_view methodName(uint8_t m) {
  static const auto kNames = [] {
    std::array<std::string_view, 256> a{};
#define ORCHARD_METHOD_NAME(NUM, NAME, STRING) a[NUM] = #STRING;
    HTTP_ALL_METHOD_MAP(ORCHARD_METHOD_NAME)
#undef ORCHARD_METHOD_NAME
    return a;
  }();
  return kNames[m];
}

void trimValues(HeaderList& headers) {
  for (auto& kv : headers)
    while (!kv.second.empty() && (kv.second.back() == ' ' || kv.second.back() == '\t')) kv.second.pop_back();
}

}  // namespace

const llhttp_settings_t* Http1Codec::settings(Type type) {
  static const auto kSettings = [] {
    struct Both {
      llhttp_settings_t request, response;
    } s;
    for (llhttp_settings_t* st : {&s.request, &s.response}) {
      llhttp_settings_init(st);
      st->on_message_begin = &Http1Codec::onMessageBegin;
      st->on_header_field = &Http1Codec::onHeaderField;
      st->on_header_value = &Http1Codec::onHeaderValue;
      st->on_headers_complete = &Http1Codec::onHeadersComplete;
      st->on_body = &Http1Codec::onBody;
      st->on_message_complete = &Http1Codec::onMessageComplete;
    }
    s.request.on_url = &Http1Codec::onUrl;
    s.response.on_status = &Http1Codec::onStatus;
    return s;
  }();
  return type == Type::Request ? &kSettings.request : &kSettings.response;
}

Http1Codec::Http1Codec(Type type, Sink* sink, Limits limits)
    : sink_(sink), type_(type), limits_(limits), fields_(type == Type::Request ? &req_.headers : &resp_.headers) {
  init();
}

void Http1Codec::init() {
  llhttp_init(&parser_, type_ == Type::Request ? HTTP_REQUEST : HTTP_RESPONSE, settings(type_));
  parser_.data = this;
  headBytes_ = 0;
  lastWasValue_ = false;
  interim_ = false;
  headDone_ = false;
}

void Http1Codec::reset() {
  init();
  req_ = RequestHead{};
  resp_ = ResponseHead{};
}

Http1Codec::Result Http1Codec::finish() {
  problem_ = Status::NeedMore;
  const llhttp_errno_t err = llhttp_finish(&parser_);
  if (err == HPE_OK) return Result{0, Status::NeedMore};
  return err == HPE_PAUSED ? Result{0, Status::Message} : settle(err);
}

Http1Codec::Result Http1Codec::settle(llhttp_errno_t err) {
  const Status status = problem_ == Status::NeedMore ? Status::Invalid : problem_;
  switch (status) {
    case Status::Stopped: error_ = "stopped by its owner"; break;
    case Status::TooLarge: error_ = "head over the size or field-count limit"; break;
    case Status::BadVersion: error_ = "not HTTP/1.x, or faulty framing for its version"; break;
    case Status::BodyBeforeHead: error_ = "body before a final head"; break;
    case Status::BadStatus: error_ = "status code below 100"; break;
    default: error_ = problem_ == Status::Invalid ? "header value before any field name" : llhttp_errno_name(err); break;
  }
  return Result{0, status};
}

void Http1Codec::clearHead() {
  // Field by field: cheaper than assigning a fresh head, and the previous
  // one was usually moved out already. Every field of message.h's heads.
  if (type_ == Type::Request) {
    req_.method.clear();
    req_.target.clear();
    req_.headers.clear();
    req_.versionMajor = 1;
    req_.versionMinor = 1;
    req_.keepAlive = true;
    req_.chunked = false;
    req_.contentLength.reset();
  } else {
    resp_.status = 0;
    resp_.reason.clear();
    resp_.headers.clear();
    resp_.contentLength.reset();
    resp_.chunked = false;
    resp_.keepAlive = true;
    resp_.noBody = false;
  }
}

// ---- llhttp callbacks ----

int Http1Codec::onMessageBegin(llhttp_t* p) {
  Http1Codec* c = self(p);
  if (!c->interim_) c->headBytes_ = 0;  // an interim answer's bytes count towards the final head
  c->interim_ = false;
  c->headDone_ = false;
  c->lastWasValue_ = false;
  c->targetTooLong_ = false;
  c->clearHead();
  c->sink_->onMessageBegin();
  return 0;
}

int Http1Codec::onUrl(llhttp_t* p, const char* at, size_t n) {
  Http1Codec* c = self(p);
  if (c->req_.target.size() + n > c->limits_.maxTargetBytes) {
    c->targetTooLong_ = true;
    return c->fail(Status::TooLarge);
  }
  if (!c->countHead(n)) return c->fail(Status::TooLarge);
  c->req_.target.append(at, n);
  return 0;
}

int Http1Codec::onStatus(llhttp_t* p, const char* at, size_t n) {
  Http1Codec* c = self(p);
  if (!c->countHead(n)) return c->fail(Status::TooLarge);
  c->resp_.reason.append(at, n);
  return 0;
}

int Http1Codec::onHeaderField(llhttp_t* p, const char* at, size_t n) {
  Http1Codec* c = self(p);
  if (!c->countHead(n)) return c->fail(Status::TooLarge);
  HeaderList& h = *c->fields_;
  if (c->lastWasValue_ || h.empty()) {
    if (h.size() >= c->limits_.maxFields) return c->fail(Status::TooLarge);
    h.emplace_back(std::piecewise_construct, std::forward_as_tuple(at, n), std::forward_as_tuple());
    c->lastWasValue_ = false;
  } else {
    h.back().first.append(at, n);
  }
  return 0;
}

int Http1Codec::onHeaderValue(llhttp_t* p, const char* at, size_t n) {
  Http1Codec* c = self(p);
  if (!c->countHead(n)) return c->fail(Status::TooLarge);
  HeaderList& h = *c->fields_;
  if (h.empty()) return c->fail(Status::Invalid);
  h.back().second.append(at, n);
  c->lastWasValue_ = true;
  return 0;
}

int Http1Codec::onHeadersComplete(llhttp_t* p) {
  Http1Codec* c = self(p);
  if (c->type_ == Type::Request) {
    RequestHead& r = c->req_;
    const std::string_view method = methodName(p->method);
    r.method.assign(method.data(), method.size());
    r.versionMajor = p->http_major;
    r.versionMinor = p->http_minor;
    r.keepAlive = llhttp_should_keep_alive(p) != 0;
    r.chunked = (p->flags & F_CHUNKED) != 0;
    if ((p->flags & F_CONTENT_LENGTH) && !r.chunked) r.contentLength = p->content_length;
    trimValues(r.headers);
    if ((p->flags & F_TRANSFER_ENCODING) && !r.chunked) r.chunked = true;  // refused by requestHeadProblem()
    // llhttp parses "HTTP/2.0" in a request line: not a version spoken here.
    if (p->http_major != 1) return c->fail(Status::BadVersion);
  } else {
    // Not HTTP/1.x, or Transfer-Encoding on HTTP/1.0 (faulty framing, RFC
    // 9112 §6.1): nothing of this answer can be trusted.
    if (p->http_major != 1 || (p->http_minor == 0 && (p->flags & F_TRANSFER_ENCODING)))
      return c->fail(Status::BadVersion);
    ResponseHead& h = c->resp_;
    if (p->status_code < 100) return c->fail(Status::BadStatus);  // never an interim answer to pass on
    if (p->status_code < 200) {
      // 1xx: shown to the sink, then dropped; the final answer follows. 1
      // tells llhttp no body follows, so the next bytes parse as the next answer.
      c->interim_ = true;
      h.status = p->status_code;
      trimValues(h.headers);
      c->sink_->onInterim();
      c->clearHead();
      c->lastWasValue_ = false;
      return 1;
    }
    h.status = p->status_code;
    trimValues(h.headers);
    h.chunked = (p->flags & F_CHUNKED) != 0;
    if ((p->flags & F_CONTENT_LENGTH) && !h.chunked) h.contentLength = p->content_length;
    h.keepAlive = llhttp_should_keep_alive(p) != 0;
  }
  c->headDone_ = true;
  switch (c->sink_->onHead()) {
    case Next::Body: return 0;
    case Next::NoBody: return 1;
    case Next::Stop: break;
  }
  return c->fail(Status::Stopped);
}

int Http1Codec::onBody(llhttp_t* p, const char* at, size_t n) {
  Http1Codec* c = self(p);
  if (!c->headDone_) return c->fail(Status::BodyBeforeHead);
  return c->sink_->onBody(at, n) ? 0 : c->fail(Status::Stopped);
}

int Http1Codec::onMessageComplete(llhttp_t* p) {
  Http1Codec* c = self(p);
  if (c->interim_ || !c->headDone_) return 0;  // the end of a 1xx: the final answer follows
  return c->sink_->onMessageEnd() ? HPE_PAUSED : c->fail(Status::Stopped);
}

}  // namespace orchard::server
