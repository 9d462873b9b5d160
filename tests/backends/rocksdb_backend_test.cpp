// RocksDB-specific behaviour: durability across reopen, native checkpoints, layout.

#include "backend_factories.hpp"
#include "backend_test_util.hpp"

#include <asyncstate/backend/rocksdb.hpp>

#include <gtest/gtest.h>

#include <rocksdb/db.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

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

// Writes `count` batches of one entry each (key<i>) and closes the database, whose
// write-ahead log then holds them all; returns that log file.
std::filesystem::path writeIntoTheWal(const std::filesystem::path& path, int count) {
  {
    RocksDbBackend db(RocksDbOptions{path});
    const std::uint32_t s = db.registerState("s", StateKind::Value);
    for (int i = 0; i < count; ++i) run(db, {put(s, "key" + std::to_string(i), std::string(100, 'v'))});
  }
  std::filesystem::path wal;
  for (const std::filesystem::directory_entry& entry : std::filesystem::directory_iterator(path)) {
    if (entry.path().extension() == ".log" && (wal.empty() || entry.file_size() > std::filesystem::file_size(wal))) {
      wal = entry.path();
    }
  }
  EXPECT_GT(std::filesystem::file_size(wal), std::uintmax_t{100} * count) << "the entries are not in the WAL";
  return wal;
}

std::string readBytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void writeBytes(const std::filesystem::path& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
}

// RocksDB's default recovery stops replaying the WAL at a damaged record without an
// error, which silently dropped every later write. The open fails instead, naming the
// WAL, and leaves it as it is: repaired, it still holds every write.
TEST(RocksDb, ACorruptWriteAheadLogFailsTheOpenAndIsKept) {
  TempDir dir;
  const std::filesystem::path path = dir.path() / "db";
  const std::filesystem::path wal = writeIntoTheWal(path, 200);
  const std::string intact = readBytes(wal);
  std::string damaged = intact;
  damaged[damaged.size() / 2] ^= 0x55;
  writeBytes(wal, damaged);
  try {
    RocksDbBackend db(RocksDbOptions{path});
    ADD_FAILURE() << "a database with a corrupt WAL opened";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("write-ahead log"), std::string::npos) << e.what();
  }
  ASSERT_TRUE(readBytes(wal) == damaged) << "the failed open changed the WAL";
  writeBytes(wal, intact);
  RocksDbBackend db(RocksDbOptions{path});
  const std::uint32_t s = db.registerState("s", StateKind::Value);
  auto r = run(db, {get(s, "key0"), get(s, "key199")});
  EXPECT_EQ(shown(r[0]), std::string(100, 'v'));
  EXPECT_EQ(shown(r[1]), std::string(100, 'v'));
}

// A WAL whose last record a crash cut short opens, without that record only.
TEST(RocksDb, ATornWriteAheadLogTailLosesOnlyTheTornWrite) {
  TempDir dir;
  const std::filesystem::path path = dir.path() / "db";
  const std::filesystem::path wal = writeIntoTheWal(path, 200);
  std::filesystem::resize_file(wal, std::filesystem::file_size(wal) - 10);
  RocksDbBackend db(RocksDbOptions{path});
  const std::uint32_t s = db.registerState("s", StateKind::Value);
  auto r = run(db, {get(s, "key0"), get(s, "key198"), get(s, "key199")});
  EXPECT_EQ(shown(r[0]), std::string(100, 'v'));
  EXPECT_EQ(shown(r[1]), std::string(100, 'v'));
  EXPECT_EQ(shown(r[2]), "<absent>");
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

// A checkpoint that is empty or lost files is refused, naming it, and the live database
// keeps its contents: opened as a database, the copy without CURRENT would become an
// empty one and replace them.
TEST(RocksDb, RestoringAnEmptyOrIncompleteCheckpointChangesNothing) {
  namespace fs = std::filesystem;
  TempDir dir;
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  const std::uint32_t a = db.registerState("a", StateKind::Value);
  run(db, {put(a, "k", "v")});
  const std::string before = savepointBytes(db);
  const auto withoutFiles = [&](const std::string& name, auto lost) {
    const fs::path cp = dir.path() / name;
    db.createCheckpoint(cp);
    int removed = 0;
    for (const fs::directory_entry& entry : fs::directory_iterator(cp)) {
      if (lost(entry.path())) removed += fs::remove(entry.path()) ? 1 : 0;
    }
    EXPECT_GT(removed, 0) << name;
    return cp;
  };
  fs::create_directory(dir.path() / "empty");
  const std::vector<fs::path> broken{
      dir.path() / "empty",
      withoutFiles("no-current", [](const fs::path& file) { return file.filename() == "CURRENT"; }),
      withoutFiles("no-tables", [](const fs::path& file) { return file.extension() == ".sst"; }),
      withoutFiles("no-current-nor-tables",
                   [](const fs::path& file) { return file.filename() == "CURRENT" || file.extension() == ".sst"; }),
  };
  for (const fs::path& cp : broken) {
    SCOPED_TRACE(cp.filename().string());
    try {
      db.restoreCheckpoint(cp);
      ADD_FAILURE() << "the broken checkpoint was restored";
    } catch (const BackendError& e) {
      EXPECT_NE(std::string(e.what()).find(cp.string()), std::string::npos) << e.what();
    }
    EXPECT_EQ(savepointBytes(db), before);
    EXPECT_EQ(shown(run(db, {get(a, "k")})[0]), "v");
    EXPECT_FALSE(fs::exists(dir.path() / "db.restoring"));
  }
}

// restoreCheckpoint() swaps the copy in by two renames: <db> to <db>.replaced, then
// <db>.restoring to <db>. The tests below lay out by hand what a crash at each point
// leaves and open a new backend there: until <db> is the restored copy the old contents
// come back, afterwards the restored ones stay; no leftover is kept, and no empty
// database is created while a leftover holds data.

// Creates <dir>/db holding a:k = "old" and <dir>/cp, a checkpoint of it with a:k = "restored".
void databaseAndCheckpoint(const std::filesystem::path& dir) {
  RocksDbBackend db(RocksDbOptions{dir / "db"});
  const std::uint32_t a = db.registerState("a", StateKind::Value);
  run(db, {put(a, "k", "restored")});
  db.createCheckpoint(dir / "cp");
  run(db, {put(a, "k", "old")});
}

// What a new backend on `path` reads at a:k.
std::string valueAt(const std::filesystem::path& path) {
  RocksDbBackend db(RocksDbOptions{path});
  return shown(run(db, {get(db.registerState("a", StateKind::Value), "k")})[0]);
}

// The names in `dir` besides the database, the checkpoint and the backends' lock files
// (path_lock.hpp: they stay, as RocksDB's LOCK does).
std::vector<std::string> leftovers(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const std::filesystem::directory_entry& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name != "db" && name != "cp" && !name.ends_with(".lock")) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(RocksDb, ACrashBeforeRestoreCheckpointsSwapKeepsTheOldContents) {
  namespace fs = std::filesystem;
  TempDir dir;
  databaseAndCheckpoint(dir.path());
  // Crashed while copying the checkpoint (or before the first rename).
  fs::copy(dir.path() / "cp", dir.path() / "db.restoring");
  EXPECT_EQ(valueAt(dir.path() / "db"), "old");
  EXPECT_EQ(leftovers(dir.path()), std::vector<std::string>{});
}

TEST(RocksDb, ACrashBetweenRestoreCheckpointsRenamesBringsTheOldContentsBack) {
  namespace fs = std::filesystem;
  const auto crashedBetweenTheRenames = [](const std::string& layout, const auto& alsoLeft) {
    SCOPED_TRACE(layout);
    TempDir dir;
    databaseAndCheckpoint(dir.path());
    fs::rename(dir.path() / "db", dir.path() / "db.replaced");
    alsoLeft(dir.path());
    EXPECT_EQ(valueAt(dir.path() / "db"), "old") << "an empty database was opened, the old one left aside";
    EXPECT_EQ(leftovers(dir.path()), std::vector<std::string>{});
  };
  crashedBetweenTheRenames("with the complete copy", [](const fs::path& d) { fs::copy(d / "cp", d / "db.restoring"); });
  crashedBetweenTheRenames("without the copy", [](const fs::path&) {});
  crashedBetweenTheRenames("with an empty directory in the database's place", [](const fs::path& d) {
    fs::copy(d / "cp", d / "db.restoring");
    fs::create_directory(d / "db");
  });
}

TEST(RocksDb, ACrashAfterRestoreCheckpointsSwapKeepsTheRestoredContents) {
  namespace fs = std::filesystem;
  TempDir dir;
  databaseAndCheckpoint(dir.path());
  fs::rename(dir.path() / "db", dir.path() / "db.replaced");
  fs::copy(dir.path() / "cp", dir.path() / "db");
  fs::remove(dir.path() / "db.replaced" / "CURRENT");  // its deletion had begun
  EXPECT_EQ(valueAt(dir.path() / "db"), "restored");
  EXPECT_EQ(leftovers(dir.path()), std::vector<std::string>{});
}

// A version without the recovery created an empty database after a crash between the
// renames. Any of the three may now hold the wanted data: the open fails, naming them.
TEST(RocksDb, ADatabaseBesideBothLeftoversOfARestoreIsNotOpened) {
  namespace fs = std::filesystem;
  TempDir dir;
  databaseAndCheckpoint(dir.path());
  fs::rename(dir.path() / "db", dir.path() / "db.replaced");
  fs::copy(dir.path() / "cp", dir.path() / "db.restoring");
  {
    const RocksDbBackend empty(RocksDbOptions{dir.path() / "empty"});
  }
  fs::rename(dir.path() / "empty", dir.path() / "db");
  try {
    RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
    ADD_FAILURE() << "opened beside both leftovers";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find((dir.path() / "db.replaced").string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find((dir.path() / "db.restoring").string()), std::string::npos) << e.what();
  }
  EXPECT_EQ(leftovers(dir.path()), (std::vector<std::string>{"db.replaced", "db.restoring"}));
  EXPECT_EQ(valueAt(dir.path() / "db.replaced"), "old");
}

// The lock file beside the database needs its directory before the database does.
TEST(RocksDb, ADatabaseIsCreatedInDirectoriesThatDoNotExistYet) {
  TempDir dir;
  const std::filesystem::path path = dir.path() / "not" / "yet" / "db";
  {
    RocksDbBackend db(RocksDbOptions{path});
    run(db, {put(db.registerState("a", StateKind::Value), "k", "v")});
  }
  EXPECT_EQ(valueAt(path), "v");
}

// Before it opens, a backend finishes or undoes what a crash interrupted, by renaming and
// deleting the directories beside the database. On a path in use it did that to the
// first backend's work in progress (here the copy a restoreCheckpoint() is staging)
// before RocksDB's own lock refused it.
TEST(RocksDb, ASecondBackendOnAPathInUseIsRefusedBeforeItTouchesAnything) {
  namespace fs = std::filesystem;
  TempDir dir;
  const fs::path path = dir.path() / "db";
  auto first = std::make_unique<RocksDbBackend>(RocksDbOptions{path});
  const std::uint32_t a = first->registerState("a", StateKind::Value);
  run(*first, {put(a, "k", "kept")});
  fs::create_directory(dir.path() / "db.restoring");
  writeBytes(dir.path() / "db.restoring" / "CURRENT", "being copied");
  for (int attempt = 0; attempt < 2; ++attempt) {  // the refused one holds nothing after
    try {
      const RocksDbBackend second(RocksDbOptions{path});
      ADD_FAILURE() << "a second backend opened a path in use";
    } catch (const BackendError& e) {
      EXPECT_NE(std::string(e.what()).find(path.string() + " is in use by another backend (" +
                                           (dir.path() / "db.lock").string() + " is locked); nothing was changed"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(readBytes(dir.path() / "db.restoring" / "CURRENT"), "being copied");
  EXPECT_EQ(shown(run(*first, {get(a, "k")})[0]), "kept");
  first.reset();
  EXPECT_EQ(valueAt(path), "kept") << "the lock goes with the backend";
  EXPECT_FALSE(fs::exists(dir.path() / "db.restoring")) << "and the next open clears what was left";
}

// The swap's steps on disk; the hook throws there as a failed rename would stop it.
class RestoreCheckpointInterrupted : public ::testing::TestWithParam<std::string> {};

TEST_P(RestoreCheckpointInterrupted, LeavesTheBackendClosedNamingWhyAndTheNextOpenFinishesIt) {
  TempDir dir;
  databaseAndCheckpoint(dir.path());
  {
    RocksDbOptions options{dir.path() / "db"};
    options.onRollBackStep = [step = GetParam()](std::string_view reached) {
      if (reached == step) throw std::runtime_error("interrupted at " + step);
    };
    RocksDbBackend db(options);
    const std::uint32_t a = db.registerState("a", StateKind::Value);
    EXPECT_THROW(db.restoreCheckpoint(dir.path() / "cp"), std::runtime_error);
    const std::vector<Outcome> outcomes = run(db, {get(a, "k")});
    ASSERT_FALSE(outcomes[0].ok);
    EXPECT_NE(outcomes[0].error.find("restoring checkpoint " + (dir.path() / "cp").string() +
                                     " failed midway (interrupted at " + GetParam() + ")"),
              std::string::npos)
        << outcomes[0].error;
  }
  EXPECT_EQ(valueAt(dir.path() / "db"), GetParam() == "restore: database moved aside" ? "old" : "restored");
  EXPECT_EQ(leftovers(dir.path()), std::vector<std::string>{});
}

INSTANTIATE_TEST_SUITE_P(RocksDb, RestoreCheckpointInterrupted,
                         ::testing::Values("restore: database moved aside", "restore: checkpoint swapped in"),
                         [](const auto& info) {
                           return info.param == "restore: database moved aside" ? std::string("DatabaseMovedAside")
                                                                                : std::string("CheckpointSwappedIn");
                         });

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
