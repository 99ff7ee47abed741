#include "catalog/apple/mirror_job.h"

#include <gtest/gtest.h>

namespace orchard::catalog::apple {
namespace {

TEST(MirrorJob, RoundTripsThroughItsRecord) {
  MirrorJob j;
  j.id = "001-INSTALL";
  j.kind = "mirror";
  j.state = JobState::Failed;
  j.reason = "x: chunk 1 does not match";
  j.createdAt = 1700000000;
  j.finishedAt = 1700000100;
  j.items.push_back({"https://swcdn.apple.com/a.pkg", 10, "https://swcdn.apple.com/a.chunklist", JobState::Done, 0, "",
                     std::string(64, 'a')});
  j.items.push_back({"https://swcdn.apple.com/b.pkg", 20, "", JobState::Failed, 2, "why", ""});
  auto back = mirrorJobFromJson(toJson(j));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, j);
}

TEST(MirrorJob, BadRecordsAreRefused) {
  for (const char* bad : {"", "[]", "{}", R"({"id":"a","state":"nope","items":[]})", R"({"id":"a","state":"done"})",
                          R"({"id":"a","state":"done","items":[{"url":1}]})",
                          R"({"id":"","state":"done","items":[]})",
                          R"({"id":"a","state":"done","items":[{"url":"u","size":"big","state":"done"}]})"}) {
    EXPECT_FALSE(mirrorJobFromJson(bad)) << bad;
  }
}

TEST(Prewarm, BodiesAreCheckedFieldByField) {
  struct Row {
    const char* body;
    bool ok;
    const char* why;  // part of the reason when refused
  };
  const Row rows[] = {
      {R"({"urls":["https://swcdn.apple.com/a.pkg"]})", true, ""},
      {R"({"products":["001-INSTALL"],"window":"22:00-06:00","interval":3600})", true, ""},
      {R"({})", false, "give urls"},
      {R"([])", false, "JSON object"},
      {R"({"urls":"https://x/a"})", false, "array"},
      {R"({"urls":["ftp://x/a"]})", false, "http(s)"},
      {R"({"urls":["https://x/a b"]})", false, "http(s)"},
      {R"({"urls":[""]})", false, "non-empty"},
      {R"({"products":["a/b"]})", false, "product id"},
      {R"({"urls":["https://x/a"],"window":"25:00-01:00"})", false, "window"},
      {R"({"urls":["https://x/a"],"interval":0})", false, "interval"},
      {R"({"urls":["https://x/a"],"colour":"red"})", false, "unknown field"},
  };
  for (const Row& r : rows) {
    std::string why;
    auto l = prewarmFromJson(r.body, &why);
    EXPECT_EQ(l.has_value(), r.ok) << r.body << " " << why;
    if (!r.ok) EXPECT_NE(why.find(r.why), std::string::npos) << r.body << ": " << why;
  }
  std::string why;
  auto l = prewarmFromJson(R"({"products":["001-INSTALL"],"window":"22:00-06:00","interval":3600})", &why);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->intervalMs, 3600 * 1000);
  l->name = "branch";
  auto back = prewarmFromJson(toJson(*l), &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(*back, *l);
}

}  // namespace
}  // namespace orchard::catalog::apple
