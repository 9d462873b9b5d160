// RocksDB-specific behaviour: durability across reopen, native checkpoints, layout.

#include "backend_factories.hpp"
#include "backend_test_util.hpp"

#include <asyncstate/backend/rocksdb.hpp>

#include <gtest/gtest.h>

#include <rocksdb/db.h>

#include <fstream>

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

// Opens a database directly with RocksDB, every column family it has, for tests that
// prepare or inspect what the backend finds.
class RawDb {
 public:
  explicit RawDb(const std::filesystem::path& path, std::vector<std::string> extraFamilies = {}) {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<std::string> families;
    if (!rocksdb::DB::ListColumnFamilies(options, path.string(), &families).ok()) {
      families = {rocksdb::kDefaultColumnFamilyName};
    }
    families.insert(families.end(), extraFamilies.begin(), extraFamilies.end());
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& family : families) descriptors.emplace_back(family, rocksdb::ColumnFamilyOptions());
    const rocksdb::Status status = rocksdb::DB::Open(options, path.string(), descriptors, &handles_, &db_);
    if (!status.ok()) throw std::runtime_error("RocksDB cannot open " + path.string() + ": " + status.ToString());
    for (std::size_t i = 0; i < families.size(); ++i) byName_[families[i]] = handles_[i];
  }
  ~RawDb() {
    for (rocksdb::ColumnFamilyHandle* handle : handles_) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    db_->Close().PermitUncheckedError();
    delete db_;
  }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void put(const std::string& family, const std::string& key, const std::string& value) {
    ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), byName_.at(family), key, value).ok());
  }
  bool has(const std::string& family, const std::string& key) {
    std::string value;
    return db_->Get(rocksdb::ReadOptions(), byName_.at(family), key, &value).ok();
  }
  std::vector<std::string> families() const {
    std::vector<std::string> names;
    for (const auto& [name, handle] : byName_) names.push_back(name);
    return names;
  }

 private:
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> byName_;
};

// Opening `path` fails with a BackendError whose message names the path and `problem`,
// and leaves the database closed: RocksDB itself can open it, and destroy it, right after.
void expectRejectedAndReleased(const std::filesystem::path& path, const std::string& problem) {
  try {
    RocksDbBackend db(RocksDbOptions{path});
    ADD_FAILURE() << "opening " << path << " should fail (" << problem << ")";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(problem), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a BackendError, got: " << e.what();
  }
  {
    RawDb reopened(path);
  }
  EXPECT_TRUE(rocksdb::DestroyDB(path.string(), rocksdb::Options()).ok()) << "the database is still locked";
}

void createState(const std::filesystem::path& path, const std::string& name, StateKind kind) {
  RocksDbBackend db(RocksDbOptions{path});
  db.registerState(name, kind);
}

TEST(RocksDbForeign, AColumnFamilyThatIsNoStateIsRejected) {
  TempDir dir;
  {
    RawDb foreign(dir.path() / "db", {"users"});
  }
  expectRejectedAndReleased(dir.path() / "db", "column family 'users'");
}

TEST(RocksDbForeign, ForeignRowsInTheDefaultColumnFamilyAreRejected) {
  TempDir dir;
  {
    RawDb foreign(dir.path() / "db");
    foreign.put(rocksdb::kDefaultColumnFamilyName, "user:1", "alice");
  }
  expectRejectedAndReleased(dir.path() / "db", "unexpected row 'user:1'");
}

TEST(RocksDbForeign, AnEmptyKindRowIsRejected) {
  TempDir dir;
  createState(dir.path() / "db", "a", StateKind::Value);
  {
    RawDb damaged(dir.path() / "db");
    damaged.put(rocksdb::kDefaultColumnFamilyName, "kind:a", "");
  }
  expectRejectedAndReleased(dir.path() / "db", "the kind of state 'a'");
}

TEST(RocksDbForeign, AnUnknownKindByteIsRejected) {
  TempDir dir;
  createState(dir.path() / "db", "a", StateKind::Value);
  {
    RawDb damaged(dir.path() / "db");
    damaged.put(rocksdb::kDefaultColumnFamilyName, "kind:a", "\x09");
  }
  expectRejectedAndReleased(dir.path() / "db", "the kind of state 'a' is '\\x09'");
}

TEST(RocksDbForeign, AStateWithDataButNoKindIsRejected) {
  TempDir dir;
  {
    RawDb damaged(dir.path() / "db", {"state:orders"});
    damaged.put("state:orders", "row", "value");
  }
  expectRejectedAndReleased(dir.path() / "db", "state 'orders' holds data but its kind is not recorded");
}

TEST(RocksDbForeign, ADamagedDatabaseIsRejected) {
  TempDir dir;
  createState(dir.path() / "db", "a", StateKind::Value);
  std::ofstream(dir.path() / "db" / "CURRENT", std::ios::trunc) << "MANIFEST-999999\n";
  EXPECT_THROW(RocksDbBackend(RocksDbOptions{dir.path() / "db"}), BackendError);
  std::ofstream(dir.path() / "db" / "CURRENT", std::ios::trunc) << "garbage";
  try {
    RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
    ADD_FAILURE() << "a database with a broken CURRENT file opened";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find((dir.path() / "db").string()), std::string::npos) << e.what();
  }
}

TEST(RocksDbForeign, ADirectoryWithOtherFilesIsNotTurnedIntoADatabase) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "notes");
  std::ofstream(dir.path() / "notes" / "todo.txt") << "keep me";
  try {
    RocksDbBackend db(RocksDbOptions{dir.path() / "notes"});
    ADD_FAILURE() << "a database was created among other files";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find("todo.txt"), std::string::npos) << e.what();
  }
  EXPECT_EQ(
      std::distance(std::filesystem::directory_iterator(dir.path() / "notes"), std::filesystem::directory_iterator()),
      1);
}

// What a crash between the two steps of a registration leaves, in either order of the
// steps: the database opens, the half-registered state is not registered, and its name
// can be registered with any kind.
TEST(RocksDbForeign, AHalfRegisteredStateIsRepairedOnOpen) {
  TempDir dir;
  createState(dir.path() / "db", "kept", StateKind::Map);
  {
    RawDb crashed(dir.path() / "db", {"state:columnOnly"});
    crashed.put(rocksdb::kDefaultColumnFamilyName, "kind:kindOnly", std::string(1, '\x02'));
  }
  {
    RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
    Savepoint found;
    db.snapshot(found);
    ASSERT_EQ(found.states().size(), 1u);
    EXPECT_EQ(found.states().begin()->first, "kept");
  }
  {
    RawDb repaired(dir.path() / "db");
    const std::vector<std::string> families = repaired.families();
    EXPECT_EQ(std::count(families.begin(), families.end(), "state:columnOnly"), 0);
    EXPECT_FALSE(repaired.has(rocksdb::kDefaultColumnFamilyName, "kind:kindOnly"));
  }
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  EXPECT_NO_THROW(db.registerState("columnOnly", StateKind::Value));
  EXPECT_NO_THROW(db.registerState("kindOnly", StateKind::Map));
  EXPECT_THROW(db.registerState("kept", StateKind::Value), std::invalid_argument);
}

}  // namespace
}  // namespace asyncstate::test
