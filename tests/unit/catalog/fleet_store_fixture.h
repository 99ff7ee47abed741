// A Catalog and a FleetStore over one database in a temp dir, for the tests
// that need the release-control records in memory without HTTP (fleet
// store, release gauges). publish() goes through begin/write/finish/commit
// with a tiny body; the dir is removed after each test.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/fleet_store.h"

namespace orchard::catalog::fixture {

class FleetStoreFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/orchard-fleet-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    std::vector<std::string> fams = families();
    for (const auto& f : fleetFamilies()) fams.push_back(f);
    auto d = db::Database::open(root_ + "/index", fams);
    ASSERT_TRUE(d.ok()) << d.error().message();
    db_ = std::shared_ptr<db::Database>(std::move(d).value());
    auto c = Catalog::open({root_ + "/packages", 1 << 20}, db_);
    ASSERT_TRUE(c.ok()) << c.error().message();
    cat_ = std::move(c).value();
    auto f = FleetStore::open(db_, cat_.get());
    ASSERT_TRUE(f.ok()) << f.error().message();
    fleet_ = std::move(f).value();
  }
  void TearDown() override {
    fleet_.reset();
    cat_.reset();
    db_.reset();
    std::filesystem::remove_all(root_);
  }
  void publish(const std::string& name, const std::string& version, int64_t at) {
    const std::string body = name + version;
    auto b = cat_->begin(name, version, "f.dmg", body.size(), {});
    auto* begun = std::get_if<Catalog::Begun>(&b);
    ASSERT_TRUE(begun && begun->upload);
    ASSERT_FALSE(begun->upload->write(body.data(), body.size()));
    ASSERT_FALSE(begun->upload->finish());
    auto c = cat_->commit(std::move(begun->upload), PackageVersion{}, actor_, at);
    ASSERT_TRUE(std::holds_alternative<Catalog::Committed>(c));
  }

  const Actor actor_{"127.0.0.1", "admin"};
  std::string root_;
  std::shared_ptr<db::Database> db_;
  std::unique_ptr<Catalog> cat_;
  std::unique_ptr<FleetStore> fleet_;
};

}  // namespace orchard::catalog::fixture
