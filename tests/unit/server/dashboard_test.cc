// Which GET / is a browser asking for the dashboard (acceptsHtml: only a
// text/html media range, never */*, which curl and Apple's clients send),
// and that the embedded page and Chart.js are the files they were made from.
#include "server/admin/dashboard.h"

#include <gtest/gtest.h>

#include "server/admin/dashboard_assets.h"

namespace orchard::server {
namespace {

TEST(Dashboard, AcceptsHtml) {
  const struct {
    const char* accept;
    bool html;
  } rows[] = {
      {"text/html", true},
      {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true},  // Firefox, Chrome
      {"application/xhtml+xml, TEXT/HTML ;q=0.5", true},
      {"text/html;level=1", true},
      {"*/*", false},  // curl, Apple's content caching clients
      {"", false},
      {"application/json", false},
      {"text/htmlx", false},
      {"text/*", false},
      {"application/text/html", false},
  };
  for (const auto& r : rows) EXPECT_EQ(acceptsHtml(r.accept), r.html) << r.accept;
}

TEST(Dashboard, AssetsAreEmbedded) {
  const std::string_view page = dashboardHtml();
  EXPECT_EQ(page.substr(0, 15), "<!DOCTYPE html>");
  EXPECT_NE(page.find("src=\"/dashboard/chart.js\""), std::string_view::npos);
  EXPECT_EQ(page.find("src=\"http"), std::string_view::npos) << "the page must not load external assets";
  EXPECT_NE(dashboardChartJs().find("Chart.js v"), std::string_view::npos);
  EXPECT_GT(dashboardChartJs().size(), 100000u);
}

}  // namespace
}  // namespace orchard::server
