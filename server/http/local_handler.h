// LocalHandler: the base of handlers that answer for the box itself (the
// probe, /metrics, /api/v1/status, and the catalog and admin routes that
// follow), and FixedAnswer, a handler whose whole answer is known when it
// is made (errors, small documents).
//
// A LocalHandler ignores a request body unless it overrides
// onRequestBody(); answering before the body ended closes the connection
// after the answer (the connection does not read a body nobody wants), and
// the answer says so with Connection: close.
#pragma once

#include <string>
#include <string_view>

#include "server/http/handler.h"
#include "server/http/message.h"

namespace orchard::server {

class LocalHandler : public RequestHandler {
 public:
  LocalHandler(ResponseWriter* w, RequestHead req) : w_(w), req_(std::move(req)) {}
  void onRequestBody(const char*, size_t) override {}
  void onRequestComplete() override { requestComplete_ = true; }
  void onBodyWritten(int) override {}
  void onConnClosed() override { w_ = nullptr; }

 protected:
  // Writes a whole small answer and ends the response (once).
  void answer(int status, std::string_view contentType, std::string_view body, std::string_view extra = {});
  // The JSON error body (errorBody()) with `status`.
  void answerError(int status, std::string_view detail, std::string_view extra = {});
  bool answered() const { return answered_; }

  ResponseWriter* w_;  // null once the connection closed
  RequestHead req_;
  bool requestComplete_ = false;

 private:
  bool answered_ = false;
};

class FixedAnswer final : public LocalHandler {
 public:
  FixedAnswer(ResponseWriter* w, RequestHead req, int status, std::string contentType, std::string body,
              std::string extra = {})
      : LocalHandler(w, std::move(req)),
        status_(status),
        type_(std::move(contentType)),
        body_(std::move(body)),
        extra_(std::move(extra)) {}
  // A JSON error answer.
  static FixedAnswer* error(ResponseWriter* w, RequestHead req, int status, std::string_view detail,
                            std::string extra = {}) {
    return new FixedAnswer(w, std::move(req), status, "application/json", errorBody(status, detail), std::move(extra));
  }
  void start() override { answer(status_, type_, body_, extra_); }

 private:
  int status_;
  std::string type_, body_, extra_;
};

}  // namespace orchard::server
