// Table: rows of text printed in aligned columns under a header, for the
// listing commands (packages, show, audit, apple, prewarm). Columns marked right-aligned
// hold numbers. The last column is not padded.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace orchard::ctl {

class Table {
 public:
  struct Column {
    std::string title;
    bool right = false;
  };
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.empty(); }
  void print(std::FILE* out) const;
  // The same lines as print() writes, each ending in a newline (for tests).
  std::string text() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;  // each as long as columns_ (shorter rows are padded)
};

// Unix seconds as UTC RFC 3339 ("2024-05-01T12:00:00Z").
std::string rfc3339(long long unixSeconds);

}  // namespace orchard::ctl
