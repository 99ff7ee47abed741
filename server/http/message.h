// HTTP/1.1 message heads shared by the client side and the upstream side,
// and the small header utilities both need.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/headers.h"

namespace orchard::server {

using orchard::HeaderList;  // common/headers.h: look-up, lists, trimming
// Hop-by-hop per RFC 9110 §7.6.1 plus the framing headers we always rewrite.
bool isHopByHop(std::string_view name) noexcept;
// Also drops headers named by the message's own Connection header.
HeaderList endToEndHeaders(const HeaderList& h);
const char* reasonPhrase(int status) noexcept;
// The JSON error body every error answer carries:
// {"error": "<reason phrase>", "detail": "<detail>"} and a newline.
std::string errorBody(int status, std::string_view detail);
// "HTTP/1.1 <status> <reason>\r\n" appended to out (reason: the standard
// phrase when empty).
void appendStatusLine(std::string& out, int status, std::string_view reason = {});
// A whole small answer: status line, Content-Type (when not empty),
// Content-Length, the `extra` header lines (each ending in CRLF),
// Connection: close when `close`, the blank line, and the body unless
// `headOnly` (a HEAD: the same head, no body).
std::string smallResponse(int status, std::string_view contentType, std::string_view body, std::string_view extra,
                          bool close, bool headOnly);

struct RequestHead {
  std::string method;
  std::string target;
  uint8_t versionMajor = 1;
  uint8_t versionMinor = 1;
  HeaderList headers;
  bool keepAlive = true;
  bool chunked = false;                    // request body uses chunked framing
  std::optional<uint64_t> contentLength;   // request body length when declared
  bool hasBody() const { return chunked || (contentLength && *contentLength > 0); }
  std::optional<std::string_view> header(std::string_view n) const { return findHeader(headers, n); }
};

// Why a parsed request head must be refused with 400 before it is routed,
// or nullptr when it may go on. llhttp (strict) has already checked the
// syntax; these are the RFC 9112 rules it leaves to us, and the one rule a
// cache needs on top (a GET or HEAD carries no body):
//   - every field name is a token (no "Host : x", RFC 9112 §5.1);
//   - exactly one Host on HTTP/1.1, at most one on HTTP/1.0 (§3.2);
//   - Transfer-Encoding, when present, is exactly "chunked" (§6.3: any
//     other coding leaves the body's length unknowable), and never on
//     HTTP/1.0 (§6.1);
//   - a GET or HEAD with a body (Content-Length above 0, or chunked):
//     forwarding its head without the body would leave the next request
//     on a pooled origin connection read as that body.
const char* requestHeadProblem(const RequestHead& req) noexcept;
// RFC 9110 §5.6.2 token characters.
bool isTokenChar(unsigned char c) noexcept;

struct ResponseHead {
  uint16_t status = 0;
  std::string reason;
  HeaderList headers;
  std::optional<uint64_t> contentLength;
  bool chunked = false;
  bool keepAlive = true;
  bool noBody = false;  // HEAD, 1xx, 204, 304
};

}  // namespace orchard::server
