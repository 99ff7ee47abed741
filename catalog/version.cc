// Version comparison (rules in version.h). Hard parts: numbers longer than
// any integer type (compared as digit strings), keeping the order
// transitive when pre-release words, numbers and ended versions meet at
// the same position (one rank per run kind: letters < ended/zero <
// numbers), and making "a" and "alpha" equal without breaking the
// case-insensitive order of other words (canonical spellings, not ranks).
#include "catalog/version.h"

#include <string>

namespace orchard::catalog {
namespace {

bool isDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool isLetter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80; }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// The part of `v` the rules compare: without a leading v before a digit,
// and without build metadata.
std::string_view comparable(std::string_view v) {
  if (v.size() >= 2 && (v[0] == 'v' || v[0] == 'V') && isDigit(static_cast<unsigned char>(v[1]))) v.remove_prefix(1);
  bool sawDigit = false;
  for (size_t i = 0; i < v.size(); ++i) {
    if (isDigit(static_cast<unsigned char>(v[i]))) sawDigit = true;
    else if (v[i] == '+' && sawDigit) return v.substr(0, i);
  }
  return v;
}

// One run of digits (leading zeros stripped; "" is zero) or of letters
// (lower case, canonical spelling), or the end of the version.
struct Run {
  enum Kind { Letters, End, Digits } kind = End;  // order: letters < end == zero < numbers
  std::string text;
};

class Runs {
 public:
  explicit Runs(std::string_view v) : v_(v) {}
  Run next() {
    while (pos_ < v_.size() && !isDigit(byte(pos_)) && !isLetter(byte(pos_))) ++pos_;
    Run r;
    if (pos_ == v_.size()) return r;
    const bool digits = isDigit(byte(pos_));
    r.kind = digits ? Run::Digits : Run::Letters;
    const size_t start = pos_;
    while (pos_ < v_.size() && (digits ? isDigit(byte(pos_)) : isLetter(byte(pos_)))) ++pos_;
    std::string_view t = v_.substr(start, pos_ - start);
    if (digits) {
      while (!t.empty() && t.front() == '0') t.remove_prefix(1);
      r.text = t;
    } else {
      for (char c : t) r.text += lower(c);
      if (r.text == "a") r.text = "alpha";
      else if (r.text == "b") r.text = "beta";
      else if (r.text == "pre") r.text = "preview";
    }
    return r;
  }
 private:
  unsigned char byte(size_t i) const { return static_cast<unsigned char>(v_[i]); }
  std::string_view v_;
  size_t pos_ = 0;
};

int sign(int v) { return (v > 0) - (v < 0); }

int compareRuns(const Run& a, const Run& b) {
  // An ended version is a zero: compare it as an empty digit string.
  const Run::Kind ka = a.kind == Run::End ? Run::Digits : a.kind;
  const Run::Kind kb = b.kind == Run::End ? Run::Digits : b.kind;
  if (ka != kb) return ka == Run::Letters ? -1 : 1;
  if (ka == Run::Digits && a.text.size() != b.text.size()) return a.text.size() < b.text.size() ? -1 : 1;
  return sign(a.text.compare(b.text));
}

}  // namespace

int compareVersions(std::string_view a, std::string_view b) {
  Runs ra(comparable(a)), rb(comparable(b));
  while (true) {
    const Run x = ra.next(), y = rb.next();
    if (x.kind == Run::End && y.kind == Run::End) return 0;
    if (const int c = compareRuns(x, y)) return c;
  }
}

bool versionLess(std::string_view a, std::string_view b) {
  const int c = compareVersions(a, b);
  return c != 0 ? c < 0 : a < b;
}

}  // namespace orchard::catalog
