// Helpers shared by the fuzz targets: an invariant check that aborts with a
// message (so the driver, or libFuzzer, saves the input), and a small
// splitter that carves one input into several fields.
//
// Every target defines the libFuzzer entry point
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
// and nothing else that a fuzzing engine needs: the same file builds with
// -fsanitize=fuzzer (ORCHARD_LIBFUZZER=ON, clang) or against driver.cc
// (GCC; the default, run by ctest -L fuzz).
//
// Input layout convention: fields are separated by a NUL-free marker line,
// "\n--\n" by default, so seed files stay readable text. A field that is
// not there is empty; the fields keep their bytes exactly (including NULs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

// Aborts the run when an invariant does not hold. The driver's abort
// handler (or libFuzzer's) writes the current input to a crash file.
#define FUZZ_CHECK(cond, ...)                                                            \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "\nFUZZ_CHECK failed: %s\n  at %s:%d\n  ", #cond, __FILE__, __LINE__); \
      std::fprintf(stderr, __VA_ARGS__);                                                 \
      std::fprintf(stderr, "\n");                                                        \
      std::fflush(stderr);                                                               \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

namespace orchard::fuzz {

inline std::string_view asView(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// Splits `in` at every occurrence of `sep`; always returns at least `min`
// fields (missing ones empty).
inline std::vector<std::string_view> splitFields(std::string_view in, size_t min, std::string_view sep = "\n--\n") {
  std::vector<std::string_view> out;
  while (true) {
    size_t p = in.find(sep);
    if (p == std::string_view::npos) {
      out.push_back(in);
      break;
    }
    out.push_back(in.substr(0, p));
    in.remove_prefix(p + sep.size());
  }
  while (out.size() < min) out.emplace_back();
  return out;
}

// Parses "Name: value" lines (CRLF or LF) into pairs; lines without a colon
// become a name with an empty value. Used to build header lists.
template <class List>
List parseHeaderLines(std::string_view text) {
  List out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t colon = line.find(':');
    std::string_view name = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    out.emplace_back(std::string(name), std::string(value));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

// Reads integers from the front of a byte string (little endian, missing
// bytes are zero); for targets that need a few numbers plus text.
class Bytes {
 public:
  explicit Bytes(std::string_view s) : s_(s) {}
  uint64_t u64(size_t n = 8) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) {
      uint8_t b = 0;
      if (!s_.empty()) {
        b = static_cast<uint8_t>(s_.front());
        s_.remove_prefix(1);
      }
      v |= static_cast<uint64_t>(b) << (8 * i);
    }
    return v;
  }
  std::string_view rest() const { return s_; }

 private:
  std::string_view s_;
};

// Printable rendering of bytes for failure messages (C escapes, truncated).
inline std::string escape(std::string_view s, size_t limit = 200) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < limit; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\\') out += "\\\\";
    else if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
    else {
      char b[5];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    }
  }
  if (s.size() > limit) out += "...";
  return out;
}

}  // namespace orchard::fuzz
