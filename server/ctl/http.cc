// Http over libcurl: see http.h. This file is the one place that includes
// curl's headers and turns its error codes into a Reply's failure text.
#include "server/ctl/http.h"

#include <curl/curl.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace orchard::ctl {
namespace {

// What the read callback streams from, and where progress goes.
struct Upload {
  std::FILE* file = nullptr;
  const ProgressFn* onProgress = nullptr;
};

size_t onBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t onRead(char* buffer, size_t size, size_t n, void* user) {
  auto* up = static_cast<Upload*>(user);
  size_t got = std::fread(buffer, 1, size * n, up->file);
  if (got == 0 && std::ferror(up->file)) return CURL_READFUNC_ABORT;
  return got;
}

int onXfer(void* user, curl_off_t, curl_off_t, curl_off_t ultotal, curl_off_t ulnow) {
  auto* up = static_cast<Upload*>(user);
  if (up->onProgress && *up->onProgress && ultotal > 0)
    (*up->onProgress)(static_cast<uint64_t>(ulnow), static_cast<uint64_t>(ultotal));
  return 0;
}

CURL* handle(void* p) { return static_cast<CURL*>(p); }

// Why a transfer failed, in the words an admin looks for: the system's
// own ("connection refused", "no route to host") where curl got one from
// connect(), else curl's message.
std::string plainReason(CURL* c, CURLcode rc, const char* errbuf) {
  long osErrno = 0;
  curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &osErrno);
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
      if (osErrno == ECONNREFUSED) return "connection refused";
      if (osErrno != 0) {
        std::string why = std::strerror(static_cast<int>(osErrno));
        if (!why.empty()) why[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(why[0])));
        return why;
      }
      return "cannot connect";
    case CURLE_COULDNT_RESOLVE_HOST: return "the host name does not resolve";
    case CURLE_OPERATION_TIMEDOUT: return "no answer in time (timed out)";
    case CURLE_GOT_NOTHING: return "the connection closed without an answer";
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR: return std::string("the connection broke: ") + (errbuf[0] ? errbuf : curl_easy_strerror(rc));
    default: return errbuf[0] ? errbuf : curl_easy_strerror(rc);
  }
}

}  // namespace

Http::Http(std::string baseUrl, std::string token) : baseUrl_(std::move(baseUrl)), token_(std::move(token)) {
  while (!baseUrl_.empty() && baseUrl_.back() == '/') baseUrl_.pop_back();
  static const bool once = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    std::atexit(curl_global_cleanup);
    return true;
  }();
  (void)once;
  curl_ = curl_easy_init();
  if (!curl_) std::abort();  // only out of memory: nothing sensible to do
}

Http::~Http() { curl_easy_cleanup(handle(curl_)); }

std::string Http::escape(const std::string& raw) const {
  char* out = curl_easy_escape(handle(curl_), raw.data(), static_cast<int>(raw.size()));
  if (!out) std::abort();
  std::string s(out);
  curl_free(out);
  return s;
}

Reply Http::get(const std::string& path) { return perform("GET", path, {}); }

Reply Http::del(const std::string& path) { return perform("DELETE", path, {}); }

Reply Http::postJson(const std::string& path, const std::string& body) { return sendJson("POST", path, body); }

Reply Http::putJson(const std::string& path, const std::string& body) { return sendJson("PUT", path, body); }

// The body goes as POSTFIELDS (held in memory, Content-Length known) with
// the method named by CUSTOMREQUEST, so a PUT sends it the same way.
Reply Http::sendJson(const char* method, const std::string& path, const std::string& body) {
  CURL* c = handle(curl_);
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  return perform(method, path, {{"Content-Type", "application/json"}});
}

Reply Http::putFile(const std::string& path, std::FILE* file, uint64_t size, const Headers& extra,
                    const ProgressFn& onProgress) {
  Upload up{file, &onProgress};
  CURL* c = handle(curl_);
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, onRead);
  curl_easy_setopt(c, CURLOPT_READDATA, &up);
  curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, onXfer);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &up);
  // The box decides from the head; wait for its 100 (or its refusal) a
  // while before sending the body anyway to a server that ignores Expect.
  curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 3000L);
  Headers all = extra;
  all.emplace_back("Expect", "100-continue");
  return perform("PUT", path, all);
}

// Runs one request on the (reset) handle; options set by the caller stay.
Reply Http::perform(const std::string& method, const std::string& path, const Headers& extra) {
  CURL* c = handle(curl_);
  if (method != "PUT" && method != "POST") curl_easy_reset(c);
  std::string url = baseUrl_ + path;
  Reply reply;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = nullptr;
  if (!token_.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + token_).c_str());
  for (const auto& [name, value] : extra) headers = curl_slist_append(headers, (name + ": " + value).c_str());

  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, onBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  if (timeoutMs_ > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeoutMs_);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "orchardctl");

  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  // A refusal that arrives while the body is still being sent ends the
  // upload with a send error, yet the box did answer: report its answer.
  if (rc == CURLE_OK || status >= 400) {
    reply.status = status;
    return reply;
  }
  reply.body.clear();
  reply.failure = baseUrl_ + ": " + plainReason(c, rc, errbuf);
  return reply;
}

}  // namespace orchard::ctl
