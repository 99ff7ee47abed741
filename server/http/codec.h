// Http1Codec: the one HTTP/1 parser wrapper over llhttp (strict build),
// used for requests on the client side (ClientConn), for responses on the
// upstream side (UpstreamConn), and by the micro benchmark.
//
// It collects a message head (method and target, or status and reason;
// version; header fields with trailing whitespace trimmed from values;
// keep-alive; chunked / Content-Length framing) under the head limits, and
// hands the owner (its Sink) the head, the body pieces and the message end.
// After each message it pauses: the owner calls resume() to parse the next
// one (one message at a time; pipelined bytes stay unparsed, see
// Result::consumed).
//
// Rules it enforces itself, for every owner:
//   - the head (target or reason, field names and values) is at most
//     Limits::maxHeadBytes bytes and Limits::maxFields fields: TooLarge
//     (a client is answered 431, not 400); for responses the byte count runs
//     from the first interim (1xx) head to the final one; a request target
//     is at most Limits::maxTargetBytes, checked first: TooLarge with
//     targetTooLong() (a client is answered 414);
//   - only HTTP/1.x: BadVersion (llhttp also parses "HTTP/2.0"); on a
//     response, Transfer-Encoding on HTTP/1.0 too (faulty framing, RFC 9112
//     §6.1);
//   - responses: 1xx interim heads go to Sink::onInterim() and the final head follows;
//     an interim head ends at its blank line whatever framing it claims
//     (RFC 9112 §6.3); body bytes before a final head are BodyBeforeHead;
//   - requests: a Transfer-Encoding other than chunked still marks the head
//     chunked, so it is refused by requestHeadProblem(), never read as
//     bodiless.
// Everything else about a request (Host count, codings, GET with a body) is
// the owner's: requestHeadProblem() in message.h.
//
// The Sink is called only from inside execute() / finish(), on the caller's
// stack; what it returns decides whether parsing goes on.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>

#include "server/http/message.h"

namespace orchard::server {

class Http1Codec {
 public:
  enum class Type : uint8_t { Request, Response };
  struct Limits {
    size_t maxHeadBytes = 64 * 1024;
    size_t maxFields = SIZE_MAX;
    size_t maxTargetBytes = SIZE_MAX;  // requests: the request target (UriTooLong past it)
  };
  // What the owner answers to a complete head.
  enum class Next : uint8_t {
    Body,    // the body follows as its framing says
    NoBody,  // no body follows whatever the framing says (a HEAD's answer)
    Stop,    // stop parsing: execute() returns Stopped
  };
  class Sink {
   public:
    virtual void onMessageBegin() {}
    // The head is in request() / response(); the sink may move it out.
    virtual Next onHead() = 0;
    // Responses: an interim (1xx) head is in response() (status, headers);
    // it is cleared after this returns and the final head follows.
    virtual void onInterim() {}
    // False stops parsing (Stopped).
    virtual bool onBody(const char* at, size_t n) = 0;
    // False stops parsing (Stopped); true pauses after this message.
    virtual bool onMessageEnd() = 0;

   protected:
    ~Sink() = default;
  };

  enum class Status : uint8_t {
    NeedMore,        // every byte parsed, the message goes on
    Message,         // a message ended; `consumed` bytes were parsed, resume() for the next
    Stopped,         // a Sink callback stopped parsing
    TooLarge,        // a head limit was hit (targetTooLong() says whether it was the target's)
    BadVersion,      // not HTTP/1.x, or a response's Transfer-Encoding on HTTP/1.0
    BodyBeforeHead,  // response body bytes before a final head
    BadStatus,       // a response status code below 100 (RFC 9110 §15: three digits, 1xx-5xx)
    Invalid,         // llhttp refused the bytes; `reason` names the error
  };
  // Small enough to come back in registers: this is on every read.
  struct Result {
    size_t consumed = 0;  // bytes parsed (Message: the rest is the next message's; errors: 0)
    Status status = Status::NeedMore;
  };

  Http1Codec(Type type, Sink* sink, Limits limits);
  Http1Codec(const Http1Codec&) = delete;
  Http1Codec& operator=(const Http1Codec&) = delete;

  Result execute(const char* data, size_t n) {
    problem_ = Status::NeedMore;
    const llhttp_errno_t err = llhttp_execute(&parser_, data, n);
    if (err == HPE_OK) return Result{n, Status::NeedMore};
    if (err == HPE_PAUSED) return Result{static_cast<size_t>(parser_.error_pos - data), Status::Message};
    return settle(err);
  }
  // The peer ended the stream: ends a close-delimited body (onMessageEnd()).
  Result finish();
  // Why parsing stopped (static text), after a Result other than NeedMore
  // and Message.
  const char* error() const { return error_; }
  void resume() { llhttp_resume(&parser_); }
  const Limits& limits() const { return limits_; }
  // After TooLarge: the request target passed Limits::maxTargetBytes.
  bool targetTooLong() const { return targetTooLong_; }
  // Starts over (a new exchange on a pooled connection).
  void reset();

  RequestHead& request() { return req_; }
  ResponseHead& response() { return resp_; }
  // After the message ended: whether the connection may carry another.
  bool keepAlive() const { return llhttp_should_keep_alive(&parser_) != 0; }

 private:
  static int onMessageBegin(llhttp_t* p);
  static int onUrl(llhttp_t* p, const char* at, size_t n);
  static int onStatus(llhttp_t* p, const char* at, size_t n);
  static int onHeaderField(llhttp_t* p, const char* at, size_t n);
  static int onHeaderValue(llhttp_t* p, const char* at, size_t n);
  static int onHeadersComplete(llhttp_t* p);
  static int onBody(llhttp_t* p, const char* at, size_t n);
  static int onMessageComplete(llhttp_t* p);
  static const llhttp_settings_t* settings(Type type);
  int fail(Status s) {
    problem_ = s;
    return -1;
  }
  bool countHead(size_t n) { return (headBytes_ += n) <= limits_.maxHeadBytes; }
  void init();
  Result settle(llhttp_errno_t err);
  void clearHead();

  llhttp_t parser_;
  Sink* const sink_;
  const Type type_;
  const Limits limits_;
  HeaderList* fields_;     // req_.headers or resp_.headers
  RequestHead req_;        // Request codecs
  ResponseHead resp_;      // Response codecs
  size_t headBytes_ = 0;
  bool lastWasValue_ = false;
  bool interim_ = false;   // the message being parsed is a 1xx answer
  bool headDone_ = false;  // the final head of this message went to the sink
  bool targetTooLong_ = false;  // the TooLarge was the target's length
  Status problem_ = Status::NeedMore;  // why a callback returned an error
  const char* error_ = nullptr;
};

}  // namespace orchard::server
