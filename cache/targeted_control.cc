// Targeted cache control (RFC 9213); see targeted_control.h. The hard part
// is the Structured Field Dictionary grammar (RFC 8941 §4.2): this is a
// strict recursive-descent parser of exactly that grammar (lower-case keys,
// typed bare items, parameters, inner lists), so that a field an origin got
// wrong is ignored whole instead of half-read.
#include "cache/targeted_control.h"

#include <algorithm>
#include <cstdint>

namespace orchard::cache {
namespace {

// One parsed bare item, as far as the directives need it.
struct Item {
  enum class Type : uint8_t { Integer, Decimal, String, Token, Binary, Boolean, InnerList };
  Type type = Type::Boolean;
  int64_t integer = 0;
  bool boolean = true;
};

class SfParser {
 public:
  explicit SfParser(std::string_view s) : s_(s) {}

  // RFC 8941 §4.2: leading and trailing SP are discarded, then members.
  template <typename F>
  bool dictionary(F&& onMember) {
    while (i_ < s_.size() && s_[i_] == ' ') ++i_;
    size_t end = s_.size();
    while (end > i_ && s_[end - 1] == ' ') --end;
    s_ = s_.substr(0, end);
    if (i_ == s_.size()) return false;  // empty: not a usable field
    while (i_ < s_.size()) {
      std::string_view k;
      if (!key(&k)) return false;
      Item item;  // a bare key is Boolean true
      if (peek('=')) {
        ++i_;
        if (peek('(')) {
          if (!innerList()) return false;
          item.type = Item::Type::InnerList;
        } else if (!bareItem(&item)) {
          return false;
        }
      }
      if (!parameters()) return false;
      onMember(k, item);
      ows();
      if (i_ == s_.size()) return true;
      if (s_[i_] != ',') return false;
      ++i_;
      ows();
      if (i_ == s_.size()) return false;  // a trailing comma
    }
    return true;
  }

 private:
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  void ows() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  static bool lcalpha(char c) { return c >= 'a' && c <= 'z'; }
  static bool digit(char c) { return c >= '0' && c <= '9'; }
  static bool alpha(char c) { return lcalpha(c) || (c >= 'A' && c <= 'Z'); }
  static bool tchar(char c) {
    return alpha(c) || digit(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  }

  bool key(std::string_view* out) {
    const size_t start = i_;
    if (i_ >= s_.size() || !(lcalpha(s_[i_]) || s_[i_] == '*')) return false;
    ++i_;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (!(lcalpha(c) || digit(c) || c == '_' || c == '-' || c == '.' || c == '*')) break;
      ++i_;
    }
    *out = s_.substr(start, i_ - start);
    return true;
  }

  bool parameters() {
    while (peek(';')) {
      ++i_;
      while (peek(' ')) ++i_;
      std::string_view k;
      if (!key(&k)) return false;
      if (peek('=')) {
        ++i_;
        Item ignored;
        if (!bareItem(&ignored)) return false;
      }
    }
    return true;
  }

  bool innerList() {
    ++i_;  // '('
    while (i_ < s_.size()) {
      while (peek(' ')) ++i_;
      if (peek(')')) {
        ++i_;
        return parameters();
      }
      Item ignored;
      if (!bareItem(&ignored) || !parameters()) return false;
      if (!peek(' ') && !peek(')')) return false;
    }
    return false;
  }

  bool bareItem(Item* out) {
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '-' || digit(c)) return number(out);
    if (c == '"') return string(out);
    if (c == ':') return binary(out);
    if (c == '?') return boolean(out);
    if (alpha(c) || c == '*') {
      ++i_;
      while (i_ < s_.size() && (tchar(s_[i_]) || s_[i_] == ':' || s_[i_] == '/')) ++i_;
      out->type = Item::Type::Token;
      return true;
    }
    return false;
  }

  bool number(Item* out) {
    bool negative = false;
    if (peek('-')) {
      negative = true;
      ++i_;
    }
    size_t intDigits = 0, fracDigits = 0;
    bool decimal = false;
    int64_t v = 0;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (digit(c)) {
        if (decimal) {
          if (++fracDigits > 3) return false;
        } else {
          if (++intDigits > 15) return false;
          v = v * 10 + (c - '0');
        }
      } else if (c == '.' && !decimal) {
        if (intDigits == 0 || intDigits > 12) return false;
        decimal = true;
      } else {
        break;
      }
      ++i_;
    }
    if (intDigits == 0 || (decimal && fracDigits == 0)) return false;
    out->type = decimal ? Item::Type::Decimal : Item::Type::Integer;
    out->integer = negative ? -v : v;
    return true;
  }

  bool string(Item* out) {
    ++i_;  // '"'
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') {
        out->type = Item::Type::String;
        return true;
      }
      if (c == '\\') {
        if (i_ >= s_.size() || (s_[i_] != '"' && s_[i_] != '\\')) return false;
        ++i_;
      } else if (c < 0x20 || c > 0x7e) {
        return false;
      }
    }
    return false;
  }

  bool binary(Item* out) {
    ++i_;  // ':'
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == ':') {
        out->type = Item::Type::Binary;
        return true;
      }
      if (!(alpha(c) || digit(c) || c == '+' || c == '/' || c == '=')) return false;
    }
    return false;
  }

  bool boolean(Item* out) {
    ++i_;  // '?'
    if (peek('0') || peek('1')) {
      out->type = Item::Type::Boolean;
      out->boolean = s_[i_] == '1';
      ++i_;
      return true;
    }
    return false;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// delta-seconds from an Integer (RFC 9213 §2.1): others are ignored.
std::optional<int64_t> seconds(const Item& it) {
  if (it.type != Item::Type::Integer || it.integer < 0) return std::nullopt;
  return std::min<int64_t>(it.integer, int64_t{1} << 31);
}
// A directive that restricts (no-store, private, ...) holds unless it is
// explicitly false; one that permits (public, immutable) only when true.
bool restricts(const Item& it) { return !(it.type == Item::Type::Boolean && !it.boolean); }
bool permits(const Item& it) { return it.type == Item::Type::Boolean && it.boolean; }

}  // namespace

std::optional<CacheControl> parseTargetedControl(std::string_view value) {
  CacheControl cc;
  SfParser p(value);
  const bool ok = p.dictionary([&](std::string_view k, const Item& it) {
    // A repeated key: the last one wins (RFC 8941 §4.2.2).
    if (k == "no-store") cc.noStore = restricts(it);
    else if (k == "no-cache") cc.noCache = restricts(it);
    else if (k == "private") cc.isPrivate = restricts(it);
    else if (k == "must-revalidate") cc.mustRevalidate = restricts(it);
    else if (k == "proxy-revalidate") cc.proxyRevalidate = restricts(it);
    else if (k == "public") cc.isPublic = permits(it);
    else if (k == "immutable") cc.immutable = permits(it);
    else if (k == "max-age") cc.maxAge = seconds(it);
    else if (k == "s-maxage") cc.sMaxAge = seconds(it);
    else if (k == "stale-while-revalidate") cc.staleWhileRevalidate = seconds(it);
    else if (k == "stale-if-error") cc.staleIfError = seconds(it);
  });
  if (!ok) return std::nullopt;
  return cc;
}

ResponseControls responseControls(const HeaderList& h) {
  // One pass tells which of the three fields are present (this runs on
  // every hit; most responses carry only Cache-Control, on one line).
  bool targetedPresent = false;
  const std::string* only = nullptr;  // the one Cache-Control line
  int ccLines = 0;
  for (const auto& [k, v] : h) {
    if (iequals(k, "Cache-Control")) {
      if (++ccLines == 1) only = &v;
    } else if (k.size() >= 17 && (iequals(k, kOwnTargetedField) || iequals(k, "CDN-Cache-Control"))) {
      targetedPresent = true;
    }
  }
  ResponseControls out;
  if (targetedPresent) {
    for (const char* field : kTargetedFields) {
      if (!findHeader(h, field)) continue;
      if (auto cc = parseTargetedControl(joinedHeader(h, field))) {
        out.cc = *cc;
        out.targeted = true;
        return out;
      }
    }
  }
  if (ccLines == 1) out.cc = parseCacheControl(*only);
  else if (ccLines > 1) out.cc = parseCacheControl(joinedHeader(h, "Cache-Control"));
  return out;
}

}  // namespace orchard::cache
