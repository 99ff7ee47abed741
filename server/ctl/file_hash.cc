// sha256File: see file_hash.h.
#include "server/ctl/file_hash.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace orchard::ctl {

std::string sha256File(std::FILE* file, uint64_t size, const std::function<void(uint64_t, uint64_t)>& onProgress,
                       std::string* error) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    *error = "cannot start SHA-256";
    return "";
  }
  std::vector<unsigned char> buf(1 << 20);
  size_t n;
  uint64_t done = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), file)) > 0) {
    EVP_DigestUpdate(ctx.get(), buf.data(), n);
    done += n;
    if (onProgress) onProgress(done, size);
  }
  if (std::ferror(file)) {
    *error = std::strerror(errno);
    return "";
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  std::rewind(file);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

}  // namespace orchard::ctl
