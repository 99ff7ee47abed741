// Table printing: see table.h.
#include "server/ctl/table.h"

#include <algorithm>
#include <ctime>

namespace orchard::ctl {

void Table::print(std::FILE* out) const { std::fputs(text().c_str(), out); }

std::string Table::text() const {
  std::string out;
  std::vector<size_t> width(columns_.size());
  for (size_t i = 0; i < columns_.size(); ++i) width[i] = columns_[i].title.size();
  for (const auto& row : rows_)
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());

  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < columns_.size(); ++i) {
      const std::string cell = i < cells.size() ? cells[i] : "";
      bool last = i + 1 == columns_.size();
      std::string pad(width[i] - cell.size(), ' ');
      if (columns_[i].right) s += pad + cell;
      else s += last ? cell : cell + pad;
      if (!last) s += "  ";
    }
    out += s;
    out += '\n';
  };
  std::vector<std::string> titles;
  for (const auto& c : columns_) titles.push_back(c.title);
  line(titles);
  for (const auto& row : rows_) line(row);
  return out;
}

std::string rfc3339(long long unixSeconds) {
  std::time_t t = static_cast<std::time_t>(unixSeconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace orchard::ctl
