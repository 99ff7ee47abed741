// OsFeedStore (see os_feed_store.h): two records written in one batch.
#include "catalog/apple/os_feed_store.h"

#include <cassert>
#include <nlohmann/json.hpp>

namespace orchard::catalog::apple {
namespace {

constexpr std::string_view kRawKey = "raw";
constexpr std::string_view kMetaKey = "meta";

}  // namespace

std::vector<std::string> osFeedFamilies() { return {kOsFeedFamily}; }

OsFeedStore::OsFeedStore(std::shared_ptr<db::Database> database)
    : database_(std::move(database)), family_(database_->family(kOsFeedFamily)) {
  assert(family_.valid());
}

Result<void> OsFeedStore::save(const StoredOsFeed& feed) {
  const nlohmann::json meta{{"fetched_at", feed.fetchedAt}, {"source", feed.source}};
  db::Batch batch;
  batch.put(family_, kRawKey, feed.raw);
  batch.put(family_, kMetaKey, meta.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return database_->write(std::move(batch));
}

Result<std::optional<StoredOsFeed>> OsFeedStore::load() const {
  auto raw = database_->get(family_, kRawKey);
  if (!raw) return raw.error();
  auto meta = database_->get(family_, kMetaKey);
  if (!meta) return meta.error();
  if (!raw.value() && !meta.value()) return std::optional<StoredOsFeed>();
  if (!raw.value() || !meta.value()) return Error{Errc::Corrupt, 0, "os feed store: one of its two records is missing"};
  const nlohmann::json m = nlohmann::json::parse(*meta.value(), nullptr, false);
  if (!m.is_object() || !m.contains("fetched_at") || !m["fetched_at"].is_number_integer() || !m.contains("source") ||
      !m["source"].is_string())
    return Error{Errc::Corrupt, 0, "os feed store: its meta record does not parse"};
  StoredOsFeed out;
  out.raw = std::move(*raw.value());
  out.fetchedAt = m["fetched_at"].get<int64_t>();
  out.source = m["source"].get<std::string>();
  return std::optional<StoredOsFeed>(std::move(out));
}

}  // namespace orchard::catalog::apple
