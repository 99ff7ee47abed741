// Error and Errc: the one error type the cache, the catalog and the server
// pass around, and its message text ("context: code (strerror)").
#include "common/result.h"

#include <cstring>

namespace orchard {

const char* errcName(Errc e) noexcept {
  switch (e) {
    case Errc::Io: return "io";
    case Errc::NotFound: return "not found";
    case Errc::Invalid: return "invalid";
    case Errc::Exists: return "exists";
    case Errc::NoSpace: return "no space";
    case Errc::Timeout: return "timeout";
    case Errc::Closed: return "closed";
    case Errc::Protocol: return "protocol";
    case Errc::Corrupt: return "corrupt";
    case Errc::Unsupported: return "unsupported";
    case Errc::Busy: return "busy";
  }
  return "?";
}

std::string Error::message() const {
  std::string m = context && *context ? context : "error";
  m += ": ";
  m += errcName(code);
  if (sys > 0) {
    m += " (";
    m += std::strerror(sys);
    m += ")";
  }
  return m;
}

}  // namespace orchard
