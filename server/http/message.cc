// HTTP/1.1 helpers shared by both sides: case-insensitive header look-up
// and token lists, hop-by-hop filtering, reason phrases, the JSON error body,
// and requestHeadProblem(), the RFC 9112 rules a request head must pass
// before it is routed (what llhttp's strict mode leaves to us). The hard
// part is the last: each rule there closes a way for one client's bytes to
// reach an origin as framing the cache did not see (see README, Security).
#include "server/http/message.h"

#include <cctype>

#include <nlohmann/json.hpp>

#include "common/ascii.h"

namespace orchard::server {

bool isHopByHop(std::string_view n) noexcept {
  static constexpr std::string_view kHop[] = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
                                              "transfer-encoding", "upgrade", "proxy-authenticate",
                                              "proxy-authorization", "content-length"};
  for (auto h : kHop)
    if (iequals(n, h)) return true;
  return false;
}

HeaderList endToEndHeaders(const HeaderList& h) {
  HeaderList out;
  out.reserve(h.size());
  for (const auto& kv : h) {
    if (isHopByHop(kv.first)) continue;
    if (headerHasToken(h, "Connection", kv.first)) continue;
    out.push_back(kv);
  }
  return out;
}

bool isTokenChar(unsigned char c) noexcept {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

const char* requestHeadProblem(const RequestHead& req) noexcept {
  int hosts = 0;
  int codings = 0;
  bool chunkedOnly = true;
  for (const auto& [k, v] : req.headers) {
    if (k.empty()) return "empty header field name";
    for (char c : k)
      if (!isTokenChar(static_cast<unsigned char>(c))) return "invalid character in a header field name";
    if (iequals(k, "Host")) ++hosts;
    if (iequals(k, "Transfer-Encoding")) {
      ++codings;
      std::string_view t(v);
      while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
      while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
      if (!iequals(t, "chunked")) chunkedOnly = false;
    }
  }
  if (hosts > 1) return "more than one Host header";
  if (hosts == 0 && req.versionMajor == 1 && req.versionMinor >= 1) return "HTTP/1.1 request without a Host header";
  if (codings > 1 || (codings == 1 && !chunkedOnly)) return "a transfer coding other than a single chunked";
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing.
  if (codings > 0 && req.versionMajor == 1 && req.versionMinor == 0) return "Transfer-Encoding in an HTTP/1.0 request";
  if ((req.method == "GET" || req.method == "HEAD") && req.hasBody()) return "a GET or HEAD request with a body";
  return nullptr;
}

std::string errorBody(int status, std::string_view detail) {
  nlohmann::ordered_json j;
  j["error"] = reasonPhrase(status);
  // Details quote requests and origins: invalid UTF-8 is replaced, never thrown.
  j["detail"] = std::string(detail);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void appendStatusLine(std::string& out, int status, std::string_view reason) {
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason.empty() ? std::string_view(reasonPhrase(status)) : reason;
  out += "\r\n";
}

std::string smallResponse(int status, std::string_view contentType, std::string_view body, std::string_view extra,
                          bool close, bool headOnly) {
  std::string out;
  out.reserve(160 + extra.size() + (headOnly ? 0 : body.size()));
  appendStatusLine(out, status);
  if (!contentType.empty()) {
    out += "Content-Type: ";
    out += contentType;
    out += "\r\n";
  }
  out += "Content-Length: ";
  out += std::to_string(body.size());
  out += "\r\n";
  out += extra;
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  if (!headOnly) out += body;
  return out;
}

const char* reasonPhrase(int s) noexcept {
  switch (s) {
    case 100: return "Continue";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    default: return "Unknown";
  }
}

}  // namespace orchard::server
