// RocksDB-specific behaviour: durability across reopen, native checkpoints, layout.

#include "backend_factories.hpp"
#include "backend_test_util.hpp"

#include <asyncstate/backend/rocksdb.hpp>

#include <gtest/gtest.h>

namespace asyncstate::test {
namespace {

TEST(RocksDb, DataSurvivesReopenWithSyncWrites) {
  TempDir dir;
  const RocksDbOptions options{dir.path() / "db", true};
  std::string before;
  {
    RocksDbBackend db(options);
    EXPECT_NE(db.describeConfiguration().find("sync=on"), std::string::npos);
    const std::uint32_t list = db.registerState("events", StateKind::List);
    const std::uint32_t map = db.registerState("carts", StateKind::Map);
    run(db, {append(list, "u", "a"), append(list, "u", "b"), putEntry(map, "u", "sku1", "2")});
    before = savepointBytes(db);
  }
  RocksDbBackend reopened(options);
  EXPECT_EQ(savepointBytes(reopened), before) << "states and kinds are found again without registering";
  const std::uint32_t list = reopened.registerState("events", StateKind::List);
  EXPECT_EQ(shown(run(reopened, {get(list, "u")})[0]), "ab");
  EXPECT_THROW(reopened.registerState("carts", StateKind::Value), std::invalid_argument);
}

TEST(RocksDb, CheckpointRestoresEarlierContentsAndKeepsIds) {
  TempDir dir;
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  const std::uint32_t a = db.registerState("a", StateKind::Value);
  run(db, {put(a, "k", "at checkpoint")});
  db.createCheckpoint(dir.path() / "cp1");
  const std::uint32_t later = db.registerState("later", StateKind::Value);
  run(db, {put(a, "k", "after"), put(later, "k", "x")});

  db.restoreCheckpoint(dir.path() / "cp1");
  EXPECT_EQ(db.registerState("a", StateKind::Value), a);
  EXPECT_EQ(db.registerState("later", StateKind::Value), later);
  auto r = run(db, {get(a, "k"), get(later, "k")});
  EXPECT_EQ(shown(r[0]), "at checkpoint");
  EXPECT_EQ(shown(r[1]), "<absent>");
  run(db, {put(a, "k", "writable again")});
  EXPECT_EQ(shown(run(db, {get(a, "k")})[0]), "writable again");
}

TEST(RocksDb, RestoringAMissingOrIncompatibleCheckpointChangesNothing) {
  TempDir dir;
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  const std::uint32_t a = db.registerState("a", StateKind::Value);
  run(db, {put(a, "k", "v")});
  const std::string before = savepointBytes(db);
  EXPECT_THROW(db.restoreCheckpoint(dir.path() / "nope"), BackendError);
  {
    RocksDbBackend other(RocksDbOptions{dir.path() / "other"});
    other.registerState("a", StateKind::Map);
    other.createCheckpoint(dir.path() / "cp-map");
  }
  EXPECT_THROW(db.restoreCheckpoint(dir.path() / "cp-map"), std::invalid_argument);
  EXPECT_EQ(savepointBytes(db), before);
  EXPECT_EQ(shown(run(db, {get(a, "k")})[0]), "v");
}

TEST(RocksDb, KeysThatArePrefixesOfEachOtherNeverMix) {
  TempDir dir;
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  const std::uint32_t map = db.registerState("m", StateKind::Map);
  // Without the length prefix, key "a" + user key "bc" and key "ab" + user key "c" collide.
  run(db, {putEntry(map, "a", "bc", "1"), putEntry(map, "ab", "c", "2"), clear(map, "a")});
  auto r = run(db, {get(map, "ab", "c"), scan(map, "a", 10)});
  EXPECT_EQ(shown(r[0]), "2");
  EXPECT_TRUE(r[1].result.entries.empty());
}

}  // namespace
}  // namespace asyncstate::test
