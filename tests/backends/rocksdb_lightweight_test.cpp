// Lightweight checkpoints on RocksDB (RocksDbOptions::checkpointRoot, issue 13):
// commitCheckpoint() is an incremental checkpoint whose manifest holds the metadata,
// rollBackTo() gives exactly a retained checkpoint's state and refuses any other id
// untouched, a roll-back interrupted at each of its steps is finished by the next open,
// and a job killed with SIGKILL at random points recovers with recover() and emits
// exactly the outputs of an uninterrupted run. The killed job is
// tests/backends/rocksdb_lightweight_child.cpp.

#include "../support/kill_rounds.hpp"
#include "../support/piped_child.hpp"
#include "backend_factories.hpp"
#include "backend_test_util.hpp"

#include <asyncstate/backend/rocksdb.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asyncstate::test {
namespace {

namespace fs = std::filesystem;

RocksDbOptions lightweightOptions(const TempDir& dir) {
  RocksDbOptions options;
  options.path = dir.path() / "db";
  options.checkpointRoot = dir.path() / "remote";
  return options;
}

// Writes `round` into every kind of state for a few keys (and drops one key's entries).
void writeRound(RocksDbBackend& db, int round) {
  const std::uint32_t value = db.registerState("value", StateKind::Value);
  const std::uint32_t map = db.registerState("map", StateKind::Map);
  const std::uint32_t list = db.registerState("list", StateKind::List);
  std::vector<StateRequest> batch;
  for (int i = 0; i < 20; ++i) {
    const std::string key = "k" + std::to_string((i + round) % 25);
    batch.push_back(put(value, key, "r" + std::to_string(round)));
    batch.push_back(putEntry(map, key, "e" + std::to_string(round), std::to_string(i)));
    batch.push_back(append(list, key, std::to_string(round)));
  }
  batch.push_back(clear(map, "k" + std::to_string(round)));
  for (const Outcome& o : run(db, std::move(batch))) ASSERT_TRUE(o.ok) << o.error;
}

std::vector<std::uint64_t> idsOf(const std::vector<LightweightCheckpoint>& checkpoints) {
  std::vector<std::uint64_t> ids;
  for (const LightweightCheckpoint& c : checkpoints) ids.push_back(c.id);
  return ids;
}

std::vector<std::string> siblingsOf(const fs::path& db) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(db.parent_path())) {
    const std::string name = entry.path().filename().string();
    // The lock file stays, as RocksDB's LOCK does (path_lock.hpp).
    if (name.starts_with(db.filename().string() + ".") && !name.ends_with(".lock")) names.push_back(name);
  }
  return names;
}

TEST(RocksDbLightweight, EnabledExactlyWithACheckpointRoot) {
  TempDir dir;
  RocksDbBackend plain(RocksDbOptions{dir.path() / "plain"});
  EXPECT_FALSE(plain.lightweightCheckpointsEnabled());
  EXPECT_THROW(plain.commitCheckpoint({}), std::logic_error);
  RocksDbBackend lightweight(lightweightOptions(dir));
  EXPECT_TRUE(lightweight.lightweightCheckpointsEnabled());
  EXPECT_EQ(lightweight.lastCheckpoint().id, 0u);
  EXPECT_TRUE(lightweight.retainedCheckpoints().empty());
}

TEST(RocksDbLightweight, RollingBackToAnOlderRetainedCheckpointGivesExactlyItsState) {
  TempDir dir;
  RocksDbBackend db(lightweightOptions(dir));
  std::map<std::uint64_t, std::string> stateAt;
  for (int round = 1; round <= 4; ++round) {
    writeRound(db, round);
    // Metadata is kept byte for byte, separators and all.
    const std::uint64_t id =
        db.commitCheckpoint({{"round", std::to_string(round)}, {"odd bytes", std::string("a b\n\0c", 6)}, {"", ""}});
    EXPECT_EQ(id, static_cast<std::uint64_t>(round));
    stateAt[id] = savepointBytes(db);
  }
  writeRound(db, 5);  // not committed

  const std::vector<LightweightCheckpoint> retained = db.retainedCheckpoints();
  EXPECT_EQ(idsOf(retained), (std::vector<std::uint64_t>{2, 3, 4})) << "retain() keeps the newest 3";
  EXPECT_EQ(retained[0].metadata.at("round"), "2");
  EXPECT_EQ(retained[0].metadata.at("odd bytes"), std::string("a b\n\0c", 6));
  EXPECT_EQ(retained[0].metadata.at(""), "");
  EXPECT_EQ(db.lastCheckpoint().id, 4u);
  EXPECT_EQ(db.lastCheckpoint().metadata.at("round"), "4");

  const std::uint32_t value = db.registerState("value", StateKind::Value);
  db.rollBackTo(2);
  EXPECT_EQ(savepointBytes(db), stateAt[2]);
  EXPECT_EQ(idsOf(db.retainedCheckpoints()), (std::vector<std::uint64_t>{2})) << "newer checkpoints are dropped";
  EXPECT_EQ(db.registerState("value", StateKind::Value), value) << "registered states keep their ids";
  EXPECT_TRUE(siblingsOf(dir.path() / "db").empty());

  // Writing on: the next checkpoint takes a new id (never one a dropped checkpoint had)
  // and copies only what is new since checkpoint 2.
  writeRound(db, 6);
  const std::uint64_t next = db.commitCheckpoint({{"round", "6"}});
  EXPECT_EQ(next, 5u);
  const CheckpointHandle manifest = RocksDbCheckpointStore(dir.path() / "remote").read(next);
  EXPECT_LT(manifest.filesCopied(), manifest.files.size()) << "the rolled-back table files are reused";
  const std::string afterSix = savepointBytes(db);
  writeRound(db, 7);
  db.rollBackTo(next);
  EXPECT_EQ(savepointBytes(db), afterSix);
  db.rollBackTo(2);
  EXPECT_EQ(savepointBytes(db), stateAt[2]);
}

TEST(RocksDbLightweight, RefusedIdsTouchNothing) {
  TempDir dir;
  RocksDbBackend db(lightweightOptions(dir));
  db.retain(2);
  for (int round = 1; round <= 3; ++round) {
    writeRound(db, round);
    db.commitCheckpoint({{"round", std::to_string(round)}});
  }
  writeRound(db, 4);
  const std::string before = savepointBytes(db);
  for (const std::uint64_t id : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{4}, std::uint64_t{99}}) {
    try {
      db.rollBackTo(id);
      ADD_FAILURE() << "rollBackTo(" << id << ") was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
    }
    EXPECT_EQ(savepointBytes(db), before) << "rollBackTo(" << id << ") changed the state";
    EXPECT_EQ(idsOf(db.retainedCheckpoints()), (std::vector<std::uint64_t>{2, 3}));
  }
}

TEST(RocksDbLightweight, AFullRestoreIsCommittedAndALightweightSavepointIsRefused) {
  TempDir dir;
  Savepoint full;
  {
    RocksDbBackend source(RocksDbOptions{dir.path() / "source"});
    writeRound(source, 1);
    source.snapshot(full);
    full.metadata()["position"] = "7";
  }
  RocksDbBackend db(lightweightOptions(dir));
  writeRound(db, 2);
  db.commitCheckpoint({{"position", "3"}});
  db.restore(full);
  const std::string restored = savepointBytes(db);
  EXPECT_EQ(db.lastCheckpoint().metadata.at("position"), "7") << "a crash now rolls back to the restored contents";
  writeRound(db, 3);
  db.rollBackTo(db.lastCheckpoint().id);
  EXPECT_EQ(savepointBytes(db), restored);

  Savepoint positionOnly;
  positionOnly.metadata()[kLightweightCheckpointField] = "2";
  EXPECT_THROW(db.restore(positionOnly), std::invalid_argument);
  EXPECT_EQ(savepointBytes(db), restored) << "a refused restore touches nothing";
}

// A completion that commits while its batch still executes is refused: the batch's
// writes might land on either side of the checkpoint.
TEST(RocksDbLightweight, NoCheckpointIsCommittedOrRolledBackWhileABatchExecutes) {
  class CommittingSink final : public CompletionSink {
   public:
    explicit CommittingSink(RocksDbBackend& db) : db_(db) {}
    void complete(std::uint64_t, StateResult) override {
      try {
        db_.commitCheckpoint({});
      } catch (const std::logic_error& e) {
        commitRefusal = e.what();
      }
      try {
        db_.rollBackTo(0);
      } catch (const std::logic_error& e) {
        rollBackRefusal = e.what();
      }
    }
    void fail(std::uint64_t, std::exception_ptr) override {}
    std::string commitRefusal;
    std::string rollBackRefusal;

   private:
    RocksDbBackend& db_;
  };
  TempDir dir;
  RocksDbBackend db(lightweightOptions(dir));
  const std::uint32_t value = db.registerState("value", StateKind::Value);
  CommittingSink sink(db);
  std::vector<StateRequest> batch{put(value, "k", "v")};
  db.executeBatch(std::move(batch), sink);
  EXPECT_NE(sink.commitRefusal.find("while a batch executes"), std::string::npos) << sink.commitRefusal;
  EXPECT_NE(sink.rollBackRefusal.find("while a batch executes"), std::string::npos) << sink.rollBackRefusal;
  EXPECT_EQ(db.lastCheckpoint().id, 0u);
  EXPECT_EQ(shown(run(db, {get(value, "k")})[0]), "v");
}

TEST(RocksDbLightweight, CheckpointZeroIsTheEmptyDatabase) {
  TempDir dir;
  {
    RocksDbBackend db(lightweightOptions(dir));
    writeRound(db, 1);
    db.rollBackTo(0);
    EXPECT_TRUE(scanAll(db, db.registerState("map", StateKind::Map), "k1", 10).empty());
    EXPECT_EQ(savepointBytes(db).find("k1"), std::string::npos);
    writeRound(db, 2);
  }
  // A database that holds state before its first checkpoint was recorded from empty:
  // it reopens (a crash before the first commit) ...
  {
    RocksDbBackend reopened(lightweightOptions(dir));
  }
  // ... but one that held state before lightweight checkpoints began is refused, since
  // rolling it back to 0 would empty it.
  RocksDbOptions other = lightweightOptions(dir);
  other.checkpointRoot = dir.path() / "another-root";
  try {
    RocksDbBackend refused(other);
    ADD_FAILURE() << "a database with state was accepted with an empty checkpoint root";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find("holds no checkpoint"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(other.checkpointRoot));
}

// A root that exists is not one that recording began in: an empty directory made by hand
// (or for another database) next to a database with state is refused as a missing root
// is, and the state stays; on an empty database it is adopted as checkpoint 0.
TEST(RocksDbLightweight, AnEmptyRootMadeByHandIsNotTakenForCheckpointZero) {
  TempDir dir;
  RocksDbOptions plain = lightweightOptions(dir);
  plain.checkpointRoot.clear();
  {
    RocksDbBackend db(plain);
    writeRound(db, 1);
  }
  const RocksDbOptions options = lightweightOptions(dir);
  fs::create_directories(options.checkpointRoot);
  try {
    RocksDbBackend refused(options);
    ADD_FAILURE() << "a database with state was accepted with an empty root made by hand";
  } catch (const BackendError& e) {
    EXPECT_NE(std::string(e.what()).find("holds no checkpoint"), std::string::npos) << e.what();
  }
  {
    RocksDbBackend db(plain);
    EXPECT_FALSE(scanAll(db, db.registerState("map", StateKind::Map), "k5", 10).empty()) << "the state stays";
  }

  TempDir emptyDir;
  const RocksDbOptions adopted = lightweightOptions(emptyDir);
  fs::create_directories(adopted.checkpointRoot);
  {
    RocksDbBackend db(adopted);
    writeRound(db, 1);
  }
  RocksDbBackend reopened(adopted);  // a crash before the first commit: the root is now marked
  reopened.rollBackTo(0);
  EXPECT_TRUE(scanAll(reopened, reopened.registerState("map", StateKind::Map), "k5", 10).empty());
}

TEST(RocksDbLightweight, ManifestsWithoutMetadataStayReadable) {
  TempDir dir;
  RocksDbBackend db(RocksDbOptions{dir.path() / "db"});
  writeRound(db, 1);
  const CheckpointHandle plain = db.checkpoint(dir.path() / "remote");
  std::ifstream in(RocksDbCheckpointStore(dir.path() / "remote").manifestOf(plain.id));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("\nmeta "), std::string::npos) << "the manifest is in the format of before metadata";
  const CheckpointHandle read = RocksDbCheckpointStore(dir.path() / "remote").read(plain.id);
  EXPECT_TRUE(read.metadata.empty());
  EXPECT_EQ(read.files.size(), plain.files.size());
}

TEST(RocksDbLightweight, MetadataIsCoveredByTheManifestChecksum) {
  TempDir dir;
  RocksDbBackend db(lightweightOptions(dir));
  writeRound(db, 1);
  const std::uint64_t id = db.commitCheckpoint({{"position", "12"}});
  const fs::path manifest = RocksDbCheckpointStore(dir.path() / "remote").manifestOf(id);
  std::string text;
  {
    std::ifstream in(manifest);
    text.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  const std::size_t hexTwelve = text.find("v3132");  // "12"
  ASSERT_NE(hexTwelve, std::string::npos) << text;
  text[hexTwelve + 4] = '3';  // "13"
  fs::permissions(manifest, fs::perms::owner_write, fs::perm_options::add);
  std::ofstream(manifest, std::ios::trunc) << text;
  EXPECT_THROW(db.lastCheckpoint(), BackendError);
}

// Each step rollBackTo() has on disk; the hook throws there as a crash would stop it.
class RollBackInterrupted : public ::testing::TestWithParam<std::string> {};

TEST_P(RollBackInterrupted, TheNextOpenFinishesIt) {
  TempDir dir;
  RocksDbOptions options = lightweightOptions(dir);
  std::string stateAtOne;
  {
    RocksDbOptions interrupted = options;
    interrupted.onRollBackStep = [step = GetParam()](std::string_view reached) {
      if (reached == step) throw std::runtime_error("interrupted at " + step);
    };
    RocksDbBackend db(interrupted);
    writeRound(db, 1);
    db.commitCheckpoint({{"round", "1"}});
    stateAtOne = savepointBytes(db);
    writeRound(db, 2);
    db.commitCheckpoint({{"round", "2"}});
    writeRound(db, 3);
    EXPECT_THROW(db.rollBackTo(1), std::runtime_error);
    // Closed now: requests fail with the reason, nothing crashes.
    const std::vector<Outcome> outcomes = run(db, {get(0, "k1")});
    ASSERT_FALSE(outcomes[0].ok);
    EXPECT_NE(outcomes[0].error.find("roll-back to checkpoint 1 failed midway"), std::string::npos)
        << outcomes[0].error;
    EXPECT_THROW(savepointBytes(db), BackendError);
  }
  RocksDbBackend reopened(options);
  EXPECT_EQ(savepointBytes(reopened), stateAtOne);
  EXPECT_EQ(idsOf(reopened.retainedCheckpoints()), (std::vector<std::uint64_t>{1}));
  EXPECT_TRUE(siblingsOf(options.path).empty());
}

INSTANTIATE_TEST_SUITE_P(RocksDbLightweight, RollBackInterrupted,
                         ::testing::Values("materialized", "newer checkpoints dropped", "database moved aside",
                                           "checkpoint swapped in"),
                         [](const auto& info) {
                           std::string name;
                           for (char c : info.param) name += c == ' ' ? '_' : c;
                           return name;
                         });

TEST(RocksDbLightweight, ACopyCutShortBeforeItCompletedIsDeletedAndTheDatabaseKept) {
  TempDir dir;
  const RocksDbOptions options = lightweightOptions(dir);
  std::string latest;
  {
    RocksDbBackend db(options);
    writeRound(db, 1);
    db.commitCheckpoint({});
    writeRound(db, 2);
    latest = savepointBytes(db);
  }
  // What a kill during step 1 leaves: a partial copy in the staging directory.
  fs::create_directories(dir.path() / "db.rollback-1.restoring");
  std::ofstream(dir.path() / "db.rollback-1.restoring" / "000009.sst") << "partial";
  RocksDbBackend reopened(options);
  EXPECT_EQ(savepointBytes(reopened), latest) << "the roll-back never happened: nothing is lost";
  EXPECT_TRUE(siblingsOf(options.path).empty());
}

// ---- A job killed at random points ----

constexpr int kRecords = 1000;
constexpr int kKeys = 40;
constexpr int kCheckpointEvery = 100;

std::vector<std::string> childArgs(const fs::path& dir) {
  return {ASYNCSTATE_LIGHTWEIGHT_CHILD, (dir / "db").string(), (dir / "remote").string(),
          std::to_string(kRecords),     std::to_string(kKeys), std::to_string(kCheckpointEvery)};
}

TEST(RocksDbLightweight, AJobKilledAtRandomPointsEmitsEveryOutputOnceAndEndsInTheSameState) {
  TempDir referenceDir;
  TempDir killedDir;
  std::vector<std::string> expected;
  const auto started = std::chrono::steady_clock::now();
  {
    PipedChild reference(childArgs(referenceDir.path()));
    ASSERT_TRUE(collectChildLines(reference.finish(), expected)) << "the uninterrupted run did not finish";
  }
  const auto runTime =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
  ASSERT_EQ(expected.size(), static_cast<std::size_t>(kRecords));

  std::vector<std::string> outputs;
  const KillRounds rounds = killAtRandomPoints(
      8, kRecords, runTime.count() / 3, outputs, [&](std::mt19937&) { return childArgs(killedDir.path()); },
      [](const std::vector<std::string>&) {});
  std::printf("%d kills before the end of input\n", rounds.killedMidRun);
  if (!rounds.done) {
    PipedChild last(childArgs(killedDir.path()));
    ASSERT_TRUE(collectChildLines(last.finish(), outputs)) << "the job did not finish after its last recovery";
  }
  // Across keys the order of outputs follows batch boundaries, which a recovery moves;
  // each key's outputs carry its count, so the multisets match only if each key's do.
  std::sort(expected.begin(), expected.end());
  std::sort(outputs.begin(), outputs.end());
  EXPECT_EQ(outputs, expected) << "outputs differ from the uninterrupted run (lost or duplicated)";

  RocksDbBackend reference(RocksDbOptions{referenceDir.path() / "db"});
  RocksDbBackend recovered(RocksDbOptions{killedDir.path() / "db"});
  EXPECT_EQ(savepointBytes(recovered), savepointBytes(reference)) << "final state differs from the uninterrupted run";
}

}  // namespace
}  // namespace asyncstate::test
