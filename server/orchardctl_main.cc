// orchardctl: the admin tool, talking HTTP to a running orchardd.
//
//   orchardctl [--url URL] [--token TOKEN] status|metrics
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: orchardctl [--url http://HOST:PORT] [--token TOKEN] COMMAND\n"
               "commands:\n"
               "  status    cache status (bytes served, stored, cache used/limit, objects)\n"
               "  metrics   Prometheus metrics\n");
}

// Minimal blocking HTTP/1.1 GET; returns the status or -1.
int httpGet(const std::string& url, const std::string& path, const std::string& token, std::string* body) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  else {
    std::fprintf(stderr, "orchardctl: only http:// URLs are supported\n");
    return -1;
  }
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  std::string host = rest, port = "80";
  if (auto colon = rest.rfind(':'); colon != std::string::npos && rest.find(']') == std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  struct addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res) {
    std::fprintf(stderr, "orchardctl: cannot resolve %s\n", host.c_str());
    return -1;
  }
  int fd = socket(res->ai_family, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    std::fprintf(stderr, "orchardctl: cannot connect to %s: %s\n", url.c_str(), std::strerror(errno));
    freeaddrinfo(res);
    if (fd >= 0) close(fd);
    return -1;
  }
  freeaddrinfo(res);
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + rest + "\r\nConnection: close\r\n";
  if (!token.empty()) req += "Authorization: Bearer " + token + "\r\n";
  req += "\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return -1;
  }
  std::string resp;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) resp.append(buf, n);
  close(fd);
  int status = -1;
  if (std::sscanf(resp.c_str(), "HTTP/1.%*d %d", &status) != 1) return -1;
  auto sep = resp.find("\r\n\r\n");
  *body = sep == std::string::npos ? std::string() : resp.substr(sep + 4);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url = "http://127.0.0.1:8080", token, cmd;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--url" && i + 1 < argc) url = argv[++i];
    else if (a == "--token" && i + 1 < argc) token = argv[++i];
    else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else if (cmd.empty()) cmd = a;
    else {
      usage();
      return 2;
    }
  }
  std::string path;
  if (cmd == "status") path = "/api/v1/status";
  else if (cmd == "metrics") path = "/metrics";
  else {
    usage();
    return 2;
  }
  std::string body;
  int status = httpGet(url, path, token, &body);
  if (status < 0) return 1;
  std::fputs(body.c_str(), stdout);
  if (status < 200 || status > 299) {
    std::fprintf(stderr, "orchardctl: %s answered %d\n", url.c_str(), status);
    return 1;
  }
  return 0;
}
