// Result<T>: the error-or-value type used on every data path.
//
// An Error is a small enum, the errno it came from (0 if none) and a static
// context string: building one never allocates, so it is cheap to return
// from hot paths and callbacks. Foreign error codes (libuv, llhttp, RocksDB,
// OpenSSL) are translated in one wrapper each, next to the code that calls
// that library.
#pragma once

#include <cassert>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace orchard {

enum class Errc : uint8_t {
  Io,           // a system call failed; sys holds errno
  NotFound,     // no such object, key or file
  Invalid,      // bad input from a user, client or origin
  Exists,       // already there
  NoSpace,      // disk full (ENOSPC) or a configured limit reached
  Timeout,      // a deadline passed
  Closed,       // the peer or the owner went away
  Protocol,     // a peer broke HTTP
  Corrupt,      // stored data failed a check
  Unsupported,  // valid, but not something this build does
  Busy,         // try again later
};

const char* errcName(Errc e) noexcept;

struct Error {
  Errc code;
  int sys = 0;                 // errno or a library code, 0 when none
  const char* context = "";    // static string: what was being done

  std::string message() const;  // "context: name (strerror)" for logs, off the data path
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}             // NOLINT: implicit by design
  Result(Error error) : v_(error) {}                     // NOLINT
  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Error& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(error), ok_(false) {}       // NOLINT
  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const { assert(!ok_); return err_; }

 private:
  Error err_{Errc::Io};
  bool ok_ = true;
};

inline Result<void> ok() { return {}; }

}  // namespace orchard
