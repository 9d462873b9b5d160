// Lightweight checkpoints on Redis (issue 13): a checkpoint costs one marker script plus
// one UNLINK per key group the epoch falling out of retention wrote, whatever the
// state's size; a rollback writes back only the keys written since; any retained
// checkpoint can be rolled back to, exactly, and a rollback stopped midway is completed
// by the next call or start while other ids are refused; markers of the single-marker
// format still read; and a job killed with SIGKILL at random points, recovered each time
// (sometimes to an older retained checkpoint), emits every output exactly once and ends
// with the state of an uninterrupted run, on one server and on Redis Cluster. The killed
// job is tests/backends/redis_checkpoint_child.cpp.

#include "../support/kill_rounds.hpp"
#include "../support/piped_child.hpp"
#include "backend_factories.hpp"
#include "backend_test_util.hpp"
#include "redis_counting_job.hpp"

#include <asyncstate/backend/redis.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace asyncstate::test {
namespace {

constexpr int kRecords = 1500;
constexpr int kKeys = 40;
constexpr int kCheckpointEvery = 40;

// `back`: how many checkpoints before the last one the child recovers to (when retained).
std::vector<std::string> childArgs(const std::vector<std::string>& seeds, const std::string& job, int back = 0) {
  std::string joined;
  for (const std::string& s : seeds) joined += (joined.empty() ? "" : ",") + s;
  return {ASYNCSTATE_CHECKPOINT_CHILD,
          joined,
          job,
          std::to_string(kRecords),
          std::to_string(kKeys),
          std::to_string(kCheckpointEvery),
          std::to_string(back)};
}

// Runs the job uninterrupted as `reference`, then as `job` killed `kills` times at
// random points (recovered each time, two times in five to an older retained
// checkpoint than the last), and compares outputs and final state.
void killAtRandomPointsAndCompare(const std::vector<std::string>& seeds, const std::string& job, int kills) {
  std::vector<std::string> expected;
  const auto started = std::chrono::steady_clock::now();
  {
    PipedChild reference(childArgs(seeds, job + "-reference"));
    ASSERT_TRUE(collectChildLines(reference.finish(), expected)) << "the uninterrupted run did not finish";
  }
  const auto runTime =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
  ASSERT_EQ(expected.size(), static_cast<std::size_t>(kRecords));

  std::uniform_int_distribution<int> checkpointsBack(-2, 2);
  std::vector<std::string> outputs;
  std::uint64_t preImagesRolledBack = 0;
  int wentBack = 0;
  const KillRounds rounds = killAtRandomPoints(
      kills, kRecords, runTime.count() / 4, outputs,
      [&](std::mt19937& random) { return childArgs(seeds, job, std::max(0, checkpointsBack(random))); },
      [&](const std::vector<std::string>& lines) {
        for (const std::string& line : lines) {
          if (line.rfind("pre-images ", 0) == 0) preImagesRolledBack += std::stoull(line.substr(11));
          if (line.rfind("back ", 0) == 0) ++wentBack;
        }
      });
  std::printf(
      "%d kills before the end of input; %d recoveries to an older checkpoint; recoveries wrote back %llu "
      "pre-images\n",
      rounds.killedMidRun, wentBack, static_cast<unsigned long long>(preImagesRolledBack));
  if (!rounds.done) {
    PipedChild last(childArgs(seeds, job));
    ASSERT_TRUE(collectChildLines(last.finish(), outputs)) << "the job did not finish after its last recovery";
  }

  std::vector<std::string> want = expected;
  std::sort(want.begin(), want.end());
  std::sort(outputs.begin(), outputs.end());
  EXPECT_EQ(outputs, want) << "outputs differ from the uninterrupted run (lost or duplicated)";

  RedisOptions options;
  options.seeds = seeds;
  options.job = job + "-reference";
  RedisBackend reference(options);
  options.job = job;
  RedisBackend recovered(options);
  EXPECT_EQ(savepointBytes(recovered), savepointBytes(reference)) << "final state differs from the uninterrupted run";
}

TEST(RedisCheckpoint, AJobKilledAtRandomPointsEmitsEveryOutputOnceAndEndsInTheSameState) {
  RedisServer server;
  killAtRandomPointsAndCompare({server.address()}, "killed", 15);
}

TEST(RedisCheckpoint, AJobKilledAtRandomPointsOnRedisClusterEmitsEveryOutputOnceAndEndsInTheSameState) {
  RedisCluster cluster;
  killAtRandomPointsAndCompare(cluster.seeds(), "killed", 8);
}

// INFO commandstats: calls per command since the last CONFIG RESETSTAT.
std::map<std::string, long> commandCalls(const RedisServer& server) {
  const std::string text = server.query({"INFO", "commandstats"});
  std::map<std::string, long> calls;
  for (std::size_t at = text.find("cmdstat_"); at != std::string::npos; at = text.find("cmdstat_", at + 1)) {
    const std::size_t colon = text.find(':', at);
    const std::size_t value = text.find("calls=", colon) + 6;
    calls[text.substr(at + 8, colon - at - 8)] = std::stol(text.substr(value, text.find(',', value) - value));
  }
  return calls;
}

RedisOptions lightweightOptions(const RedisServer& server) {
  RedisOptions options = redisOptionsFor({server.address()});
  options.lightweightCheckpoints = true;
  return options;
}

TEST(RedisCheckpoint, ACheckpointAndARollbackTouchOnlyTheKeysWrittenSinceTheLastCheckpoint) {
  RedisServer server;
  RedisBackend backend(lightweightOptions(server));
  const std::uint32_t v = backend.registerState("v", StateKind::Value);
  constexpr int kStateKeys = 2000;
  for (int chunk = 0; chunk < kStateKeys; chunk += 500) {
    std::vector<StateRequest> puts;
    for (int k = chunk; k < chunk + 500; ++k) puts.push_back(put(v, "k" + std::to_string(k), "old"));
    ASSERT_TRUE(run(backend, puts)[0].ok);
  }
  ASSERT_EQ(backend.commitCheckpoint({{"position", "1"}}), 1u);
  const std::string atCheckpoint = savepointBytes(backend);

  constexpr int kChanged = 10;
  auto writeChanges = [&] {
    std::vector<StateRequest> puts;
    for (int k = 0; k < kChanged; ++k) puts.push_back(put(v, "k" + std::to_string(k * 97), "new"));
    ASSERT_TRUE(run(backend, puts)[0].ok);
  };
  writeChanges();
  ASSERT_EQ(server.query({"CONFIG", "RESETSTAT"}), "OK");
  ASSERT_EQ(backend.commitCheckpoint({{"position", "2"}}), 2u);
  std::map<std::string, long> calls = commandCalls(server);
  EXPECT_EQ(calls["set"], 1) << "a commit writes one marker";
  EXPECT_EQ(calls["hset"], 1) << "and moves the previous one into the history";
  EXPECT_EQ(calls["unlink"], static_cast<long>(backend.checkpointStats().lastCommitDeletes));
  EXPECT_EQ(calls["unlink"], 0) << "both checkpoints are retained: no undo hash is deleted yet";
  EXPECT_EQ(calls["get"], 3) << "a commit reads the job's generation marker and the last marker (whether its id is "
                                "committed already, then to move it), nothing of the state";
  EXPECT_EQ(calls.count("hgetall") + calls.count("scan"), 0u) << "a commit reads nothing of the state";

  const std::string atSecondCheckpoint = savepointBytes(backend);
  writeChanges();
  std::vector<StateRequest> more;
  for (int k = 0; k < kChanged; ++k) more.push_back(put(v, "fresh" + std::to_string(k), "x"));
  ASSERT_TRUE(run(backend, more)[0].ok);
  ASSERT_EQ(server.query({"CONFIG", "RESETSTAT"}), "OK");
  backend.rollBackTo(backend.lastCheckpoint().id);
  calls = commandCalls(server);
  EXPECT_EQ(backend.checkpointStats().lastRollBackPreImages, 2u * kChanged);
  EXPECT_EQ(calls["set"], kChanged + 1) << "the rollback writes its intent and back the changed keys only";
  EXPECT_EQ(calls["del"], kChanged + static_cast<long>(kMaxKeyGroups) + 1)
      << "and deletes the new keys, the open epoch's undo hash per key group (most are missing: a no-op) and the "
         "intent";
  EXPECT_EQ(savepointBytes(backend), atSecondCheckpoint);
  EXPECT_NE(atCheckpoint, atSecondCheckpoint);
}

TEST(RedisCheckpoint, RollbackRestoresEveryKindOfWriteAndCanBeRepeated) {
  RedisServer server;
  RedisBackend backend(lightweightOptions(server));
  const std::uint32_t v = backend.registerState("v", StateKind::Value);
  const std::uint32_t l = backend.registerState("l", StateKind::List);
  const std::uint32_t m = backend.registerState("m", StateKind::Map);
  ASSERT_TRUE(run(backend, {put(v, "a", "1"), put(v, "b", "2"), append(l, "a", "x"), putEntry(m, "a", "p", "1"),
                            putEntry(m, "a", "q", "2"), putEntry(m, "b", "p", "3")})[0]
                  .ok);
  const std::uint64_t id = backend.commitCheckpoint({});
  const std::string committed = savepointBytes(backend);
  for (const Outcome& o :
       run(backend, {put(v, "a", "9"), del(v, "b"), put(v, "c", "new"), append(l, "a", "y"), append(l, "b", "z"),
                     putEntry(m, "a", "p", "8"), del(m, "a", "q"), putEntry(m, "a", "r", "7"), clear(m, "b"),
                     putEntry(m, "b", "s", "6"), put(v, "a", "10")})) {
    ASSERT_TRUE(o.ok) << o.error;
  }
  ASSERT_NE(savepointBytes(backend), committed);
  backend.rollBackTo(id);
  EXPECT_EQ(savepointBytes(backend), committed);
  EXPECT_EQ(scanAll(backend, m, "a", 10), (std::vector<std::pair<std::string, std::string>>{{"p", "1"}, {"q", "2"}}));
  backend.rollBackTo(id);  // a recovery that crashed midway is repeated
  EXPECT_EQ(savepointBytes(backend), committed);
  EXPECT_THROW(backend.rollBackTo(id + 1), std::invalid_argument) << "a checkpoint never committed is refused";
  EXPECT_EQ(savepointBytes(backend), committed);
}

TEST(RedisCheckpoint, ARestoredSavepointIsTheCheckpointARollbackReturnsTo) {
  RedisServer server;
  RedisBackend backend(lightweightOptions(server));
  const std::uint32_t v = backend.registerState("v", StateKind::Value);
  ASSERT_TRUE(run(backend, {put(v, "a", "saved")})[0].ok);
  Savepoint savepoint;
  backend.snapshot(savepoint);
  savepoint.metadata()["position"] = "7";
  const std::string saved = savepointBytes(backend);
  ASSERT_TRUE(run(backend, {put(v, "a", "later"), put(v, "b", "later")})[0].ok);
  backend.commitCheckpoint({{"position", "9"}});
  ASSERT_TRUE(run(backend, {put(v, "a", "uncommitted")})[0].ok);

  backend.restore(savepoint);
  ASSERT_TRUE(run(backend, {put(v, "a", "after restore")})[0].ok);
  const LightweightCheckpoint last = backend.lastCheckpoint();
  EXPECT_EQ(last.metadata.at("position"), "7");
  backend.rollBackTo(last.id);
  EXPECT_EQ(savepointBytes(backend), saved);
}

TEST(RedisCheckpoint, AFreshBackendResumesTheEpochAfterTheLastCommittedCheckpoint) {
  RedisServer server;
  const RedisOptions options = lightweightOptions(server);
  std::string committed;
  {
    RedisBackend first(options);
    const std::uint32_t v = first.registerState("v", StateKind::Value);
    ASSERT_TRUE(run(first, {put(v, "a", "1")})[0].ok);
    EXPECT_EQ(first.commitCheckpoint({}), 1u);
    committed = savepointBytes(first);
    ASSERT_TRUE(run(first, {put(v, "a", "2"), put(v, "b", "2")})[0].ok);
  }  // "crashes": its open epoch is never committed
  RedisBackend second(options);
  EXPECT_EQ(second.checkpointStats().epoch, 2u);
  second.rollBackTo(second.lastCheckpoint().id);
  EXPECT_EQ(savepointBytes(second), committed);
  EXPECT_EQ(second.commitCheckpoint({}), 2u);
}

TEST(RedisCheckpoint, ACommitWhileABatchIsUnfinishedIsRefusedInsteadOfLosingItsPreImages) {
  RedisServer server;
  RedisBackend backend(lightweightOptions(server));
  const std::uint32_t v = backend.registerState("v", StateKind::Value);
  ASSERT_TRUE(run(backend, {put(v, "a", "committed")})[0].ok);
  // The server holds every command for half a second: the batch cannot finish before the
  // commit is asked for.
  ASSERT_EQ(server.query({"CLIENT", "PAUSE", "500", "ALL"}), "OK");
  CollectingSink sink;
  backend.executeBatch({put(v, "a", "in flight")}, sink);
  EXPECT_THROW(backend.commitCheckpoint({}), std::logic_error);
  ASSERT_TRUE(sink.waitFor(1, backend, std::chrono::seconds(30)));
  EXPECT_EQ(backend.commitCheckpoint({}), 1u) << "once the batch finished, the commit goes ahead";
}

// The runner's checkpoint() on `backend` after `records` records of the counting job.
Savepoint checkpointAfter(StateBackend& backend, const std::vector<Hit>& hits, std::uint64_t records) {
  CountingFunction function;
  RunnerOptions options;
  options.lightweightCheckpoints = true;
  options.stopAfter = records;
  EmbeddedRunner<std::string, Hit, int> runner(
      backend, function, [](const Hit& h) { return h.key; }, [](const Hit& h) { return h.timestamp; }, options);
  VectorSource<Hit> source(hits);
  VectorCollector<int> sink;
  runner.run(source, sink);
  return runner.checkpoint(source);
}

TEST(RedisCheckpoint, TheRunnerCommitsLightweightCheckpointsOnlyOnABackendThatHasThemEnabled) {
  RedisServer server;
  const std::vector<Hit> hits = countingInput(20, 10);
  RedisOptions full = redisOptionsFor({server.address()});
  full.job = "full";
  RedisBackend withoutPreImages(full);
  const Savepoint snapshot = checkpointAfter(withoutPreImages, hits, 100);
  EXPECT_GT(snapshot.entryCount(), 0u) << "without pre-images a checkpoint stays a full snapshot";
  EXPECT_EQ(snapshot.metadata().count("checkpoint.lightweight"), 0u);

  RedisBackend backend(lightweightOptions(server));
  const Savepoint checkpoint = checkpointAfter(backend, hits, 100);
  EXPECT_EQ(checkpoint.entryCount(), 0u) << "a lightweight checkpoint copies no state";
  EXPECT_EQ(checkpoint.metadata().at("checkpoint.lightweight"), encode(std::uint64_t{1}));
  const std::string committed = savepointBytes(backend);
  EXPECT_EQ(committed, savepointBytes(withoutPreImages));

  runCountingJob(backend, hits);  // writes after the checkpoint
  ASSERT_NE(savepointBytes(backend), committed);
  CountingFunction function;
  EmbeddedRunner<std::string, Hit, int> runner(
      backend, function, [](const Hit& h) { return h.key; }, [](const Hit& h) { return h.timestamp; }, {});
  VectorSource<Hit> source(hits);
  EXPECT_EQ(runner.restore(checkpoint, source), 0u);
  EXPECT_EQ(source.position(), 100u);
  EXPECT_EQ(savepointBytes(backend), committed) << "restore() of a lightweight checkpoint rolls back to it";
}

// The states of the retention tests: a value, a list and a map, written across many
// key groups with every kind of write, differently in each epoch.
struct MixedStates {
  std::uint32_t value, list, map;
  explicit MixedStates(StateBackend& backend)
      : value(backend.registerState("v", StateKind::Value)),
        list(backend.registerState("l", StateKind::List)),
        map(backend.registerState("m", StateKind::Map)) {}

  void writeEpoch(StateBackend& backend, int epoch) const {
    std::vector<StateRequest> batch;
    const std::string e = std::to_string(epoch);
    for (int k = 0; k < 30; ++k) {
      const std::string key = "k" + std::to_string((k * 7 + epoch * 3) % 40);
      if (k % 5 == epoch % 5) {
        batch.push_back(del(value, key));
      } else {
        batch.push_back(put(value, key, "e" + e));
      }
      batch.push_back(append(list, key, e));
      batch.push_back(putEntry(map, "m" + std::to_string(k % 6), "u" + std::to_string((k + epoch) % 9), e));
      if (k % 4 == 0) batch.push_back(del(map, "m" + std::to_string(k % 6), "u" + std::to_string(epoch % 9)));
    }
    batch.push_back(clear(map, "m" + std::to_string(epoch % 6)));
    batch.push_back(clear(list, "k" + std::to_string(epoch % 40)));
    for (const Outcome& o : run(backend, batch)) ASSERT_TRUE(o.ok) << o.error;
  }
};

std::vector<std::uint64_t> idsOf(const std::vector<LightweightCheckpoint>& checkpoints) {
  std::vector<std::uint64_t> ids;
  for (const LightweightCheckpoint& c : checkpoints) ids.push_back(c.id);
  return ids;
}

// Commits checkpoints 1..4 (3 retained), writes an uncommitted epoch, rolls back to the
// oldest retained one and compares with a full snapshot taken when it was committed.
void rollBackToAnOlderRetainedCheckpoint(const std::vector<std::string>& seeds) {
  RedisOptions options = redisOptionsFor(seeds);
  options.lightweightCheckpoints = true;
  RedisBackend backend(options);
  const MixedStates states(backend);
  std::map<std::uint64_t, std::string> snapshots;
  for (int epoch = 1; epoch <= 4; ++epoch) {
    states.writeEpoch(backend, epoch);
    const std::uint64_t id = backend.commitCheckpoint({{"position", std::to_string(epoch * 10)}});
    snapshots[id] = savepointBytes(backend);
  }
  states.writeEpoch(backend, 5);
  const std::vector<LightweightCheckpoint> retained = backend.retainedCheckpoints();
  ASSERT_EQ(idsOf(retained), (std::vector<std::uint64_t>{2, 3, 4})) << "the newest three, oldest first";
  EXPECT_EQ(retained.front().metadata, (std::map<std::string, std::string>{{"position", "20"}}));
  EXPECT_EQ(retained.back().metadata, (std::map<std::string, std::string>{{"position", "40"}}));

  const std::string beforeRefusal = savepointBytes(backend);
  EXPECT_THROW(backend.rollBackTo(1), std::invalid_argument) << "fell out of retention";
  EXPECT_THROW(backend.rollBackTo(5), std::invalid_argument) << "never committed";
  EXPECT_EQ(savepointBytes(backend), beforeRefusal) << "a refused rollback touches nothing";

  backend.rollBackTo(2);
  EXPECT_EQ(savepointBytes(backend), snapshots[2]);
  EXPECT_EQ(idsOf(backend.retainedCheckpoints()), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(backend.lastCheckpoint().metadata.at("position"), "20");
  EXPECT_THROW(backend.rollBackTo(3), std::invalid_argument) << "checkpoints after the target are gone";
  EXPECT_EQ(backend.checkpointStats().epoch, 3u);

  // The job goes on from checkpoint 2: the next commit is 3 again, and a rollback to it
  // returns to the new state, not the old checkpoint 3.
  states.writeEpoch(backend, 7);
  EXPECT_EQ(backend.commitCheckpoint({{"position", "21"}}), 3u);
  const std::string newThree = savepointBytes(backend);
  states.writeEpoch(backend, 8);
  backend.rollBackTo(3);
  EXPECT_EQ(savepointBytes(backend), newThree);
  backend.rollBackTo(2);
  EXPECT_EQ(savepointBytes(backend), snapshots[2]);
}

TEST(RedisCheckpoint, RollingBackToAnOlderRetainedCheckpointGivesExactlyItsState) {
  RedisServer server;
  rollBackToAnOlderRetainedCheckpoint({server.address()});
}

TEST(RedisCheckpoint, RollingBackToAnOlderRetainedCheckpointOnRedisClusterGivesExactlyItsState) {
  RedisCluster cluster;
  rollBackToAnOlderRetainedCheckpoint(cluster.seeds());
}

// How many undo hashes of `epoch` job `job` has on `server`.
long undoHashes(const RedisServer& server, const std::string& job, std::uint64_t epoch) {
  return std::stol(server.query({"KEYS", "{" + job + ":*}:u:" + std::to_string(epoch)}));
}

TEST(RedisCheckpoint, RetentionDropsTheOldestCheckpointAndTheUndoHashesOnlyItNeeded) {
  RedisServer server;
  RedisOptions options = lightweightOptions(server);
  options.retainedCheckpoints = 0;
  EXPECT_THROW(RedisBackend{options}, std::invalid_argument);
  options.retainedCheckpoints = 2;
  const std::string job = options.job;
  std::map<std::uint64_t, std::string> snapshots;
  {
    RedisBackend backend(options);
    const MixedStates states(backend);
    for (int epoch = 1; epoch <= 3; ++epoch) {
      states.writeEpoch(backend, epoch);
      snapshots[backend.commitCheckpoint({})] = savepointBytes(backend);
    }
    // Retained: 2 and 3. Rolling back to 2 needs the undo hashes of epochs 3 and 4 (open).
    EXPECT_EQ(idsOf(backend.retainedCheckpoints()), (std::vector<std::uint64_t>{2, 3}));
    EXPECT_EQ(undoHashes(server, job, 1), 0);
    EXPECT_EQ(undoHashes(server, job, 2), 0);
    const long third = undoHashes(server, job, 3);
    EXPECT_GT(third, 1) << "epoch 3 wrote several key groups";
    states.writeEpoch(backend, 4);
    EXPECT_GT(undoHashes(server, job, 4), 1);

    snapshots[backend.commitCheckpoint({})] = savepointBytes(backend);
    EXPECT_EQ(idsOf(backend.retainedCheckpoints()), (std::vector<std::uint64_t>{3, 4}));
    EXPECT_EQ(undoHashes(server, job, 3), 0) << "checkpoint 2 fell out, and with it what only it needed";
    EXPECT_EQ(static_cast<long>(backend.checkpointStats().lastCommitDeletes), third)
        << "one UNLINK per key group epoch 3 wrote, named by its marker";
    EXPECT_GT(undoHashes(server, job, 4), 1);
    states.writeEpoch(backend, 5);
    EXPECT_THROW(backend.rollBackTo(2), std::invalid_argument);
  }
  // A crash right after a commit leaves the oldest retained checkpoint's own undo hash
  // (here made by hand): the next start deletes it.
  ASSERT_EQ(server.query({"HSET", "{" + job + ":7}:u:3", "sk", "0"}), "1");
  RedisBackend restarted(options);
  EXPECT_EQ(undoHashes(server, job, 3), 0);
  EXPECT_GT(undoHashes(server, job, 4), 1);
  restarted.rollBackTo(3);
  EXPECT_EQ(savepointBytes(restarted), snapshots[3]);
  EXPECT_EQ(undoHashes(server, job, 4) + undoHashes(server, job, 5), 0);
}

// Restarted with a smaller retainedCheckpoints, one commit drops several checkpoints and
// the undo hashes of several epochs. A crash before its UNLINKs (their hashes put back
// by hand) leaves all of them; the next start deletes every one, not only the oldest
// retained checkpoint's.
TEST(RedisCheckpoint, ACrashAfterACommitThatShrankRetentionLeavesNoUndoHashBehind) {
  RedisServer server;
  RedisOptions options = lightweightOptions(server);
  options.retainedCheckpoints = 4;
  const std::string job = options.job;
  {
    RedisBackend backend(options);
    const MixedStates states(backend);
    for (int epoch = 1; epoch <= 5; ++epoch) {
      states.writeEpoch(backend, epoch);
      backend.commitCheckpoint({});
    }
    EXPECT_EQ(idsOf(backend.retainedCheckpoints()), (std::vector<std::uint64_t>{2, 3, 4, 5}));
    for (std::uint64_t epoch : {3u, 4u, 5u}) EXPECT_GT(undoHashes(server, job, epoch), 1) << epoch;
  }
  options.retainedCheckpoints = 2;
  const auto undoHash = [&job](std::uint32_t group, std::uint64_t epoch) {
    return "{" + job + ":" + std::to_string(group) + "}:u:" + std::to_string(epoch);
  };
  std::vector<std::string> dropped;  // the undo hashes the commit will delete
  for (std::uint64_t epoch : {3u, 4u, 5u}) {
    for (std::uint32_t group = 0; group < kMaxKeyGroups; ++group) {
      if (server.query({"EXISTS", undoHash(group, epoch)}) == "1") dropped.push_back(undoHash(group, epoch));
    }
  }
  {
    RedisBackend backend(options);
    const MixedStates states(backend);
    states.writeEpoch(backend, 6);
    EXPECT_EQ(backend.commitCheckpoint({}), 6u);
    EXPECT_EQ(idsOf(backend.retainedCheckpoints()), (std::vector<std::uint64_t>{5, 6}));
    for (std::uint64_t epoch : {3u, 4u, 5u}) EXPECT_EQ(undoHashes(server, job, epoch), 0) << epoch;
  }
  ASSERT_GT(dropped.size(), 6u);
  for (const std::string& hash : dropped) ASSERT_EQ(server.query({"HSET", hash, "sk", "0"}), "1");
  RedisBackend restarted(options);
  for (std::uint64_t epoch : {3u, 4u, 5u}) EXPECT_EQ(undoHashes(server, job, epoch), 0) << epoch;
  EXPECT_GT(undoHashes(server, job, 6), 1) << "what a rollback to 5 needs stays";
  EXPECT_EQ(idsOf(restarted.retainedCheckpoints()), (std::vector<std::uint64_t>{5, 6}));
}

// How many undo hashes of any epoch job `job` has on `server`.
long allUndoHashes(const RedisServer& server, const std::string& job) {
  return std::stol(server.query({"KEYS", "{" + job + ":*}:u:*"}));
}

// The same crash after a commit that dropped more epochs than a start names one by one
// (kMaxEpochsCleanedAtStart, 1024): the start used to stop naming there and kept the
// oldest undo hashes for good; it now finds the ones that exist.
TEST(RedisCheckpoint, ACrashAfterACommitThatShrankRetentionByOverAThousandEpochsLeavesNoUndoHashBehind) {
  RedisServer server;
  RedisOptions options = lightweightOptions(server);
  options.retainedCheckpoints = 1200;
  const std::string job = options.job;
  constexpr std::uint64_t kCommits = 1150;
  {
    RedisBackend backend(options);
    const MixedStates states(backend);
    for (int epoch = 1; epoch <= 3; ++epoch) {
      states.writeEpoch(backend, epoch);
      backend.commitCheckpoint({});
    }
    for (std::uint64_t epoch = 4; epoch <= kCommits; ++epoch) backend.commitCheckpoint({});
    EXPECT_EQ(backend.retainedCheckpoints().size(), kCommits);
  }
  std::vector<std::string> dropped;
  for (std::uint64_t epoch : {1u, 2u, 3u}) {
    for (std::uint32_t group = 0; group < kMaxKeyGroups; ++group) {
      const std::string hash = "{" + job + ":" + std::to_string(group) + "}:u:" + std::to_string(epoch);
      if (server.query({"EXISTS", hash}) == "1") dropped.push_back(hash);
    }
  }
  ASSERT_GT(dropped.size(), 2u) << "epochs 2 and 3 wrote several key groups";
  options.retainedCheckpoints = 2;
  {
    RedisBackend backend(options);
    // A state key whose user key looks like an undo hash, written in the epoch a
    // rollback to checkpoint kCommits needs: neither may go.
    const MixedStates states(backend);
    ASSERT_TRUE(run(backend, {put(states.value, "}:u:1", "kept")})[0].ok);
    EXPECT_EQ(backend.commitCheckpoint({}), kCommits + 1);
    for (std::uint64_t epoch : {1u, 2u, 3u}) EXPECT_EQ(undoHashes(server, job, epoch), 0) << epoch;
  }
  for (const std::string& hash : dropped) ASSERT_EQ(server.query({"HSET", hash, "sk", "0"}), "1");
  RedisBackend restarted(options);
  for (std::uint64_t epoch : {1u, 2u, 3u}) EXPECT_EQ(undoHashes(server, job, epoch), 0) << epoch;
  EXPECT_EQ(undoHashes(server, job, kCommits + 1), 1) << "what a rollback to " << kCommits << " needs stays";
  EXPECT_EQ(idsOf(restarted.retainedCheckpoints()), (std::vector<std::uint64_t>{kCommits, kCommits + 1}));
  const MixedStates states(restarted);
  const std::vector<Outcome> read = run(restarted, {get(states.value, "}:u:1")});
  ASSERT_TRUE(read[0].ok) << read[0].error;
  EXPECT_EQ(read[0].result.value, "kept");
  restarted.rollBackTo(kCommits);
  EXPECT_FALSE(run(restarted, {get(states.value, "}:u:1")})[0].result.found) << "its pre-image was kept";
}

// A restore replaces the contents, so the retained checkpoints and every undo hash of
// the old contents go, also those an earlier process kept under a longer retention and
// also when this process has lightweight checkpoints off; a later rollback could
// otherwise write old pre-images over the restored state.
TEST(RedisCheckpoint, ARestoreLeavesNoCheckpointOrUndoHashOfTheOldContentsWhateverTheOptions) {
  RedisServer server;
  for (const bool lightweight : {true, false}) {
    RedisOptions options = lightweightOptions(server);
    options.job += lightweight ? "-on" : "-off";
    options.retainedCheckpoints = 4;
    Savepoint savepoint;
    {
      RedisBackend backend(options);
      const MixedStates states(backend);
      for (int epoch = 1; epoch <= 5; ++epoch) {
        states.writeEpoch(backend, epoch);
        backend.commitCheckpoint({});
        if (epoch == 1) backend.snapshot(savepoint);
      }
      EXPECT_EQ(idsOf(backend.retainedCheckpoints()), (std::vector<std::uint64_t>{2, 3, 4, 5}));
      ASSERT_GT(undoHashes(server, options.job, 3), 1);
    }
    options.retainedCheckpoints = 2;
    options.lightweightCheckpoints = lightweight;
    {
      RedisBackend backend(options);
      backend.restore(savepoint);
      EXPECT_EQ(allUndoHashes(server, options.job), 0) << lightweight;
    }
    options.lightweightCheckpoints = true;
    RedisBackend after(options);
    EXPECT_EQ(idsOf(after.retainedCheckpoints()),
              lightweight ? std::vector<std::uint64_t>{6} : std::vector<std::uint64_t>{})
        << "only the restore's own checkpoint, if it made one";
    EXPECT_EQ(savepointBytes(after), savepoint.serialize()) << lightweight;
  }
}

TEST(RedisCheckpoint, ARollbackStoppedMidwayIsCompletedByTheNextStartOrCallAndNoOtherIdIsTakenMeanwhile) {
  RedisServer server;
  RedisOptions options = lightweightOptions(server);
  std::map<std::uint64_t, std::string> snapshots;
  std::string partly;
  std::uint32_t stopAt = 32;
  // A rollback that "crashes" after `stopAt` key groups (the callback throws).
  RedisOptions stopping = options;
  stopping.onRollBackProgress = [&stopAt](std::uint32_t done, std::uint32_t total) {
    EXPECT_EQ(total, kMaxKeyGroups);
    if (done == stopAt) throw std::runtime_error("stopped");
  };
  {
    RedisBackend backend(stopping);
    const MixedStates states(backend);
    for (int epoch = 1; epoch <= 4; ++epoch) {
      states.writeEpoch(backend, epoch);
      snapshots[backend.commitCheckpoint({{"position", std::to_string(epoch)}})] = savepointBytes(backend);
    }
    states.writeEpoch(backend, 5);
    const std::string uncommitted = savepointBytes(backend);
    EXPECT_THROW(backend.rollBackTo(3), std::runtime_error);
    partly = savepointBytes(backend);
    EXPECT_NE(partly, uncommitted) << "some key groups were rolled back";
    EXPECT_NE(partly, snapshots[3]) << "and some were not";

    try {
      backend.rollBackTo(4);
      ADD_FAILURE() << "the store is no longer checkpoint 4, yet a rollback to it was taken";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("rollback to checkpoint 3 is unfinished"), std::string::npos) << e.what();
    }
    std::vector<Outcome> refused = run(backend, {put(states.value, "k1", "late")});
    EXPECT_FALSE(refused[0].ok) << "a batch on a partly rolled-back store is refused";
    EXPECT_NE(refused[0].error.find("unfinished"), std::string::npos) << refused[0].error;
    EXPECT_THROW(backend.commitCheckpoint({}), std::runtime_error)
        << "a commit first completes the rollback (which stops again here)";
    EXPECT_EQ(savepointBytes(backend), partly) << "refusals touch nothing; the repeat redid only done groups";
  }
  {
    RedisBackend started(options);  // a new start completes the rollback to 3
    EXPECT_EQ(savepointBytes(started), snapshots[3]);
    EXPECT_EQ(started.lastCheckpoint().id, 3u);
    EXPECT_EQ(started.lastCheckpoint().metadata.at("position"), "3");
  }
  {
    // Stopped after every key group but before the history is cut: an older retained
    // id is still honoured, going on from there, and the next call completes it.
    stopAt = kMaxKeyGroups;
    RedisBackend backend(stopping);
    const MixedStates states(backend);
    states.writeEpoch(backend, 6);
    EXPECT_THROW(backend.rollBackTo(3), std::runtime_error);
    EXPECT_EQ(savepointBytes(backend), snapshots[3]);
    EXPECT_THROW(backend.rollBackTo(4), std::invalid_argument);
    stopAt = 48;
    EXPECT_THROW(backend.rollBackTo(2), std::runtime_error);
    EXPECT_THROW(backend.rollBackTo(3), std::invalid_argument) << "the rollback under way now goes to 2";
    stopAt = 0;
    EXPECT_EQ(idsOf(backend.retainedCheckpoints()), (std::vector<std::uint64_t>{2}))
        << "retainedCheckpoints() completes the rollback first";
    EXPECT_EQ(savepointBytes(backend), snapshots[2]);
    EXPECT_EQ(backend.lastCheckpoint().metadata.at("position"), "2");
    EXPECT_TRUE(run(backend, {put(states.value, "k1", "after")})[0].ok);
  }
}

TEST(RedisCheckpoint, AMarkerOfTheSingleMarkerFormatIsStillReadAndRolledBackTo) {
  RedisServer server;
  const RedisOptions options = lightweightOptions(server);
  const std::string marker = "{" + options.job + ":meta}:c";
  std::string committed;
  {
    RedisBackend before(options);
    const MixedStates states(before);
    states.writeEpoch(before, 1);
    states.writeEpoch(before, 2);
    ASSERT_EQ(before.commitCheckpoint({{"position", "12"}}), 1u);
    committed = savepointBytes(before);
    states.writeEpoch(before, 3);
  }
  // What the previous format left: the one marker, without the key groups, and no history.
  Savepoint legacy = Savepoint::parse(server.query({"GET", marker}));
  ASSERT_EQ(legacy.metadata().erase("redis.checkpoint.groups"), 1u);
  ASSERT_EQ(server.query({"SET", marker, legacy.serialize()}), "OK");
  ASSERT_EQ(server.query({"EXISTS", "{" + options.job + ":meta}:ch"}), "0");

  RedisBackend upgraded(options);
  const std::vector<LightweightCheckpoint> retained = upgraded.retainedCheckpoints();
  ASSERT_EQ(idsOf(retained), (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(retained[0].metadata, (std::map<std::string, std::string>{{"position", "12"}}));
  upgraded.rollBackTo(1);
  EXPECT_EQ(savepointBytes(upgraded), committed);
  const MixedStates states(upgraded);
  for (int epoch = 4; epoch <= 5; ++epoch) {
    states.writeEpoch(upgraded, epoch);
    upgraded.commitCheckpoint({});
  }
  EXPECT_EQ(idsOf(upgraded.retainedCheckpoints()), (std::vector<std::uint64_t>{1, 2, 3}));
  upgraded.rollBackTo(1);
  EXPECT_EQ(savepointBytes(upgraded), committed) << "the checkpoint of the old format stays retained";
}

// Counts records per key and emits "<key>=<count>": the outputs show where it resumed.
class EmittingCounter final : public KeyedProcessFunction<std::string, Hit, std::string> {
 public:
  void open(RuntimeContext& ctx) override { count_ = &ctx.getState(ValueStateDescriptor<std::int64_t>("count")); }
  void processElement(const Hit& hit, Context&, Collector<std::string>& out) override {
    (void)count_->asyncValue().thenCompose([this, key = hit.key, &out](std::optional<std::int64_t> c) {
      const std::int64_t n = c.value_or(0) + 1;
      out.collect(key + "=" + std::to_string(n));
      return count_->asyncUpdate(n);
    });
  }

 private:
  ValueState<std::int64_t>* count_ = nullptr;
};

using EmittingRunner = EmbeddedRunner<std::string, Hit, std::string>;

EmittingRunner emittingRunner(StateBackend& backend, EmittingCounter& function, RunnerOptions options) {
  return EmittingRunner(
      backend, function, [](const Hit& h) { return h.key; }, [](const Hit& h) { return h.timestamp; }, options);
}

TEST(RedisCheckpoint, TheRunnerRestoringAnOlderRetainedCheckpointContinuesExactlyAsAnUninterruptedRun) {
  RedisServer server;
  const std::vector<Hit> hits = countingInput(15, 20);
  std::vector<std::string> uninterrupted;
  std::string finalState;
  {
    RedisBackend reference(redisOptionsFor({server.address()}));
    EmittingCounter function;
    EmittingRunner runner = emittingRunner(reference, function, {});
    VectorSource<Hit> source(hits);
    VectorCollector<std::string> sink;
    runner.run(source, sink);
    uninterrupted = sink.values;
    finalState = savepointBytes(reference);
  }

  RedisBackend backend(lightweightOptions(server));
  std::vector<Savepoint> checkpoints;
  std::vector<std::string> emitted;
  {
    RunnerOptions options;
    options.lightweightCheckpoints = true;
    options.checkpointEvery = 50;
    options.onCheckpoint = [&checkpoints](const Savepoint& sp) { checkpoints.push_back(sp); };
    EmittingCounter function;
    EmittingRunner runner = emittingRunner(backend, function, options);
    VectorSource<Hit> source(hits);
    VectorCollector<std::string> sink;
    runner.run(source, sink);
    emitted = sink.values;
  }
  const std::vector<LightweightCheckpoint> retained = backend.retainedCheckpoints();
  ASSERT_EQ(retained.size(), 3u);
  const auto older = std::find_if(checkpoints.begin(), checkpoints.end(), [&](const Savepoint& sp) {
    return sp.metadata().at(kLightweightCheckpointField) == encode(retained.front().id);
  });
  ASSERT_NE(older, checkpoints.end());

  EmittingCounter function;
  EmittingRunner runner = emittingRunner(backend, function, {});
  VectorSource<Hit> source(hits);
  const std::uint64_t kept = runner.restore(*older, source);
  ASSERT_LT(source.position(), hits.size() - 50) << "an older checkpoint, not the last";
  ASSERT_LE(kept, emitted.size());
  VectorCollector<std::string> sink;
  runner.run(source, sink);
  std::vector<std::string> outputs(emitted.begin(), emitted.begin() + static_cast<std::ptrdiff_t>(kept));
  outputs.insert(outputs.end(), sink.values.begin(), sink.values.end());
  std::sort(outputs.begin(), outputs.end());
  std::sort(uninterrupted.begin(), uninterrupted.end());
  EXPECT_EQ(outputs, uninterrupted) << "outputs lost or duplicated going back two checkpoints";
  EXPECT_EQ(savepointBytes(backend), finalState);
}

}  // namespace
}  // namespace asyncstate::test
