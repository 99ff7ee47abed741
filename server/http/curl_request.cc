// curlRequest(); see curl_request.h.
#include "server/http/curl_request.h"

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "server/apple/box_fetch.h"

namespace orchard::server {
namespace {

// The extra CA certificates, owned; freed with the holder.
struct ExtraCas {
  std::vector<X509*> certs;
  ExtraCas() = default;
  ExtraCas(const ExtraCas&) = delete;
  ExtraCas& operator=(const ExtraCas&) = delete;
  ~ExtraCas() {
    for (X509* c : certs) X509_free(c);
  }
};

// Reads every PEM certificate of `path`; "" on success, else why not.
std::string loadCas(const std::string& key, const std::string& path, ExtraCas* out) {
  errno = 0;
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (!bio) {
    const int e = errno;
    ERR_clear_error();
    return key + " " + path + ": cannot be read" + (e ? std::string(" (") + std::strerror(e) + ")" : "");
  }
  while (X509* c = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) out->certs.push_back(c);
  BIO_free(bio);
  ERR_clear_error();  // the end of the file reads as an error
  if (out->certs.empty()) return key + " " + path + ": holds no PEM certificate";
  return "";
}

// CURLOPT_SSL_CTX_FUNCTION: adds the extra CAs to this connection's store.
CURLcode addCas(CURL*, void* sslCtx, void* user) {
  auto* cas = static_cast<const ExtraCas*>(user);
  X509_STORE* store = SSL_CTX_get_cert_store(static_cast<SSL_CTX*>(sslCtx));
  for (X509* c : cas->certs) X509_STORE_add_cert(store, c);  // a duplicate is refused, harmlessly
  ERR_clear_error();
  return CURLE_OK;
}

struct Sink {
  std::string* body;
  uint64_t maxBytes;
  bool tooBig = false;
  const std::atomic<bool>* stop;
};

size_t onBody(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  const size_t len = size * n;
  if (s->body->size() + len > s->maxBytes) {
    s->tooBig = true;
    return 0;  // CURLE_WRITE_ERROR
  }
  s->body->append(data, len);
  return len;
}

int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* s = static_cast<Sink*>(user);
  return s->stop && s->stop->load(std::memory_order_relaxed) ? 1 : 0;
}

}  // namespace

std::string curlUrlHost(const std::string& url) {
  CURLU* u = curl_url();
  if (!u) return "";
  std::string host;
  char* h = nullptr;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK && curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
    host = h;
    curl_free(h);
  }
  curl_url_cleanup(u);
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return host;
}

CurlAnswer curlRequest(const CurlRequest& req) {
  CurlAnswer out;
  ExtraCas cas;
  if (!req.caFile.empty()) {
    out.error = loadCas(req.caFileKey.empty() ? "CA file" : req.caFileKey, req.caFile, &cas);
    if (!out.error.empty()) return out;
  }
  curlGlobalInit();
  CURL* c = curl_easy_init();
  if (!c) {
    out.error = "cannot make a libcurl handle";
    return out;
  }
  curl_slist* connectTo = nullptr;
  if (auto it = req.resolve.find(curlUrlHost(req.url)); it != req.resolve.end()) {
    const config::ListenAddress& a = it->second;
    const std::string host = it->first.find(':') != std::string::npos ? "[" + it->first + "]" : it->first;
    const std::string to = host + "::" + (a.v6 ? "[" + a.host + "]" : a.host) + ":" + std::to_string(a.port);
    connectTo = curl_slist_append(nullptr, to.c_str());
  }
  curl_slist* hdrs = nullptr;
  for (const auto& h : req.headers) hdrs = curl_slist_append(hdrs, h.c_str());
  char errbuf[CURL_ERROR_SIZE] = {0};
  Sink sink{&out.body, req.maxBytes, false, req.stop};
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROXY, "");  // never a proxy from the environment
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_USERAGENT, req.userAgent.c_str());
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");  // gzip and friends; the sink bounds the decoded bytes
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connectTimeoutMs));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeoutMs));
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(req.maxBytes));
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!cas.certs.empty()) {
    // No shared CA store: each connection loads the system CAs, then gets ours.
    curl_easy_setopt(c, CURLOPT_CA_CACHE_TIMEOUT, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, addCas);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, &cas);
  }
  if (connectTo) curl_easy_setopt(c, CURLOPT_CONNECT_TO, connectTo);
  if (hdrs) curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  if (req.method != "GET") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  if (!req.body.empty()) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, onBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, onProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &sink);

  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  curl_slist_free_all(hdrs);
  curl_slist_free_all(connectTo);
  out.status = static_cast<int>(status);
  if (sink.tooBig || rc == CURLE_FILESIZE_EXCEEDED) {
    out.tooBig = true;
    out.error = "the answer is larger than " + std::to_string(req.maxBytes) + " bytes";
  } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
    out.stopped = true;
    out.error = "stopped";
  } else if (rc != CURLE_OK) {
    out.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  }
  return out;
}

}  // namespace orchard::server
