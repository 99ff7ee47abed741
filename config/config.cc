// Loading a Config from TOML (see config.h). The only file that includes
// toml++. The loader walks the parsed document against the parameter table,
// converts each value by its ParamType, and keeps going after a problem so
// that one run reports every problem. The defaults take the same path: they
// are the table's default literals rendered as TOML (defaultsToml()) and
// loaded once, so the embedded defaults, the example file and the loader
// cannot disagree.
#include "config/config.h"

#include "common/time_window.h"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#define TOML_ENABLE_FORMATTERS 0
// toml++ 3.3.0 asserts on some malformed table headers ("[=", upstream PR
// #301) where a release build reports a parse error: keep the parse error
// in every build type.
#define TOML_ASSERT(expr) static_cast<void>(0)
#include <toml++/toml.h>

#include "config/params.h"

namespace orchard::config {
namespace {

constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();

int lineOf(const toml::source_region& r) { return static_cast<int>(r.begin.line); }

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// How a value is shown after "got ".
std::string show(const toml::node& n) {
  if (const auto* s = n.as_string()) return quote(s->get());
  if (const auto* i = n.as_integer()) return std::to_string(i->get());
  if (const auto* b = n.as_boolean()) return b->get() ? "true" : "false";
  if (const auto* f = n.as_floating_point()) {
    std::ostringstream os;
    os << f->get();
    return os.str();
  }
  if (n.is_array()) return "an array";
  if (n.is_table()) return "a table";
  return "a date or time";
}

std::string expected(const Param& p) {
  switch (p.type) {
    case ParamType::String: return "a string";
    case ParamType::StringList: return "an array of strings";
    case ParamType::Choice: {
      std::string out = "one of ";
      for (char c : p.choices) out += c == '|' ? std::string(", ") : std::string(1, c);
      return out;
    }
    case ParamType::Size: return "a size like \"200GiB\"";
    case ParamType::Duration: return "a duration like \"30s\" or \"500ms\"";
    case ParamType::Integer: return "an integer";
    case ParamType::Bool: return "true or false";
    case ParamType::AddressList: return "an array of addresses like [\"127.0.0.1:8080\", \"[::1]:8080\"]";
    case ParamType::CidrList: return "an array of address ranges like [\"10.0.0.0/8\", \"::1/128\"]";
    case ParamType::HostList: return "an array of host names like [\"swcdn.apple.com\", \"*.cdn-apple.com\"]";
    case ParamType::AddressTable: return "a table of host = \"addr:port\"";
    case ParamType::TokenList:
      return "[[" + std::string(p.name) + "]] tables of name, token or token_file, and scope";
    case ParamType::LogTarget: return "false, true, \"stderr\" or an absolute file path";
  }
  return "?";
}

std::string showBound(ParamType t, int64_t v) {
  if (t == ParamType::Size) return formatSize(v);
  if (t == ParamType::Duration) return formatDuration(v);
  return std::to_string(v);
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// "; did you mean storage.cache_limit?" or "".
std::string suggestKey(std::string_view section, std::string_view key) {
  for (const Param& p : params()) {
    if (p.key() == key) return "; did you mean " + std::string(p.name) + "?";
  }
  const Param* best = nullptr;
  size_t bestDist = 3;
  for (const Param& p : params()) {
    if (p.section() != section) continue;
    size_t d = editDistance(key, p.key());
    if (d < bestDist) {
      bestDist = d;
      best = &p;
    }
  }
  return best ? "; did you mean " + std::string(best->name) + "?" : "";
}

std::string suggestSection(std::string_view name) {
  for (const Section& s : sections()) {
    if (editDistance(name, s.name) <= 2) return "; did you mean [" + std::string(s.name) + "]?";
  }
  return "";
}

// Applies one parsed document to a Config, collecting problems.
class Loader {
 public:
  Loader(Config* config, std::vector<Problem>* problems) : config_(config), problems_(problems) {}

  void apply(const toml::table& root) {
    for (auto&& [k, node] : root) {
      std::string name(k.str());
      int line = keyLine(k, node);
      const Section* section = findSection(name);
      if (section == nullptr) {
        if (node.is_table()) {
          add(name, line, "unknown section [" + name + "]" + suggestSection(name));
        } else {
          add(name, line, "unknown key outside any section" + suggestKey("", name));
        }
        continue;
      }
      const toml::table* table = node.as_table();
      if (table == nullptr) {
        add(name, line, "expected a [" + name + "] section, got " + show(node));
        continue;
      }
      for (auto&& [k2, value] : *table) {
        std::string full = name + "." + std::string(k2.str());
        int keyLn = keyLine(k2, value);
        const Param* p = findParam(full);
        if (p == nullptr) {
          add(full, keyLn, "unknown key" + suggestKey(name, k2.str()));
          continue;
        }
        lines_[full] = keyLn;
        std::optional<Value> v = convert(*p, value, keyLn);
        if (v) p->set(*config_, std::move(*v));
      }
    }
  }

  // "host", "host:port" or "[v6]:port" (server.pac_proxy), or why not.
  static const char* hostPortProblem(std::string_view s) {
    std::string_view host = s, port;
    if (!s.empty() && s.front() == '[') {
      size_t close = s.find(']');
      if (close == std::string_view::npos) return "expected \"host:port\" or \"[v6]:port\": no closing ']'";
      Result<ListenAddress> a = ListenAddress::parse(s);
      if (!a.ok() || !a->v6) return "expected \"[v6]:port\" with a numeric IPv6 address and a port";
      return nullptr;
    }
    size_t colon = s.rfind(':');
    if (colon != std::string_view::npos) {
      host = s.substr(0, colon);
      port = s.substr(colon + 1);
      if (port.empty() || port.size() > 5) return "expected \"host:port\" with a port 1-65535";
      unsigned v = 0;
      for (char ch : port) {
        if (ch < '0' || ch > '9') return "expected \"host:port\" with a port 1-65535";
        v = v * 10 + static_cast<unsigned>(ch - '0');
      }
      if (v == 0 || v > 65535) return "expected \"host:port\" with a port 1-65535";
    }
    if (!normalizeHostName(host).ok()) return "expected \"host:port\": the host is not a valid name or address";
    return nullptr;
  }

  // upstream.parents / upstream.peers: parsed into the derived node lists;
  // this box's own peer entry found (peer_name, else a listener's address).
  void checkCacheNodes() {
    Config& c = *config_;
    static const char* kPolicies[] = {"round-robin", "first-available", "url-path-hash", "random",
                                      "sticky-available"};
    if (std::find(std::begin(kPolicies), std::end(kPolicies), c.parentPolicy) == std::end(kPolicies)) {
      add("upstream.parent_policy", line("upstream.parent_policy"),
          "expected \"round-robin\", \"first-available\", \"url-path-hash\", \"random\" or "
          "\"sticky-available\", got " + quote(c.parentPolicy));
    }
    if (c.peerPolicy != "url-path-hash" && c.peerPolicy != "off") {
      add("upstream.peer_policy", line("upstream.peer_policy"),
          "expected \"url-path-hash\" or \"off\", got " + quote(c.peerPolicy));
    }
    c.parentNodes.clear();
    c.peerNodes.clear();
    c.peerSelf.clear();
    auto parseList = [&](const char* key, const std::vector<std::string>& in, std::vector<CacheNode>* out) {
      for (const std::string& t : in) {
        auto n = CacheNode::parse(t);
        if (!n) {
          add(key, line(key), std::string(n.error().context) + ", got " + quote(t));
          continue;
        }
        bool dup = false;
        for (const auto& o : *out) dup = dup || o.id() == n->id();
        if (dup) {
          add(key, line(key), "listed twice: " + quote(t));
          continue;
        }
        out->push_back(std::move(*n));
      }
    };
    parseList("upstream.parents", c.upstreamParents, &c.parentNodes);
    std::vector<CacheNode> peers;
    parseList("upstream.peers", c.upstreamPeers, &peers);
    if (!c.peerName.empty()) {
      auto self = CacheNode::parse(c.peerName);
      if (!self) {
        add("upstream.peer_name", line("upstream.peer_name"),
            std::string(self.error().context) + ", got " + quote(c.peerName));
        return;
      }
      c.peerSelf = self->id();
    } else if (!peers.empty()) {
      bool wildcard = false;  // an entry on the port of a 0.0.0.0 / [::] listener: the server looks
      for (const auto& n : peers)
        for (const auto* l : {&c.listen, &c.tlsListen})
          for (const ListenAddress& a : *l) {
            if (n.port == a.port && n.host == a.host) c.peerSelf = n.id();
            if (n.port == a.port && (a.host == "0.0.0.0" || a.host == "::")) wildcard = true;
          }
      if (c.peerSelf.empty() && wildcard) {
        // Which of them names this box depends on its interface addresses:
        // the server finds it at start (server/proxy/cache_nodes.h), or
        // fails naming upstream.peer_name.
        c.peerNodes = std::move(peers);
        return;
      }
      if (c.peerSelf.empty()) {
        add("upstream.peer_name", line("upstream.peers"),
            "none of upstream.peers is one of this box's listeners: set upstream.peer_name to this box's entry "
            "as the other peers list it");
        return;
      }
    }
    for (auto& n : peers)
      if (n.id() != c.peerSelf) c.peerNodes.push_back(std::move(n));
    for (const auto& p : c.parentNodes)
      for (const auto& q : c.peerNodes)
        if (p.id() == q.id()) add("upstream.peers", line("upstream.peers"), quote(q.text) + " is a parent as well");
  }

  // Rules that involve more than one key, or that the table cannot express.
  void crossCheck() {
    const Config& c = *config_;
    if (c.tlsCertificate.empty() != c.tlsPrivateKey.empty()) {
      const char* missing = c.tlsCertificate.empty() ? "tls.certificate" : "tls.private_key";
      add(missing, line(c.tlsCertificate.empty() ? "tls.private_key" : "tls.certificate"),
          "set tls.certificate and tls.private_key together (or neither: the box makes its own CA)");
    }
    if (!c.adminToken.empty() && !c.adminTokenFile.empty()) {
      add("admin.token_file", line("admin.token_file"), "set admin.token or admin.token_file, not both");
    }
    for (const TokenSpec& t : c.adminTokens) {
      if (!t.token.empty() && t.token == c.adminToken) {
        add("admin.tokens", line("admin.tokens"),
            "token " + quote(t.name) + " is the same secret as admin.token: give each token its own");
      }
    }
    if (!c.pacProxy.empty()) {
      if (const char* why = hostPortProblem(c.pacProxy)) add("server.pac_proxy", line("server.pac_proxy"), why);
    }
    if (!c.appleMirrorWindow.empty() && !TimeWindow::parse(c.appleMirrorWindow)) {
      add("apple.mirror_window", line("apple.mirror_window"),
          "expected a local time window like \"22:00-06:00\" (HH:MM-HH:MM, 24-hour, start != end), got " +
              quote(c.appleMirrorWindow));
    }
    checkCacheNodes();
    if (!c.catalogFollow.empty()) {
      auto hub = CacheNode::parse(c.catalogFollow);
      if (!hub) {
        add("catalog.follow", line("catalog.follow"),
            std::string("expected the hub's URL like \"https://hub.example\": ") + hub.error().context + ", got " +
                quote(c.catalogFollow));
      } else if (c.catalogFollowToken.empty() && c.catalogFollowTokenFile.empty()) {
        add("catalog.follow_token", line("catalog.follow"),
            "catalog.follow needs a token of the hub (catalog.follow_token or catalog.follow_token_file)");
      }
    }
    if (!c.catalogFollowToken.empty() && !c.catalogFollowTokenFile.empty()) {
      add("catalog.follow_token_file", line("catalog.follow_token_file"),
          "set catalog.follow_token or catalog.follow_token_file, not both");
    }
    if (c.listen.empty() && c.tlsListen.empty()) {
      add("server.listen", line("server.listen"), "no listeners: give at least one \"addr:port\"");
    }
  }

 private:
  static int keyLine(const toml::key& k, const toml::node& n) {
    int l = lineOf(k.source());
    return l > 0 ? l : lineOf(n.source());
  }

  int line(const std::string& key) const {
    auto it = lines_.find(key);
    return it == lines_.end() ? 0 : it->second;
  }

  void add(std::string key, int line, std::string message) {
    problems_->push_back(Problem{std::move(key), line, std::move(message)});
  }

  void typeProblem(const Param& p, const toml::node& n, int line) {
    add(std::string(p.name), line, "expected " + expected(p) + ", got " + show(n));
  }

  // Checks min/max; adds a problem and returns false when out of bounds.
  bool inBounds(const Param& p, int64_t v, const toml::node& n, int line) {
    if (v >= p.min && v <= p.max) return true;
    std::string msg;
    if (p.max == kMaxInt64) {
      msg = "must be at least " + showBound(p.type, p.min);
    } else {
      msg = "must be between " + showBound(p.type, p.min) + " and " + showBound(p.type, p.max);
    }
    add(std::string(p.name), line, msg + ", got " + show(n));
    return false;
  }

  // Element line, or the key's line when the element has none.
  static int elementLine(const toml::node& n, int fallback) {
    int l = lineOf(n.source());
    return l > 0 ? l : fallback;
  }

  // Applies `each` to every string of an array value; false if any failed.
  template <typename F>
  bool forEachString(const Param& p, const toml::node& n, int line, F&& each) {
    const toml::array* arr = n.as_array();
    if (arr == nullptr) {
      typeProblem(p, n, line);
      return false;
    }
    bool good = true;
    for (const toml::node& e : *arr) {
      int eLine = elementLine(e, line);
      const auto* s = e.as_string();
      if (s == nullptr) {
        typeProblem(p, e, eLine);
        good = false;
        continue;
      }
      if (!each(s->get(), e, eLine)) good = false;
    }
    return good;
  }

  std::optional<Value> convert(const Param& p, const toml::node& n, int line) {
    std::string name(p.name);
    switch (p.type) {
      case ParamType::String: {
        if (const auto* s = n.as_string()) return Value(s->get());
        typeProblem(p, n, line);
        return std::nullopt;
      }
      case ParamType::Choice: {
        const auto* s = n.as_string();
        if (s != nullptr) {
          std::string_view rest = p.choices;
          while (!rest.empty()) {
            size_t bar = rest.find('|');
            if (rest.substr(0, bar) == s->get()) return Value(s->get());
            rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
          }
        }
        typeProblem(p, n, line);
        return std::nullopt;
      }
      case ParamType::Bool: {
        if (const auto* b = n.as_boolean()) return Value(b->get());
        typeProblem(p, n, line);
        return std::nullopt;
      }
      case ParamType::LogTarget: {
        // true is what configs before file targets meant: standard error.
        if (const auto* b = n.as_boolean()) return Value(std::string(b->get() ? "stderr" : ""));
        if (const auto* s = n.as_string()) {
          const std::string& v = s->get();
          if (v == "stderr" || (v.size() > 1 && v.front() == '/' && v.back() != '/')) return Value(v);
        }
        typeProblem(p, n, line);
        return std::nullopt;
      }
      case ParamType::Integer: {
        const auto* i = n.as_integer();
        if (i == nullptr) {
          typeProblem(p, n, line);
          return std::nullopt;
        }
        if (!inBounds(p, i->get(), n, line)) return std::nullopt;
        return Value(i->get());
      }
      case ParamType::Size:
      case ParamType::Duration: {
        int64_t v = 0;
        if (const auto* i = n.as_integer()) {
          // A bare integer is bytes for a size, seconds for a duration.
          v = i->get();
          if (v < 0 || (p.type == ParamType::Duration && __builtin_mul_overflow(v, int64_t{1000}, &v))) {
            typeProblem(p, n, line);
            return std::nullopt;
          }
        } else if (const auto* s = n.as_string()) {
          Result<int64_t> r = p.type == ParamType::Size ? parseSize(s->get()) : parseDuration(s->get());
          if (!r.ok()) {
            add(name, line, std::string(r.error().context) + ", got " + show(n));
            return std::nullopt;
          }
          v = *r;
        } else {
          typeProblem(p, n, line);
          return std::nullopt;
        }
        if (!inBounds(p, v, n, line)) return std::nullopt;
        return Value(v);
      }
      case ParamType::StringList: {
        std::vector<std::string> out;
        bool good = forEachString(p, n, line, [&](const std::string& s, const toml::node&, int eLine) {
          if (s.empty()) {
            add(name, eLine, "expected non-empty strings, got \"\"");
            return false;
          }
          out.push_back(s);
          return true;
        });
        if (!good) return std::nullopt;
        return Value(std::move(out));
      }
      case ParamType::AddressList: {
        std::vector<ListenAddress> out;
        bool good = forEachString(p, n, line, [&](const std::string& s, const toml::node& e, int eLine) {
          Result<ListenAddress> a = ListenAddress::parse(s);
          if (!a.ok()) {
            add(name, eLine, std::string(a.error().context) + ", got " + show(e));
            return false;
          }
          for (const ListenAddress& seen : out) {
            if (seen.host == a->host && seen.port == a->port) {
              add(name, eLine, show(e) + " is listed twice");
              return false;
            }
          }
          out.push_back(std::move(*a));
          return true;
        });
        if (!good) return std::nullopt;
        return Value(std::move(out));
      }
      case ParamType::CidrList: {
        std::vector<Cidr> out;
        bool good = forEachString(p, n, line, [&](const std::string& s, const toml::node& e, int eLine) {
          Result<Cidr> c = Cidr::parse(s);
          if (!c.ok()) {
            add(name, eLine, std::string(c.error().context) + ", got " + show(e));
            return false;
          }
          out.push_back(std::move(*c));
          return true;
        });
        if (!good) return std::nullopt;
        return Value(std::move(out));
      }
      case ParamType::HostList: {
        std::vector<std::string> out;
        std::set<std::string> seen;
        bool good = forEachString(p, n, line, [&](const std::string& s, const toml::node& e, int eLine) {
          Result<std::string> h = normalizeHostPattern(s);
          if (!h.ok()) {
            add(name, eLine, std::string(h.error().context) + ", got " + show(e));
            return false;
          }
          if (seen.insert(*h).second) out.push_back(std::move(*h));  // duplicates are harmless
          return true;
        });
        if (!good) return std::nullopt;
        return Value(std::move(out));
      }
      case ParamType::TokenList: return convertTokens(p, n, line);
      case ParamType::AddressTable: {
        const toml::table* t = n.as_table();
        if (t == nullptr) {
          typeProblem(p, n, line);
          return std::nullopt;
        }
        // toml++ iterates keys sorted; walk them in file order so that the
        // later of two duplicates is the one reported.
        std::vector<std::pair<const toml::key*, const toml::node*>> entries;
        for (auto&& [k, v] : *t) entries.emplace_back(&k, &v);
        std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
          return keyLine(*a.first, *a.second) < keyLine(*b.first, *b.second);
        });
        std::map<std::string, ListenAddress> out;
        bool good = true;
        for (const auto& [kp, vp] : entries) {
          const toml::key& k = *kp;
          const toml::node& v = *vp;
          int eLine = keyLine(k, v);
          Result<std::string> host = normalizeHostName(k.str());
          if (!host.ok()) {
            add(name, eLine, std::string(host.error().context) + ", got " + quote(k.str()));
            good = false;
            continue;
          }
          const auto* s = v.as_string();
          if (s == nullptr) {
            typeProblem(p, v, eLine);
            good = false;
            continue;
          }
          Result<ListenAddress> a = ListenAddress::parse(s->get());
          if (!a.ok()) {
            add(name, eLine, quote(k.str()) + ": " + a.error().context + ", got " + show(v));
            good = false;
            continue;
          }
          if (!out.emplace(std::move(*host), std::move(*a)).second) {
            add(name, eLine, quote(k.str()) + " is listed twice");
            good = false;
          }
        }
        if (!good) return std::nullopt;
        return Value(std::move(out));
      }
    }
    return std::nullopt;
  }

  // [[admin.tokens]]: every entry checked, every problem reported with the
  // entry's line; the list is taken only when all of it is good.
  std::optional<Value> convertTokens(const Param& p, const toml::node& n, int line) {
    const std::string name(p.name);
    const toml::array* arr = n.as_array();
    if (arr == nullptr) {
      typeProblem(p, n, line);
      return std::nullopt;
    }
    std::vector<TokenSpec> out;
    std::set<std::string> names;                 // every name seen, good entries or not
    std::map<std::string, std::string> secrets;  // secret -> the name that gave it first
    bool good = true;
    for (const toml::node& e : *arr) {
      const int eLine = elementLine(e, line);
      const toml::table* t = e.as_table();
      if (t == nullptr) {
        typeProblem(p, e, eLine);
        good = false;
        continue;
      }
      TokenSpec spec;
      bool entryGood = true;
      auto bad = [&](std::string msg) {
        add(name, eLine, std::move(msg));
        entryGood = false;
      };
      // A string field of the entry, or nullopt (with a problem when present but not a string).
      auto text = [&](std::string_view key) -> std::optional<std::string> {
        const toml::node* v = t->get(key);
        if (v == nullptr) return std::nullopt;
        if (const auto* s = v->as_string()) return s->get();
        bad(std::string(key) + ": expected a string, got " + show(*v));
        return std::nullopt;
      };
      for (auto&& [k, v] : *t) {
        const std::string_view key = k.str();
        if (key != "name" && key != "token" && key != "token_file" && key != "scope")
          bad("unknown key " + quote(key) + " in a token entry (name, token, token_file, scope)");
      }
      const std::optional<std::string> tokenName = text("name");
      const std::string who = tokenName ? "token " + quote(*tokenName) + ": " : std::string("a token entry: ");
      if (!tokenName) {
        if (t->get("name") == nullptr) bad("a token entry needs name = \"...\"");
      } else if (const char* why = tokenNameProblem(*tokenName)) {
        bad(who + why);
      } else if (*tokenName == kAdminTokenName) {
        bad(who + "the name \"admin\" is admin.token's (or the generated token's); choose another");
      } else {
        if (!names.insert(*tokenName).second) bad(who + "the name is used twice");
        spec.name = *tokenName;
      }
      const std::optional<std::string> secret = text("token");
      const std::optional<std::string> file = text("token_file");
      if (t->get("token") != nullptr && t->get("token_file") != nullptr) {
        bad(who + "set token or token_file, not both");
      } else if (t->get("token") == nullptr && t->get("token_file") == nullptr) {
        bad(who + "needs token = \"...\" or token_file = \"/path\"");
      } else if (secret) {
        if (const char* why = tokenTextProblem(*secret)) {
          bad(who + why);
        } else {
          auto [it, fresh] = secrets.emplace(*secret, tokenName.value_or(""));
          if (!fresh) bad(who + "the same secret as token " + quote(it->second) + ": give each token its own");
          spec.token = *secret;
        }
      } else if (file) {
        if (file->empty()) bad(who + "token_file is empty");
        spec.tokenFile = *file;
      }
      if (const std::optional<std::string> scope = text("scope")) {
        if (auto s = parseScope(*scope)) spec.scope = *s;
        else bad(who + "scope must be read, mdm, publish or admin, got " + quote(*scope));
      } else if (t->get("scope") == nullptr) {
        bad(who + "needs scope = \"read\", \"mdm\", \"publish\" or \"admin\"");
      }
      if (entryGood) out.push_back(std::move(spec));
      else good = false;
    }
    if (!good) return std::nullopt;
    return Value(std::move(out));
  }

  Config* config_;
  std::vector<Problem>* problems_;
  std::map<std::string, int> lines_;  // key -> line, for cross-key problems
};

// Parses and applies a document onto `config`; never throws.
void loadInto(std::string_view text, std::string_view sourceName, Config* config, std::vector<Problem>* problems,
              bool crossCheck) {
  // Debian's toml++ 3.3.0 reaches undefined behaviour on some non-ASCII
  // input (upstream issues #190/#295, fixed after 3.3.0): every value Orchard
  // takes is ASCII, so any other byte is refused before the parser sees it.
  int line = 1;
  for (char ch : text) {
    if (ch == '\n') ++line;
    if (static_cast<unsigned char>(ch) >= 0x80) {
      problems->push_back(Problem{"", line, "only ASCII is accepted in the configuration (comments included)"});
      return;
    }
  }
  try {
    toml::table root = toml::parse(text, sourceName);
    Loader loader(config, problems);
    loader.apply(root);
    if (crossCheck) loader.crossCheck();
  } catch (const toml::parse_error& e) {
    problems->push_back(Problem{"", lineOf(e.source()), std::string(e.description())});
  } catch (const std::exception& e) {
    problems->push_back(Problem{"", 0, std::string("cannot load: ") + e.what()});
  }
  // toml++ tables iterate in key order; report in file order, line 0 last.
  std::stable_sort(problems->begin(), problems->end(), [](const Problem& a, const Problem& b) {
    auto rank = [](int line) { return line > 0 ? line : std::numeric_limits<int>::max(); };
    return rank(a.line) < rank(b.line);
  });
}

const Config& builtDefaults() {
  static const Config kDefaults = [] {
    Config c;
    std::vector<Problem> problems;
    loadInto(defaultsToml(), "<defaults>", &c, &problems, true);
    assert(problems.empty() && "the parameter table's defaults must load cleanly");
    return c;
  }();
  return kDefaults;
}

}  // namespace

Config defaults() { return builtDefaults(); }

LoadResult loadString(std::string_view toml, std::string_view sourceName) {
  LoadResult r;
  Config c = builtDefaults();
  loadInto(toml, sourceName, &c, &r.problems, true);
  if (r.problems.empty()) r.config = std::move(c);
  return r;
}

LoadResult loadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    LoadResult r;
    r.problems.push_back(Problem{"", 0, std::string("cannot read the file: ") + std::strerror(err ? err : ENOENT)});
    return r;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    LoadResult r;
    r.problems.push_back(Problem{"", 0, "cannot read the file"});
    return r;
  }
  return loadString(text.str(), path);
}

std::string formatProblem(const Problem& problem, std::string_view file) {
  std::string out(file);
  if (problem.line > 0) {
    out += ':';
    out += std::to_string(problem.line);
  }
  out += ": ";
  if (!problem.key.empty()) out += problem.key + ": ";
  return out + problem.message;
}

namespace {

// The sections and keys of both files: every key with its doc line, and its
// value (the production one where `production` and the row has one, saying
// which default it replaces).
std::string renderKeys(bool production) {
  std::string out;
  for (const Section& s : sections()) {
    out += "\n# " + std::string(s.doc) + "\n[" + std::string(s.name) + "]\n";
    for (const Param& p : params()) {
      if (p.section() != s.name) continue;
      out += "# " + std::string(p.doc) + (p.reloadable ? "" : " [restart]") + "\n";
      if (production && !p.productionToml.empty()) {
        out += "# (orchardd's built-in default, without --config: " + std::string(p.defaultToml) + ")\n";
        out += std::string(p.key()) + " = " + std::string(p.productionToml) + "\n";
      } else {
        out += std::string(p.key()) + " = " + std::string(p.defaultToml) + "\n";
      }
    }
  }
  return out;
}

}  // namespace

std::string defaultsToml() {
  return "# Orchard configuration (orchardd --config FILE).\n"
         "#\n"
         "# Every key is listed with its default; a file needs only the keys it\n"
         "# changes. Unknown keys and bad values are errors. A reload (SIGHUP)\n"
         "# validates the whole file and, if it is valid, applies every key to new\n"
         "# connections and requests (those in flight finish on the old values);\n"
         "# keys marked [restart] keep their running value until the next start.\n"
         "# Sizes take B, KiB, MiB, GiB, TiB; durations ms, s, m, h (a bare\n"
         "# integer is seconds).\n" +
         renderKeys(false);
}

std::string productionToml() {
  return "# Orchard configuration: /etc/orchard/orchard.toml, read by the orchard\n"
         "# service (orchardd --config /etc/orchard/orchard.toml).\n"
         "#\n"
         "# Installed by `make install` and the Debian package, written by\n"
         "# `orchardd --print-defaults --production`: every key with the value a\n"
         "# box runs on, which is its built-in default except where a note says\n"
         "# otherwise (the listeners and storage.dir). Edit it, check it with\n"
         "# `orchardd --check-config /etc/orchard/orchard.toml`, then\n"
         "# `systemctl reload orchard`. Unknown keys and bad values are errors. A\n"
         "# reload (SIGHUP) validates the whole file and, if it is valid, applies\n"
         "# every key to new connections and requests (those in flight finish on\n"
         "# the old values); keys marked [restart] need `systemctl restart orchard`.\n"
         "# Sizes take B, KiB, MiB, GiB, TiB; durations ms, s, m, h (a bare\n"
         "# integer is seconds).\n"
         "#\n"
         "# The service runs as a user systemd makes (DynamicUser=): it reads this\n"
         "# file as any user may, so keep tokens out of it. Leave admin.token empty\n"
         "# (the box writes its own to /var/lib/orchard/admin.token, mode 0600), or\n"
         "# point admin.token_file and [[admin.tokens]] token_file at files under\n"
         "# /var/lib/orchard.\n" +
         renderKeys(true);
}

}  // namespace orchard::config
