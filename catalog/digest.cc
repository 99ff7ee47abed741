// SHA-256 and hex for the catalog (see digest.h). The one subtle point:
// EVP_Digest with a null engine cannot fail for SHA-256 on valid memory,
// so a failure is a broken invariant (asserted), not an error to return.
#include "catalog/digest.h"

#include <openssl/evp.h>

#include <cassert>

namespace orchard::catalog {

Sha256Digest sha256(std::string_view data) {
  Sha256Digest d{};
  unsigned int n = 0;
  int ok = EVP_Digest(data.data(), data.size(), d.data(), &n, EVP_sha256(), nullptr);
  assert(ok == 1 && n == d.size());
  (void)ok;
  return d;
}

std::string hexLower(const unsigned char* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 15];
  }
  return out;
}

std::string sha256Hex(std::string_view data) {
  Sha256Digest d = sha256(data);
  return hexLower(d.data(), d.size());
}

}  // namespace orchard::catalog
