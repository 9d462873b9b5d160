// The embedded runner at parallelism K: key-group ranges as Flink assigns them, output at
// K = 1 and K = 4 equal to the single runner's, and a job rescaled 1 -> 4 -> 2 through
// checkpoints giving the uninterrupted output on every backend -- moving key-group ranges
// where each subtask holds its own state, and nothing where the state is shared (Redis).
// Checkpoints that would lose or duplicate state, and parallelisms without key groups,
// are refused before anything is touched.

#include "../support/ecommerce_job.hpp"
#include "backend_factories.hpp"
#include "ecommerce/async_job.hpp"

#include <asyncstate/backend/memory.hpp>
#include <asyncstate/key_group_range.hpp>
#include <asyncstate/parallel_runner.hpp>
#if ASYNCSTATE_TEST_WITH_ROCKSDB
#include <asyncstate/backend/rocksdb.hpp>
#endif
#if ASYNCSTATE_TEST_WITH_REDIS
#include <asyncstate/backend/redis.hpp>
#endif

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asyncstate::test {
namespace {

using ecommerce::Event;
using ecommerce::WindowCount;
using Job = ParallelRunner<std::string, Event, WindowCount>;
using ByKey = std::map<std::string, std::vector<WindowCount>>;

const std::vector<Event>& events() {
  static const std::vector<Event> all = ecommerce::generateEvents(12000, 5, 300);
  return all;
}

// Each key's outputs in the order they were emitted: the order a parallel job keeps.
ByKey byKey(const std::vector<WindowCount>& outputs) {
  ByKey out;
  for (const WindowCount& w : outputs) out[w.userId].push_back(w);
  return out;
}

// The single runner, uninterrupted, on the memory backend.
const ByKey& expected() {
  static const ByKey reference = [] {
    MemoryBackend backend;
    ecommerce::AsyncActivityFunction function;
    EmbeddedRunner<std::string, Event, WindowCount> runner(backend, function, ecommerceKeyOf, ecommerceTimeOf,
                                                           ecommerceRunnerOptions());
    VectorSource<Event> source(events());
    VectorCollector<WindowCount> sink;
    runner.run(source, sink);
    return byKey(sink.values);
  }();
  return reference;
}

// Where a job keeps its state. makeFactory() gives the factory of one attempt: for a
// PerSubtask store every subtask gets a new, empty backend (as after losing the
// machines), for a Shared one a connection to the job's one store.
struct Store {
  std::string name;
  StatePlacement placement;
  std::function<Job::BackendFactory()> makeFactory;
  std::shared_ptr<void> keepAlive;
};

struct StoreMaker {
  std::string name;
  std::function<Store()> make;
};

void PrintTo(const StoreMaker& maker, std::ostream* os) { *os << maker.name; }

std::vector<StoreMaker> stores() {
  std::vector<StoreMaker> out;
  out.emplace_back("memory", [] {
    return Store{"memory", StatePlacement::PerSubtask,
                 [] { return Job::BackendFactory([](const Subtask&) { return std::make_unique<MemoryBackend>(); }); },
                 nullptr};
  });
#if ASYNCSTATE_TEST_WITH_ROCKSDB
  out.emplace_back("rocksdb", [] {
    auto dir = std::make_shared<TempDir>();
    auto attempts = std::make_shared<int>(0);
    return Store{"rocksdb", StatePlacement::PerSubtask,
                 [dir, attempts] {
                   const int attempt = (*attempts)++;
                   return Job::BackendFactory([dir, attempt](const Subtask& s) {
                     const auto path =
                         dir->path() / ("attempt" + std::to_string(attempt) + "-subtask" + std::to_string(s.index));
                     return std::make_unique<RocksDbBackend>(RocksDbOptions{path});
                   });
                 },
                 dir};
  });
#endif
#if ASYNCSTATE_TEST_WITH_REDIS
  out.emplace_back("redis", [] {
    const RedisOptions options = redisOptionsFor({sharedRedis().address()});
    return Store{
        "redis", StatePlacement::Shared,
        [options] {
          return Job::BackendFactory([options](const Subtask&) { return std::make_unique<RedisBackend>(options); });
        },
        nullptr};
  });
#endif
  return out;
}

ParallelRunnerOptions jobOptions(std::uint32_t parallelism, StatePlacement placement) {
  ParallelRunnerOptions o;
  o.parallelism = parallelism;
  o.placement = placement;
  o.runner = ecommerceRunnerOptions();
  o.queueCapacity = 256;
  return o;
}

Job makeJob(const Store& store, ParallelRunnerOptions options) {
  return Job(
      store.makeFactory(), [] { return std::make_unique<ecommerce::AsyncActivityFunction>(); }, ecommerceKeyOf,
      ecommerceTimeOf, std::move(options));
}

// Through the file format, as a checkpoint restored elsewhere travels.
ParallelCheckpoint roundTrip(const ParallelCheckpoint& cp) {
  return ParallelCheckpoint::fromSavepoint(Savepoint::parse(cp.toSavepoint().serialize()));
}

// What a Shared store holds, as a savepoint's bytes; nothing for a PerSubtask one.
std::string sharedContents(const Store& store) {
  if (store.placement != StatePlacement::Shared) return {};
  Savepoint contents;
  store.makeFactory()(Subtask{})->snapshot(contents);
  EXPECT_GT(contents.entryCount(), 0u);
  return contents.serialize();
}

class ParallelRunnerTest : public ::testing::TestWithParam<StoreMaker> {};

TEST_P(ParallelRunnerTest, OutputAtParallelismOneAndFourIsTheSingleRunners) {
  for (std::uint32_t parallelism : {1u, 4u}) {
    const Store store = GetParam().make();
    Job job = makeJob(store, jobOptions(parallelism, store.placement));
    VectorSource<Event> source(events());
    VectorCollector<WindowCount> sink;
    const RunStats stats = job.run(source, sink);
    EXPECT_EQ(stats.records, events().size());
    EXPECT_EQ(stats.outputs, sink.values.size());
    EXPECT_EQ(byKey(sink.values), expected()) << "parallelism " << parallelism;
  }
}

// Checkpoint at K = 1 mid-stream, restore at 4, checkpoint, restore at 2, run to the end.
TEST_P(ParallelRunnerTest, RescalingOneToFourToTwoGivesTheUninterruptedOutput) {
  const Store store = GetParam().make();
  const std::vector<std::pair<std::uint32_t, std::uint64_t>> attempts{{1, 3500}, {4, 4100}, {2, 0}};
  std::optional<ParallelCheckpoint> last;
  std::vector<WindowCount> emitted;
  for (const auto& [parallelism, stopAfter] : attempts) {
    ParallelRunnerOptions o = jobOptions(parallelism, store.placement);
    o.runner.stopAfter = stopAfter;
    o.checkpointOnStop = true;
    std::optional<ParallelCheckpoint> taken;
    o.onCheckpoint = [&](const ParallelCheckpoint& cp) { taken = roundTrip(cp); };
    Job job = makeJob(store, o);
    VectorSource<Event> source(events());
    VectorCollector<WindowCount> sink;
    if (last) {
      const std::string before = sharedContents(store);
      const std::uint64_t committed = job.restore(*last, source);
      EXPECT_EQ(sharedContents(store), before) << "restoring a shared store's checkpoint writes nothing";
      EXPECT_EQ(source.position(), last->sourcePosition);
      ASSERT_LE(committed, emitted.size());
      sink.values.assign(emitted.begin(), emitted.begin() + static_cast<std::ptrdiff_t>(committed));
    }
    job.run(source, sink);
    emitted = std::move(sink.values);
    if (stopAfter == 0) break;
    ASSERT_TRUE(taken.has_value()) << "parallelism " << parallelism;
    EXPECT_EQ(taken->parallelism(), parallelism);
    EXPECT_EQ(taken->sourcePosition, (last ? last->sourcePosition : 0) + stopAfter);
    for (std::uint32_t i = 0; i < parallelism; ++i)
      EXPECT_EQ(taken->parts[i].keyGroups, keyGroupRangeOf(i, parallelism));
    std::size_t entries = 0;
    for (const auto& part : taken->parts) entries += part.savepoint.entryCount();
    if (store.placement == StatePlacement::Shared) {
      EXPECT_EQ(entries, 0u) << "a shared store's checkpoint copies no state";
    } else {
      EXPECT_GT(entries, 0u);
    }
    last = std::move(taken);
  }
  EXPECT_EQ(byKey(emitted), expected());
}

INSTANTIATE_TEST_SUITE_P(Stores, ParallelRunnerTest, ::testing::ValuesIn(stores()),
                         [](const auto& info) { return info.param.name; });

// Killed after periodic checkpoints at K = 4, recovered at K = 2 on new backends.
TEST(ParallelRunner, RecoversFromAPeriodicCheckpointAtAnotherParallelism) {
  const Store store = stores().front().make();
  std::optional<ParallelCheckpoint> last;
  std::vector<WindowCount> emitted;
  {
    ParallelRunnerOptions o = jobOptions(4, store.placement);
    o.runner.checkpointEvery = 3000;
    o.runner.stopAfter = 7700;
    o.onCheckpoint = [&](const ParallelCheckpoint& cp) { last = cp; };
    Job job = makeJob(store, o);
    VectorSource<Event> source(events());
    VectorCollector<WindowCount> sink;
    job.run(source, sink);
    emitted = std::move(sink.values);
  }
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->sourcePosition, 6000u);
  Job job = makeJob(store, jobOptions(2, store.placement));
  VectorSource<Event> source(events());
  VectorCollector<WindowCount> sink;
  const std::uint64_t committed = job.restore(*last, source);
  ASSERT_LE(committed, emitted.size());
  sink.values.assign(emitted.begin(), emitted.begin() + static_cast<std::ptrdiff_t>(committed));
  job.run(source, sink);
  EXPECT_EQ(byKey(sink.values), expected());
}

TEST(ParallelRunner, ACheckpointThatDoesNotTileTheKeyGroupsIsRefusedAndTouchesNothing) {
  const Store store = stores().front().make();
  ParallelCheckpoint good;
  {
    ParallelRunnerOptions o = jobOptions(4, store.placement);
    o.runner.stopAfter = 5000;
    o.checkpointOnStop = true;
    o.onCheckpoint = [&](const ParallelCheckpoint& cp) { good = cp; };
    Job job = makeJob(store, o);
    VectorSource<Event> source(events());
    VectorCollector<WindowCount> sink;
    job.run(source, sink);
  }
  ASSERT_EQ(good.parallelism(), 4u);

  std::vector<std::pair<std::string, ParallelCheckpoint>> bad;
  bad.emplace_back("a part missing", good);
  bad.back().second.parts.erase(bad.back().second.parts.begin() + 2);
  bad.emplace_back("overlapping parts", good);
  bad.back().second.parts[1].keyGroups.first -= 1;
  bad.emplace_back("a part past the last key group", good);
  bad.back().second.parts[3].keyGroups.last = kMaxKeyGroups;
  bad.emplace_back("parts swapped", good);
  std::swap(bad.back().second.parts[0].savepoint, bad.back().second.parts[1].savepoint);
  bad.emplace_back("no parts", good);
  bad.back().second.parts.clear();

  Job job = makeJob(store, jobOptions(2, store.placement));
  VectorSource<Event> source(events());
  for (const auto& [what, cp] : bad) {
    EXPECT_THROW(
        try { job.restore(cp, source); } catch (const CorruptSavepointError& e) {
          EXPECT_NE(std::string(e.what()).find("nothing was restored"), std::string::npos) << e.what();
          throw;
        },
        CorruptSavepointError)
        << what;
    EXPECT_EQ(source.position(), 0u) << what;
  }
  ParallelCheckpoint shared = good;
  shared.placement = StatePlacement::Shared;
  EXPECT_THROW(job.restore(shared, source), std::invalid_argument);
  EXPECT_THROW(ParallelCheckpoint::fromSavepoint(Savepoint{}), CorruptSavepointError);

  // The refusals left the job as it was: the good checkpoint still restores exactly.
  VectorCollector<WindowCount> sink;
  job.restore(good, source);
  job.run(source, sink);
  ByKey rest = byKey(sink.values);
  for (auto& [key, outputs] : rest) {
    const auto& all = expected().at(key);
    ASSERT_LE(outputs.size(), all.size()) << key;
    EXPECT_TRUE(std::equal(outputs.rbegin(), outputs.rend(), all.rbegin())) << key << ": the tail after the checkpoint";
  }
}

TEST(ParallelRunner, ParallelismWithoutKeyGroupsIsRejected) {
  const Store store = stores().front().make();
  for (std::uint32_t parallelism : {0u, kMaxKeyGroups + 1}) {
    try {
      makeJob(store, jobOptions(parallelism, store.placement));
      ADD_FAILURE() << "parallelism " << parallelism << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("parallelism " + std::to_string(parallelism) + " is out of range"),
                std::string::npos)
          << e.what();
    }
  }
}

// A key whose records fail the task (the default error handler).
class FailsOnOneUser final : public KeyedProcessFunction<std::string, Event, WindowCount> {
 public:
  void processElement(const Event& event, Context&, Collector<WindowCount>&) override {
    if (event.userId == events()[4321].userId) throw std::runtime_error("bad record of " + event.userId);
  }
};

TEST(ParallelRunner, AFailingSubtaskStopsTheJobAndRunRethrowsItsError) {
  Job job([](const Subtask&) { return std::make_unique<MemoryBackend>(); },
          [] { return std::make_unique<FailsOnOneUser>(); }, ecommerceKeyOf, ecommerceTimeOf,
          jobOptions(4, StatePlacement::PerSubtask));
  VectorSource<Event> source(events());
  VectorCollector<WindowCount> sink;
  try {
    job.run(source, sink);
    ADD_FAILURE() << "the failure vanished";
  } catch (const AsyncStateException& e) {
    EXPECT_NE(std::string(e.what()).find("bad record of"), std::string::npos) << e.what();
  }
}

#if ASYNCSTATE_TEST_WITH_REDIS
// Every Redis backend of a job sees all its key groups: run as PerSubtask, a restore
// would replace the store K times over. The first checkpoint refuses.
TEST(ParallelRunner, ASharedStoreRunAsPerSubtaskIsRefusedAtTheFirstCheckpoint) {
  const RedisOptions options = redisOptionsFor({sharedRedis().address()});
  ParallelRunnerOptions o = jobOptions(2, StatePlacement::PerSubtask);
  o.runner.checkpointEvery = 2000;
  Job job([options](const Subtask&) { return std::make_unique<RedisBackend>(options); },
          [] { return std::make_unique<ecommerce::AsyncActivityFunction>(); }, ecommerceKeyOf, ecommerceTimeOf, o);
  VectorSource<Event> source(events());
  VectorCollector<WindowCount> sink;
  try {
    job.run(source, sink);
    ADD_FAILURE() << "a checkpoint of a shared store run as PerSubtask was taken";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("StatePlacement::Shared"), std::string::npos) << e.what();
  }
}
#endif

#if ASYNCSTATE_TEST_WITH_REDIS
// Periodic lightweight checkpoints of a shared Redis store, each attempt stopped without
// a final checkpoint (as if killed): restoring the last one at 1 -> 4 -> 2 rolls the
// store back to exactly its contents then, moves no state (the parts hold positions and
// timers), and the job ends with the single runner's output.
TEST(ParallelRunner, LightweightCheckpointsOfASharedStoreRescaleOneToFourToTwoWithoutMovingState) {
  RedisOptions options = redisOptionsFor({sharedRedis().address()});
  options.lightweightCheckpoints = true;
  const auto storeContents = [&options] {
    Savepoint contents;
    RedisBackend(options).snapshot(contents);
    return contents.serialize();
  };
  const std::vector<std::pair<std::uint32_t, std::uint64_t>> attempts{{1, 3500}, {4, 4100}, {2, 0}};
  std::optional<ParallelCheckpoint> last;
  std::string contentsAtLast;
  std::vector<WindowCount> emitted;
  std::size_t checkpointBytes = 0;
  for (const auto& [parallelism, stopAfter] : attempts) {
    ParallelRunnerOptions o = jobOptions(parallelism, StatePlacement::Shared);
    o.runner.lightweightCheckpoints = true;
    o.runner.checkpointEvery = 1000;
    o.runner.stopAfter = stopAfter;
    o.onCheckpoint = [&](const ParallelCheckpoint& cp) {
      last = roundTrip(cp);
      // The subtasks wait at the barrier meanwhile: the store is as the checkpoint has it.
      contentsAtLast = storeContents();
      checkpointBytes = cp.toSavepoint().serialize().size();
      for (const auto& part : cp.parts) {
        EXPECT_EQ(part.savepoint.entryCount(), 0u) << "a lightweight part copies no state";
        const auto& meta = part.savepoint.metadata();
        const auto& first = cp.parts.front().savepoint.metadata();
        ASSERT_TRUE(meta.contains(kLightweightCheckpointField)) << "the part names no store checkpoint";
        EXPECT_EQ(meta.at(kLightweightCheckpointField), first.at(kLightweightCheckpointField))
            << "every part names the same store checkpoint";
      }
    };
    Job job([options](const Subtask&) { return std::make_unique<RedisBackend>(options); },
            [] { return std::make_unique<ecommerce::AsyncActivityFunction>(); }, ecommerceKeyOf, ecommerceTimeOf, o);
    VectorSource<Event> source(events());
    VectorCollector<WindowCount> sink;
    if (last) {
      EXPECT_NE(storeContents(), contentsAtLast) << "the stopped attempt wrote after its last checkpoint";
      const std::uint64_t committed = job.restore(*last, source);
      EXPECT_EQ(storeContents(), contentsAtLast) << "the restore rolls the store back to the checkpoint";
      EXPECT_EQ(source.position(), last->sourcePosition);
      ASSERT_LE(committed, emitted.size());
      sink.values.assign(emitted.begin(), emitted.begin() + static_cast<std::ptrdiff_t>(committed));
      std::printf(
          "rescale to %u: the checkpoint is %zu bytes (positions and timers), the store holds %zu bytes "
          "of state, none of which moved\n",
          parallelism, checkpointBytes, contentsAtLast.size());
    }
    job.run(source, sink);
    emitted = std::move(sink.values);
    if (stopAfter == 0) break;
    ASSERT_TRUE(last.has_value()) << "parallelism " << parallelism;
    EXPECT_EQ(last->parallelism(), parallelism);
    EXPECT_EQ(last->sourcePosition % 1000, 0u) << "a periodic checkpoint, not one at the stop";
  }
  EXPECT_EQ(byKey(emitted), expected());
}
#endif

// One memory store shared by every subtask's connection, whose lightweight checkpoints
// are copies of the whole store taken by the first commit of each id: such a copy holds
// exactly the barrier's state only if every subtask drained before the first commit.
struct CopyingStore {
  std::mutex mutex;
  MemoryBackend memory;
  std::map<std::uint64_t, Savepoint> checkpoints;
};

class CopyingConnection final : public StateBackend, public LightweightCheckpoints {
 public:
  CopyingConnection(std::shared_ptr<CopyingStore> store, bool slow) : store_(std::move(store)), slow_(slow) {
    epoch_ = lastCheckpoint().id + 1;
  }
  std::string name() const override { return "copying"; }
  std::uint32_t registerState(const std::string& stateName, StateKind kind) override {
    std::lock_guard lock(store_->mutex);
    return store_->memory.registerState(stateName, kind);
  }
  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    // Lags behind the other subtasks, so that they reach a barrier first.
    if (slow_) std::this_thread::sleep_for(std::chrono::microseconds(300));
    std::lock_guard lock(store_->mutex);
    store_->memory.executeBatch(std::move(batch), sink);
  }
  void snapshot(Savepoint&) override { throw std::logic_error("a connection takes no full snapshot"); }
  void restore(const Savepoint&) override { throw std::logic_error("a connection restores no full snapshot"); }
  BackendStats stats() const override { return {}; }

  bool lightweightCheckpointsEnabled() const override { return true; }
  std::uint64_t commitCheckpoint(const std::map<std::string, std::string>&) override {
    std::lock_guard lock(store_->mutex);
    if (!store_->checkpoints.contains(epoch_)) store_->memory.snapshot(store_->checkpoints[epoch_]);
    return epoch_++;
  }
  LightweightCheckpoint lastCheckpoint() override {
    std::lock_guard lock(store_->mutex);
    return {store_->checkpoints.empty() ? 0 : store_->checkpoints.rbegin()->first, {}};
  }
  std::vector<LightweightCheckpoint> retainedCheckpoints() override { return {lastCheckpoint()}; }
  void rollBackTo(std::uint64_t id) override {
    std::lock_guard lock(store_->mutex);
    store_->memory.restore(store_->checkpoints.at(id));
    store_->checkpoints.erase(store_->checkpoints.upper_bound(id), store_->checkpoints.end());
    epoch_ = id + 1;
  }

 private:
  std::shared_ptr<CopyingStore> store_;
  bool slow_;
  std::uint64_t epoch_ = 1;
};

// Subtask 1 lags: a commit that did not wait for it would copy the store without some of
// its records, and the job restored from that checkpoint would count them again.
TEST(ParallelRunner, ALightweightCheckpointOfASharedStoreCommitsOnlyOnceEverySubtaskDrained) {
  auto store = std::make_shared<CopyingStore>();
  std::optional<ParallelCheckpoint> last;
  std::vector<WindowCount> emitted;
  for (const auto& [parallelism, stopAfter] : std::vector<std::pair<std::uint32_t, std::uint64_t>>{{2, 2500}, {3, 0}}) {
    ParallelRunnerOptions o = jobOptions(parallelism, StatePlacement::Shared);
    o.runner.lightweightCheckpoints = true;
    o.runner.checkpointEvery = 1000;
    o.runner.stopAfter = stopAfter;
    o.onCheckpoint = [&](const ParallelCheckpoint& cp) { last = roundTrip(cp); };
    Job job([store](const Subtask& s) { return std::make_unique<CopyingConnection>(store, s.index == 1); },
            [] { return std::make_unique<ecommerce::AsyncActivityFunction>(); }, ecommerceKeyOf, ecommerceTimeOf, o);
    VectorSource<Event> source(events());
    VectorCollector<WindowCount> sink;
    if (last) {
      const std::uint64_t committed = job.restore(*last, source);
      ASSERT_LE(committed, emitted.size());
      sink.values.assign(emitted.begin(), emitted.begin() + static_cast<std::ptrdiff_t>(committed));
    }
    job.run(source, sink);
    emitted = std::move(sink.values);
    if (stopAfter != 0) {
      ASSERT_TRUE(last.has_value());
      ASSERT_EQ(last->sourcePosition, 2000u);
    }
  }
  EXPECT_EQ(byKey(emitted), expected());
}

TEST(KeyGroupRange, RangesTileTheKeyGroupsAsFlinkAssignsThem) {
  for (std::uint32_t parallelism = 1; parallelism <= kMaxKeyGroups; ++parallelism) {
    std::uint32_t next = 0;
    for (std::uint32_t i = 0; i < parallelism; ++i) {
      const KeyGroupRange r = keyGroupRangeOf(i, parallelism);
      ASSERT_EQ(r.first, next) << parallelism << "/" << i;
      ASSERT_GE(r.size(), kMaxKeyGroups / parallelism);
      ASSERT_LE(r.size(), kMaxKeyGroups / parallelism + 1);
      for (std::uint32_t g = r.first; g <= r.last; ++g) ASSERT_EQ(subtaskOfKeyGroup(g, parallelism), i);
      next = r.last + 1;
    }
    ASSERT_EQ(next, kMaxKeyGroups);
  }
  EXPECT_EQ(keyGroupRangeOf(1, 3), (KeyGroupRange{43, 85}));  // Flink: (1*128+2)/3 .. (2*128-1)/3
  EXPECT_THROW(keyGroupRangeOf(3, 3), std::invalid_argument);
}

}  // namespace
}  // namespace asyncstate::test
