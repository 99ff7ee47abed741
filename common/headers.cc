// Header list helpers; see headers.h. Kept free of allocation where a
// caller only asks a question (findHeader, headerHasToken): both run on the
// hit path for every request.
#include "common/headers.h"

namespace orchard {

std::string_view trimOws(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<std::string_view> findHeader(const HeaderList& h, std::string_view name) noexcept {
  for (const auto& [k, v] : h)
    if (iequals(k, name)) return std::string_view(v);
  return std::nullopt;
}

std::vector<std::string> splitList(std::string_view v) {
  std::vector<std::string> out;
  forEachListItem(v, [&](std::string_view t) { out.emplace_back(t); });
  return out;
}

bool headerHasToken(const HeaderList& h, std::string_view name, std::string_view token) noexcept {
  bool found = false;
  for (const auto& [k, v] : h) {
    if (!iequals(k, name)) continue;
    forEachListItem(v, [&](std::string_view t) { found = found || iequals(t, token); });
  }
  return found;
}

std::string joinedHeader(const HeaderList& h, std::string_view name) {
  std::string out;
  for (const auto& [k, v] : h) {
    if (!iequals(k, name)) continue;
    if (!out.empty()) out += ", ";
    out += v;
  }
  return out;
}

}  // namespace orchard
