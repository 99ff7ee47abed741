// Title, version and build of an Apple product from its .dist (XML, read
// with libxml2 through catalog/safe_xml.h) and its .smd (a plist, through
// plist_input.h). See product_info.h for which source wins.
//
// The one hand-written reader here is for the .strings table inside a
// .dist's <localization> ("KEY" = "value";): it is OpenStep plist text,
// which libplist 2.2 cannot read and libxml2 does not know. It is small,
// bounded (entries, and the bytes it is given) and stops at the first
// thing it does not understand, keeping what came before: the keys a
// title needs come first in Apple's files.
#include "catalog/apple/product_info.h"

#include <plist/plist.h>
#include <libxml/tree.h>

#include <map>

#include "catalog/apple/plist_input.h"
#include "catalog/safe_xml.h"
#include "catalog/utf8.h"

namespace orchard::catalog::apple {

namespace {

constexpr size_t kMaxTitleBytes = 256;
constexpr size_t kMaxStrings = 4096;

bool goodTitle(std::string_view t) { return !t.empty() && !textProblem(t, kMaxTitleBytes); }

bool goodVersion(std::string_view v) {
  if (v.empty() || v.size() > 32) return false;
  for (char c : v)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' ||
          c == '-'))
      return false;
  return true;
}

// ---- the .strings table ----

void appendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | cp >> 6);
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xE0 | cp >> 12);
    *out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class StringsReader {
 public:
  explicit StringsReader(std::string_view s) : s_(s) {}

  void read(std::map<std::string, std::string>* table) {
    while (table->size() < kMaxStrings) {
      if (!skipSpace() || i_ >= s_.size()) return;
      std::string key, value;
      if (!token(&key) || !skipSpace() || i_ >= s_.size()) return;
      if (s_[i_] == ';') {  // "KEY"; means "KEY" = "KEY";
        ++i_;
        value = key;
      } else {
        if (s_[i_] != '=') return;
        ++i_;
        if (!skipSpace() || !token(&value) || !skipSpace() || i_ >= s_.size() || s_[i_] != ';') return;
        ++i_;
      }
      table->emplace(std::move(key), std::move(value));  // the first definition wins
    }
  }

 private:
  // Whitespace and comments; false on an unterminated comment.
  bool skipSpace() {
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++i_;
      } else if (s_.substr(i_, 2) == "/*") {
        const size_t end = s_.find("*/", i_ + 2);
        if (end == std::string_view::npos) return false;
        i_ = end + 2;
      } else if (s_.substr(i_, 2) == "//") {
        const size_t end = s_.find('\n', i_);
        i_ = end == std::string_view::npos ? s_.size() : end + 1;
      } else {
        break;
      }
    }
    return true;
  }

  static bool bareChar(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
           c == '+' || c == '/' || c == ':' || c == '.' || c == '-';
  }

  bool token(std::string* out) {
    if (i_ >= s_.size()) return false;
    const char q = s_[i_];
    if (q != '"' && q != '\'') {
      const size_t start = i_;
      while (i_ < s_.size() && bareChar(s_[i_])) ++i_;
      *out = std::string(s_.substr(start, i_ - start));
      return i_ > start;
    }
    ++i_;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == q) return true;
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      switch (e) {
        case 'n': *out += '\n'; break;
        case 't': *out += '\t'; break;
        case 'r': *out += '\r'; break;
        case 'U':
        case 'u': {
          uint32_t cp = 0;
          size_t k = 0;
          for (; k < 4 && i_ < s_.size() && hexValue(s_[i_]) >= 0; ++k) cp = cp << 4 | hexValue(s_[i_++]);
          if (k == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
          appendUtf8(out, cp);
          break;
        }
        default: *out += e; break;  // \" \' \\ and anything else: the character itself
      }
    }
    return false;  // unterminated
  }

  std::string_view s_;
  size_t i_ = 0;
};

// ---- the .dist ----

using xml::Node;

// Element children in document order.
std::vector<Node> elements(Node parent) {
  std::vector<Node> out;
  if (!parent) return out;
  for (Node c = parent->children; c; c = c->next)
    if (c->type == XML_ELEMENT_NODE) out.push_back(c);
  return out;
}

// <auxinfo><dict><key>K</key><string>V</string>...</dict></auxinfo>
std::map<std::string, std::string> auxinfo(Node root) {
  std::map<std::string, std::string> out;
  Node dict = xml::firstChild(xml::firstChild(root, "auxinfo"), "dict");
  const std::vector<Node> kids = elements(dict);
  for (size_t i = 0; i + 1 < kids.size(); ++i) {
    if (xml::name(kids[i]) != "key") continue;
    if (xml::name(kids[i + 1]) == "string") out.emplace(xml::text(kids[i]), xml::text(kids[i + 1]));
    ++i;
  }
  return out;
}

std::map<std::string, std::string> stringsTable(Node root) {
  std::vector<Node> tables;
  for (Node loc : xml::children(root, "localization"))
    for (Node s : xml::children(loc, "strings")) tables.push_back(s);
  Node chosen = nullptr;
  for (const char* lang : {"English", "en", "en_US", "en-US"}) {
    for (Node t : tables)
      if (xml::attr(t, "language") == lang) {
        chosen = t;
        break;
      }
    if (chosen) break;
  }
  if (!chosen && !tables.empty()) chosen = tables.front();
  std::map<std::string, std::string> table;
  if (chosen) {
    // Not xml::text(): that trims, and the table's own syntax handles space.
    xmlChar* raw = xmlNodeGetContent(chosen);
    if (raw) {
      StringsReader(reinterpret_cast<const char*>(raw)).read(&table);
      xmlFree(raw);
    }
  }
  return table;
}

const std::string* lookup(const std::map<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? nullptr : &it->second;
}

}  // namespace

Result<ProductInfo> parseDistribution(std::string_view text) {
  if (text.size() > kDistributionMaxBytes) return Error{Errc::Invalid, 0, "dist: larger than 4 MiB"};
  auto doc = xml::parseUntrusted(text, "dist: not well-formed XML (or it has a DOCTYPE)");
  if (!doc) return doc.error();
  Node root = xml::root(*doc);
  if (xml::name(root) != "installer-gui-script")
    return Error{Errc::Invalid, 0, "dist: the root is not installer-gui-script"};

  const auto aux = auxinfo(root);
  const auto strings = stringsTable(root);
  ProductInfo info;

  const std::string title = xml::text(xml::firstChild(root, "title"));
  const std::string* resolved = lookup(strings, title);
  if (resolved && goodTitle(*resolved)) info.title = *resolved;
  else if (!resolved && goodTitle(title)) info.title = title;

  std::vector<std::string> versions;
  if (auto* v = lookup(aux, "VERSION")) versions.push_back(*v);
  if (auto* v = lookup(strings, "SU_VERS")) versions.push_back(*v);
  versions.push_back(xml::attr(xml::firstChild(root, "product"), "version"));
  for (Node ref : xml::children(root, "pkg-ref")) {
    std::string v = xml::attr(ref, "version");
    if (!v.empty()) {
      versions.push_back(std::move(v));
      break;
    }
  }
  for (const std::string& v : versions)
    if (goodVersion(v)) {
      info.version = v;
      break;
    }

  if (auto* b = lookup(aux, "BUILD"); b && goodVersion(*b)) info.build = *b;
  return info;
}

Result<ProductInfo> parseServerMetadata(std::string_view bytes) {
  if (bytes.size() > kServerMetadataMaxBytes) return Error{Errc::Invalid, 0, "smd: larger than 1 MiB"};
  auto root = detail::parseUntrustedPlist(bytes, {kServerMetadataMaxBytes * 4, 100'000}, "smd: not a plist");
  if (!root) return root.error();
  plist_t dict = root->get();
  if (plist_get_node_type(dict) != PLIST_DICT) return Error{Errc::Invalid, 0, "smd: the root is not a dictionary"};

  auto str = [](plist_t d, const char* key) -> std::string_view {
    plist_t n = d ? plist_dict_get_item(d, key) : nullptr;
    if (!n || plist_get_node_type(n) != PLIST_STRING) return {};
    uint64_t len = 0;
    const char* p = plist_get_string_ptr(n, &len);
    return p ? std::string_view(p, len) : std::string_view();
  };

  ProductInfo info;
  if (std::string_view v = str(dict, "CFBundleShortVersionString"); goodVersion(v)) info.version = std::string(v);
  plist_t loc = plist_dict_get_item(dict, "localization");
  if (loc && plist_get_node_type(loc) == PLIST_DICT) {
    for (const char* lang : {"English", "en"}) {
      plist_t l = plist_dict_get_item(loc, lang);
      if (!l || plist_get_node_type(l) != PLIST_DICT) continue;
      if (std::string_view t = str(l, "title"); goodTitle(t)) {
        info.title = std::string(t);
        break;
      }
    }
  }
  return info;
}

}  // namespace orchard::catalog::apple
