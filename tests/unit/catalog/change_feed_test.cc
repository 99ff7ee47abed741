// The change feed (catalog/change_feed.h): its JSON forms and checks, the
// branch's decisions as tables, and the apply logic end to end over two
// boxes' databases (a hub whose writes make the feed, a branch applying it:
// pending until the bytes come, then visible; deletes; resume after reopen).
#include "catalog/change_feed.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "catalog/fleet_store.h"
#include "unit/catalog/device_fixture.h"

namespace orchard::catalog {
namespace {

using nlohmann::json;

TEST(ChangeFeed, HexRoundTripsEveryByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  EXPECT_EQ(hexDecode(hexEncode(all)), all);
  EXPECT_EQ(hexEncode(std::string("a\0b", 3)), "610062");
  EXPECT_EQ(hexDecode("6A6b"), "jk");
  EXPECT_FALSE(hexDecode("abc"));
  EXPECT_FALSE(hexDecode("zz"));
}

TEST(ChangeFeed, ChangeJsonRoundTrips) {
  Change c{7, 1700000000, {{"catalog.versions", std::string("a\0" "1", 3), std::string("{}")},
                          {"catalog.pins", "a", std::nullopt}}};
  auto back = changeFromJson(json::parse(changeText(c)));
  ASSERT_TRUE(std::holds_alternative<Change>(back)) << std::get<std::string>(back);
  EXPECT_EQ(std::get<Change>(back), c);
}

TEST(ChangeFeed, ChangeFromJsonRefusesWhatIsNotAChange) {
  const struct {
    const char* text;
    const char* why;  // a part of the reason
  } cases[] = {
      {R"([])", "object"},
      {R"({"ops": []})", "seq and ops"},
      {R"({"seq": 0, "ops": []})", "seq"},
      {R"({"seq": -3, "ops": []})", "seq"},
      {R"({"seq": 1})", "seq and ops"},
      {R"({"seq": 1, "ops": {}})", "ops"},
      {R"({"seq": 1, "ops": [{"f": "catalog.devices", "k": "61", "v": "{}"}]})", "replicated"},
      {R"({"seq": 1, "ops": [{"f": "catalog.audit", "k": "61", "v": "{}"}]})", "replicated"},
      {R"({"seq": 1, "ops": [{"f": "catalog.pins", "k": "6", "v": "{}"}]})", "hex"},
      {R"({"seq": 1, "ops": [{"f": "catalog.pins", "k": "", "v": "{}"}]})", "hex"},
      {R"({"seq": 1, "ops": [{"f": "catalog.pins", "k": "61"}]})", "either v or d"},
      {R"({"seq": 1, "ops": [{"f": "catalog.pins", "k": "61", "v": "{}", "d": true}]})", "either v or d"},
      {R"({"seq": 1, "ops": [{"f": "catalog.pins", "k": "61", "d": false}]})", "d"},
      {R"({"seq": 1, "ops": [{"f": "catalog.pins", "k": "61", "v": 3}]})", "v"},
      {R"({"seq": 1, "ops": [{"k": "61", "v": "{}"}]})", "f and k"},
      {R"({"seq": 1, "ops": [{"f": "catalog.pins", "k": "61", "v": "{}", "x": 1}]})", "unknown"},
      {R"({"seq": 1, "ops": [], "extra": 1})", "unknown"},
      {R"({"seq": 1, "time": "now", "ops": []})", "time"},
  };
  for (const auto& c : cases) {
    auto r = changeFromJson(json::parse(c.text));
    ASSERT_TRUE(std::holds_alternative<std::string>(r)) << c.text;
    EXPECT_NE(std::get<std::string>(r).find(c.why), std::string::npos) << c.text << ": " << std::get<std::string>(r);
  }
}

TEST(ChangeFeed, PageChecks) {
  const std::string one = R"({"seq": 4, "ops": []})", two = R"({"seq": 5, "ops": []})";
  auto page = [](const std::string& changes, uint64_t last) {
    return R"({"changes": [)" + changes + R"(], "last": )" + std::to_string(last) + "}";
  };
  auto ok = parseChangePage(page(one + "," + two, 9), 3);
  ASSERT_TRUE(std::holds_alternative<ChangePage>(ok));
  EXPECT_EQ(std::get<ChangePage>(ok).changes.size(), 2u);
  EXPECT_EQ(std::get<ChangePage>(ok).last, 9u);
  EXPECT_FALSE(std::get<ChangePage>(ok).more);
  const struct {
    std::string body;
    uint64_t since;
  } bad[] = {
      {page(two + "," + one, 9), 3},  // out of order
      {page(one + "," + one, 9), 3},  // repeated
      {page(one, 9), 4},              // not past since
      {page(two, 4), 3},              // past the feed's last
      {R"({"changes": []})", 0},      // no last
      {R"({"last": 3})", 0},          // no changes
      {R"({"changes": [], "last": 3, "more": 1})", 0},
      {"not json", 0},
  };
  for (const auto& b : bad) EXPECT_TRUE(std::holds_alternative<std::string>(parseChangePage(b.body, b.since))) << b.body;
  std::string many;
  for (size_t i = 1; i <= kMaxChangesPerPage + 1; ++i)
    many += (i > 1 ? "," : "") + std::string(R"({"seq": )") + std::to_string(i) + R"(, "ops": []})";
  EXPECT_TRUE(std::holds_alternative<std::string>(parseChangePage(page(many, 5000), 0)));
}

TEST(ChangeFeed, DecideVersionTable) {
  const std::string a(64, 'a'), b(64, 'b');
  const struct {
    VersionHeld held;
    std::optional<std::string> sha;
    VersionStep step;
  } cases[] = {
      {{}, a, VersionStep::Pend},
      {{std::nullopt, b}, a, VersionStep::Pend},        // a pending record replaced by a newer one
      {{a, std::nullopt}, a, VersionStep::UpdateVisible},  // metadata edit of a visible version
      {{a, std::nullopt}, b, VersionStep::PendAndHide},    // other bytes: never serve the old ones for it
      {{}, std::nullopt, VersionStep::Remove},
      {{a, std::nullopt}, std::nullopt, VersionStep::Remove},
      {{std::nullopt, a}, std::nullopt, VersionStep::Remove},
  };
  for (const auto& c : cases)
    EXPECT_EQ(decideVersion(c.held, c.sha), c.step) << versionStepName(c.step);
}

TEST(ChangeFeed, ResumeFromTable) {
  const FollowState at5{"http://hub:80", 5};
  EXPECT_EQ(resumeFrom(std::nullopt, "http://hub:80", std::nullopt), 0u);
  EXPECT_EQ(resumeFrom(at5, "http://hub:80", std::nullopt), 5u);
  EXPECT_EQ(resumeFrom(at5, "http://hub:80", 9), 5u);
  EXPECT_EQ(resumeFrom(at5, "http://hub:80", 5), 5u);
  EXPECT_EQ(resumeFrom(at5, "http://hub:80", 4), 0u);       // the hub's feed went back
  EXPECT_EQ(resumeFrom(at5, "http://other:80", 9), 0u);     // another hub
  EXPECT_EQ(followStateFromText(followStateText(at5)), at5);
  EXPECT_FALSE(followStateFromText("{\"hub\": 1}"));
}

TEST(ChangeFeed, BaselineIsCutIntoBoundedChanges) {
  std::vector<ChangeOp> ops;
  for (int i = 0; i < 50; ++i) ops.push_back({"catalog.versions", "k" + std::to_string(i), std::string(100 * 1024, 'x')});
  auto changes = baselineChanges(ops);
  ASSERT_GT(changes.size(), 1u);
  size_t total = 0;
  for (const auto& c : changes) {
    size_t bytes = 0;
    for (const auto& op : c.ops) bytes += op.value->size();
    EXPECT_LE(bytes, kBaselineChangeBytes);
    total += c.ops.size();
  }
  EXPECT_EQ(total, ops.size());
  EXPECT_TRUE(baselineChanges({}).empty());
}

TEST(ChangeFeed, WantedHereFollowsTheRingReached) {
  Device inLab, inStaff;
  inLab.serial = "C1";
  inLab.groups = {"lab"};
  inStaff.serial = "C2";
  inStaff.groups = {"staff"};
  const std::vector<Ring> rings = {{"lab", {"lab"}, std::nullopt, std::nullopt},
                                   {"staff", {"staff"}, std::nullopt, std::nullopt}};
  const int64_t day = 86400, published = 1000;
  // on_publish: in the first ring at once; a staff-only box waits for the promotion.
  EXPECT_TRUE(wantedHere("p", published, rings, 2 * day, true, {}, {inLab}, published + 10));
  EXPECT_FALSE(wantedHere("p", published, rings, 2 * day, true, {}, {inStaff}, published + 10));
  EXPECT_TRUE(wantedHere("p", published, rings, 2 * day, true, {}, {inStaff}, published + 3 * day));
  // manual and not released: nobody; released: the first ring.
  EXPECT_FALSE(wantedHere("p", published, rings, 2 * day, false, {}, {inLab}, published + 10));
  EXPECT_TRUE(wantedHere("p", published, rings, 2 * day, false, {{published + 5, RolloutEventKind::Start, ""}},
                         {inLab}, published + 10));
  // rolled back: nobody; no devices: nobody.
  EXPECT_FALSE(wantedHere("p", published, rings, 2 * day, true, {{published + 5, RolloutEventKind::Rollback, ""}},
                          {inLab}, published + 10));
  EXPECT_FALSE(wantedHere("p", published, rings, 2 * day, true, {}, {}, published + 10));
}

// ---- two boxes ----

struct Box {
  std::string root;
  std::shared_ptr<db::Database> db;
  std::unique_ptr<Catalog> cat;
  std::unique_ptr<FleetStore> fleet;

  void open() {
    std::vector<std::string> fams = families();
    for (const auto& f : fleetFamilies()) fams.push_back(f);
    auto d = db::Database::open(root + "/index", fams);
    ASSERT_TRUE(d.ok()) << d.error().message();
    db = std::shared_ptr<db::Database>(std::move(d).value());
    auto c = Catalog::open({root + "/packages", 1 << 20}, db);
    ASSERT_TRUE(c.ok()) << c.error().message();
    cat = std::move(c).value();
    auto f = FleetStore::open(db, cat.get());
    ASSERT_TRUE(f.ok()) << f.error().message();
    fleet = std::move(f).value();
  }
  void close() {
    fleet.reset();
    cat.reset();
    db.reset();
  }
};

class TwoBoxes : public ::testing::Test {
 protected:
  void SetUp() override {
    for (Box* b : {&hub_, &branch_}) {
      char tmpl[] = "/tmp/orchard-feed-XXXXXX";
      ASSERT_NE(::mkdtemp(tmpl), nullptr);
      b->root = tmpl;
      b->open();
    }
  }
  void TearDown() override {
    for (Box* b : {&hub_, &branch_}) {
      b->close();
      std::filesystem::remove_all(b->root);
    }
  }
  void publish(const std::string& name, const std::string& version, const std::string& body) {
    auto b = hub_.cat->begin(name, version, "f.dmg", body.size(), {});
    auto* begun = std::get_if<Catalog::Begun>(&b);
    ASSERT_TRUE(begun && begun->upload);
    ASSERT_FALSE(begun->upload->write(body.data(), body.size()));
    ASSERT_FALSE(begun->upload->finish());
    auto c = hub_.cat->commit(std::move(begun->upload), PackageVersion{}, actor_, 100);
    ASSERT_TRUE(std::holds_alternative<Catalog::Committed>(c));
  }
  // Every hub change past the branch's position, applied in order.
  void sync() {
    const uint64_t since = branch_.cat->followState() ? branch_.cat->followState()->applied : 0;
    bool more = false;
    auto texts = hub_.cat->changes(since, 1000, kPageBytes, &more);
    ASSERT_TRUE(texts.ok());
    for (const auto& t : *texts) {
      auto c = changeFromJson(json::parse(t));
      ASSERT_TRUE(std::holds_alternative<Change>(c)) << std::get<std::string>(c);
      ASSERT_FALSE(branch_.fleet->applyReplicated(std::get<Change>(c), kHub, 200));
    }
  }
  // The branch takes the bytes from the hub's blob (as importFromStore
  // would from its cache object).
  std::variant<Catalog::Imported, Problem> fetchBytes(const PackageVersion& rec, const std::string& path = "") {
    Catalog::ImportSource src;
    src.path = path.empty() ? hub_.cat->blobPath(rec.sha256) : path;
    src.size = rec.size;
    src.expectSha = rec.sha256;
    return branch_.cat->importReplica(rec, src, 300);
  }

  static constexpr const char* kHub = "http://hub.test:80";
  const Actor actor_{"127.0.0.1", "admin"};
  Box hub_, branch_;
};

TEST_F(TwoBoxes, EveryReplicatedWriteIsOneChangeInTheSameBatch) {
  EXPECT_EQ(hub_.cat->lastChange(), 0u);
  publish("tool", "1.0", "bytes-1");
  ASSERT_FALSE(hub_.fleet->putPin("tool", Pin{"1.0", {"lab"}, {}}, actor_, 101));
  Device d = fixture::sampleDevice();
  bool created = false;
  ASSERT_FALSE(hub_.fleet->putDevice(d, actor_, 102, &created));  // per box: no change
  EXPECT_EQ(hub_.cat->lastChange(), 2u);
  bool more = true;
  auto texts = hub_.cat->changes(0, 10, kPageBytes, &more);
  ASSERT_TRUE(texts.ok());
  ASSERT_EQ(texts->size(), 2u);
  EXPECT_FALSE(more);
  auto first = std::get<Change>(changeFromJson(json::parse((*texts)[0])));
  ASSERT_EQ(first.ops.size(), 1u);
  EXPECT_EQ(first.ops[0].family, kVersionsFamily);
  EXPECT_EQ(first.ops[0].key, std::string("tool\0" "1.0", 8));
  auto second = std::get<Change>(changeFromJson(json::parse((*texts)[1])));
  EXPECT_EQ(second.ops[0].family, kPinsFamily);
  // Paging: one at a time, with `more`.
  texts = hub_.cat->changes(0, 1, kPageBytes, &more);
  EXPECT_EQ(texts->size(), 1u);
  EXPECT_TRUE(more);
}

TEST_F(TwoBoxes, AVersionIsPendingUntilItsBytesAreHere) {
  publish("tool", "1.0", "bytes-1");
  ASSERT_FALSE(hub_.fleet->putPin("tool", Pin{"1.0", {"lab"}, {}}, actor_, 101));
  sync();
  EXPECT_EQ(branch_.cat->followState()->applied, 2u);
  EXPECT_EQ(branch_.cat->find("tool", "1.0"), nullptr);
  EXPECT_TRUE(branch_.cat->names().empty());
  ASSERT_EQ(branch_.cat->pending().size(), 1u);
  EXPECT_EQ(branch_.fleet->pin("tool")->version, "1.0");  // the fleet's records apply at once

  // Wrong bytes are refused and change nothing.
  const std::string wrong = branch_.root + "/wrong";
  {
    FILE* f = ::fopen(wrong.c_str(), "w");
    ::fputs("bytes-2", f);
    ::fclose(f);
  }
  auto rec = *branch_.cat->pending()[0].record;
  auto bad = fetchBytes(rec, wrong);
  ASSERT_TRUE(std::holds_alternative<Problem>(bad));
  EXPECT_EQ(std::get<Problem>(bad).code, Errc::Invalid);
  EXPECT_EQ(branch_.cat->find("tool", "1.0"), nullptr);

  auto good = fetchBytes(rec);
  ASSERT_TRUE(std::holds_alternative<Catalog::Imported>(good)) << std::get<Problem>(good).detail;
  auto v = branch_.cat->find("tool", "1.0");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->sha256, hub_.cat->find("tool", "1.0")->sha256);
  EXPECT_EQ(v->published, 100);  // the hub's record, not a new publish
  EXPECT_TRUE(branch_.cat->pending().empty());
  // The visible version enters the branch's own feed (a branch of the branch).
  EXPECT_GE(branch_.cat->lastChange(), 2u);
}

TEST_F(TwoBoxes, DeletesRemovePendingAndVisibleVersions) {
  publish("a", "1", "aaa");
  publish("b", "1", "bbb");
  sync();
  auto recs = branch_.cat->pending();
  ASSERT_EQ(recs.size(), 2u);
  ASSERT_TRUE(std::holds_alternative<Catalog::Imported>(fetchBytes(*recs[0].record)));  // a is visible
  ASSERT_FALSE(hub_.cat->remove("a", "1", actor_, 110));
  ASSERT_FALSE(hub_.cat->remove("b", "1", actor_, 111));
  sync();
  EXPECT_EQ(branch_.cat->find("a", "1"), nullptr);
  EXPECT_TRUE(branch_.cat->pending().empty());
  EXPECT_EQ(::access(branch_.cat->blobPath(recs[0].record->sha256).c_str(), F_OK), -1);  // its blob gone
  // A late fetch of the deleted version is refused.
  auto late = fetchBytes(*recs[1].record);
  ASSERT_TRUE(std::holds_alternative<Problem>(late));
  EXPECT_EQ(std::get<Problem>(late).code, Errc::NotFound);
}

TEST_F(TwoBoxes, MetadataEditOfAVisibleVersionAppliesAtOnce) {
  publish("tool", "1.0", "bytes-1");
  sync();
  ASSERT_TRUE(std::holds_alternative<Catalog::Imported>(fetchBytes(*branch_.cat->pending()[0].record)));
  auto edited = hub_.cat->updateMetadata(
      "tool", "1.0", [](PackageMetadata* m) -> std::optional<std::string> { m->title = "Tool"; return std::nullopt; },
      actor_, 120);
  ASSERT_FALSE(std::holds_alternative<Problem>(edited));
  sync();
  ASSERT_NE(branch_.cat->find("tool", "1.0"), nullptr);
  EXPECT_EQ(branch_.cat->find("tool", "1.0")->metadata.title, "Tool");
  EXPECT_TRUE(branch_.cat->pending().empty());
}

TEST_F(TwoBoxes, ReopenResumesWithPendingAndPositionKept) {
  publish("tool", "1.0", "bytes-1");
  ASSERT_FALSE(hub_.fleet->putRings(RingPlan{{{"lab", {"lab"}, std::nullopt, std::nullopt}}, 86400}, actor_, 101));
  sync();
  branch_.close();
  branch_.open();
  EXPECT_EQ(branch_.cat->followState()->applied, 2u);
  EXPECT_EQ(branch_.cat->followState()->hub, kHub);
  ASSERT_EQ(branch_.cat->pending().size(), 1u);
  EXPECT_EQ(branch_.cat->pending()[0].seq, 1u);
  EXPECT_EQ(branch_.fleet->rings().rings.size(), 1u);
  // Nothing new: a sync applies nothing (no audit entry, same position).
  auto before = branch_.cat->audit(0, 1000);
  sync();
  EXPECT_EQ(branch_.cat->audit(0, 1000)->size(), before->size());
  // The branch's own feed never took the pending version: only what is visible.
  bool more = false;
  auto own = branch_.cat->changes(0, 1000, kPageBytes, &more);
  ASSERT_TRUE(own.ok());
  for (const auto& t : *own) {
    const Change c = std::get<Change>(changeFromJson(json::parse(t)));
    for (const auto& op : c.ops) EXPECT_NE(op.family, kVersionsFamily);
  }
}

TEST_F(TwoBoxes, BaselineAtOpenCarriesWhatWasThereBeforeTheFeed) {
  publish("tool", "1.0", "bytes-1");
  // A box from before the feed: its changes family emptied.
  ASSERT_TRUE(hub_.db->deleteRange(hub_.db->family(kChangesFamily), std::string(8, '\0'), std::string(8, '\xff')).ok());
  hub_.close();
  hub_.open();
  EXPECT_EQ(hub_.cat->lastChange(), 1u);
  sync();
  ASSERT_EQ(branch_.cat->pending().size(), 1u);
  EXPECT_EQ(branch_.cat->pending()[0].record->name, "tool");
}

}  // namespace
}  // namespace orchard::catalog
