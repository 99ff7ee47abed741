// RouteTable matching; see route_table.h. The hard part is precedence: a
// row's "shape" is the sequence literal/parameter of its segments, and of
// the rows that match, the one with a literal at the first position where
// shapes differ wins (a literal beats a parameter, left to right). Two rows
// that would match the same paths with the same method (same literals,
// parameters in the same places, whatever their names) are refused by
// add(), so no request is ever ambiguous.
#include "server/http/route_table.h"

#include <algorithm>
#include <stdexcept>

namespace orchard::server {
namespace {

std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path.front() != '/') return out;
  size_t i = 1;
  while (true) {
    size_t j = path.find('/', i);
    out.push_back(path.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  return out;
}

bool isParam(std::string_view seg) {
  return seg.size() >= 3 && seg.front() == '{' && seg.back() == '}' &&
         seg.substr(1, seg.size() - 2).find_first_of("{}") == std::string_view::npos;
}

// Two rows' methods can answer the same request.
bool methodsOverlap(std::string_view a, std::string_view b) {
  return a == b || a == "*" || b == "*" || (a == "GET" && b == "HEAD") || (a == "HEAD" && b == "GET");
}

bool methodMatches(std::string_view rowMethod, std::string_view method) {
  return rowMethod == "*" || rowMethod == method || (rowMethod == "GET" && method == "HEAD");
}

// -1: a is preferred, 1: b is preferred, 0: same shape.
int comparePrecedence(const RouteTable::Row& a, const RouteTable::Row& b) {
  for (size_t i = 0; i < a.segments.size() && i < b.segments.size(); ++i) {
    bool la = !isParam(a.segments[i]), lb = !isParam(b.segments[i]);
    if (la != lb) return la ? -1 : 1;
  }
  return 0;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool percentDecode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = hexValue(in[i + 1]), lo = hexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

void RouteTable::add(std::string method, std::string pattern, GuardedFactory guarded, uint8_t listeners) {
  add(std::move(method), std::move(pattern), std::move(guarded.make), listeners, RouteAccess::Token);
  rows_.back()->scope = guarded.scope;
}

std::vector<const RouteTable::Row*> RouteTable::rows() const {
  std::vector<const Row*> out;
  out.reserve(rows_.size());
  for (const auto& r : rows_) out.push_back(r.get());
  return out;
}

void RouteTable::add(std::string method, std::string pattern, HandlerFactory make, uint8_t listeners,
                     RouteAccess access) {
  auto row = std::make_unique<Row>();
  if (pattern.empty() || pattern.front() != '/') throw std::invalid_argument("route pattern must start with /: " + pattern);
  for (std::string_view seg : splitPath(pattern)) {
    if ((seg.find('{') != std::string_view::npos || seg.find('}') != std::string_view::npos) && !isParam(seg))
      throw std::invalid_argument("malformed route parameter in " + pattern);
    row->segments.emplace_back(seg);
  }
  for (const auto& r : rows_) {
    if (!methodsOverlap(r->method, method) || !(r->listeners & listeners) ||
        r->segments.size() != row->segments.size())
      continue;
    bool same = true;
    for (size_t i = 0; i < r->segments.size() && same; ++i) {
      const bool pa = isParam(r->segments[i]), pb = isParam(row->segments[i]);
      same = pa == pb && (pa || r->segments[i] == row->segments[i]);
    }
    if (same) throw std::invalid_argument("route conflicts with " + r->pattern + ": " + method + " " + pattern);
  }
  row->method = std::move(method);
  row->pattern = std::move(pattern);
  row->listeners = listeners;
  row->make = std::move(make);
  row->access = access;
  rows_.push_back(std::move(row));
}

RouteTable::Match RouteTable::match(std::string_view method, std::string_view path, uint8_t listener) const {
  Match m;
  auto segs = splitPath(path);
  if (segs.empty()) return m;
  std::vector<std::string> decoded(segs.size());
  for (size_t i = 0; i < segs.size(); ++i)
    if (!percentDecode(segs[i], &decoded[i])) return m;
  const Row* best = nullptr;
  std::vector<std::string_view> allowed;
  for (const auto& row : rows_) {
    if (!(row->listeners & listener) || row->segments.size() != segs.size()) continue;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      const std::string& p = row->segments[i];
      ok = isParam(p) ? !decoded[i].empty() : p == decoded[i];  // %-escapes are the same URI (RFC 3986 §6.2.2.2)
    }
    if (!ok) continue;
    if (!methodMatches(row->method, method)) {
      if (allowed.empty()) m.access = row->access;
      allowed.push_back(row->method);
      continue;
    }
    if (!best || comparePrecedence(*row, *best) < 0) best = row.get();
  }
  if (!best) {
    std::vector<std::string_view> listed;
    auto list = [&](std::string_view a) {
      if (std::find(listed.begin(), listed.end(), a) != listed.end()) return;
      listed.push_back(a);
      if (!m.allow.empty()) m.allow += ", ";
      m.allow += a;
    };
    for (auto a : allowed) {
      list(a);
      if (a == "GET") list("HEAD");
    }
    return m;
  }
  m.row = best;
  m.access = best->access;
  for (size_t i = 0; i < segs.size(); ++i)
    if (isParam(best->segments[i]))
      m.params.items.emplace_back(best->segments[i].substr(1, best->segments[i].size() - 2), std::move(decoded[i]));
  return m;
}

}  // namespace orchard::server
