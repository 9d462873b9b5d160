// Epochs (FLIP-425): the epoch manager on its own, in the style of Flink's
// EpochManagerTest; the controller in serial and parallel mode; and the runner's
// watermarks and status changes as non-records, each action exactly once.

#include "support/backends.hpp"
#include "support/ticks.hpp"

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace asyncstate {
namespace {

using testing::Tick;

using Status = EpochManager::Status;

// --- the epoch manager alone ------------------------------------------------------------

TEST(EpochManagerTest, Basic) {
  EpochManager manager;
  EpochManager::Epoch* epoch1 = manager.onRecord();
  EpochManager::Epoch* epoch2 = manager.onRecord();
  EXPECT_EQ(epoch1, epoch2);
  EXPECT_EQ(epoch1->ongoingRecords(), 2u);
  int output = 0;
  manager.onNonRecord({}, [&] { ++output; });
  // record 3 is in a new epoch
  EpochManager::Epoch* epoch3 = manager.onRecord();
  EXPECT_NE(epoch3, epoch1);
  EXPECT_EQ(manager.pendingEpochs(), 1u);
  EXPECT_EQ(manager.oldestPending()->status(), Status::Closed);
  // the first epoch's records are not finished: its action does not run
  EXPECT_FALSE(manager.advance());
  EXPECT_EQ(output, 0);
  EpochManager::completeOneRecord(epoch1);
  EpochManager::completeOneRecord(epoch2);
  EpochManager::completeOneRecord(epoch3);
  EXPECT_TRUE(manager.advance());
  EXPECT_EQ(output, 1);
  // the second epoch's records finished, but no non-record arrived: it stays open
  EXPECT_EQ(manager.pendingEpochs(), 0u);
  EXPECT_EQ(manager.active().ongoingRecords(), 0u);
  EXPECT_EQ(manager.active().status(), Status::Open);
  EXPECT_FALSE(manager.advance());
  EXPECT_EQ(output, 1);
}

TEST(EpochManagerTest, WorkTheTriggerActionStartsFinishesBeforeTheFinalAction) {
  EpochManager manager;
  std::vector<std::string> events;
  EpochManager::Epoch* record = manager.onRecord();
  std::vector<EpochManager::Epoch*> started;
  manager.onNonRecord(
      [&] {
        events.push_back("trigger");
        started.push_back(manager.onRecord());  // e.g. a timer the watermark fires
        started.push_back(manager.onRecord());
        return false;
      },
      [&] { events.push_back("final"); });
  EpochManager::Epoch* later = manager.onRecord();
  EpochManager::completeOneRecord(record);
  manager.advance();
  EXPECT_EQ(events, std::vector<std::string>{"trigger"});
  ASSERT_EQ(started.size(), 2u);
  EXPECT_EQ(started[0], record) << "work started by the trigger action joins its epoch";
  EXPECT_NE(later, record);
  EXPECT_EQ(manager.oldestPending()->status(), Status::Triggering);
  EpochManager::completeOneRecord(started[0]);
  manager.advance();
  EXPECT_EQ(events, std::vector<std::string>{"trigger"});
  EpochManager::completeOneRecord(started[1]);
  manager.advance();
  EXPECT_EQ(events, (std::vector<std::string>{"trigger", "final"}));
  EXPECT_EQ(manager.pendingEpochs(), 0u);
  EXPECT_EQ(later->ongoingRecords(), 1u);  // the next epoch is untouched
}

TEST(EpochManagerTest, EpochsFinishInOrderEvenWhenALaterOneIsDoneFirst) {
  EpochManager manager;
  std::vector<int> finals;
  EpochManager::Epoch* first = manager.onRecord();
  manager.onNonRecord({}, [&] { finals.push_back(1); });
  EpochManager::Epoch* second = manager.onRecord();
  manager.onNonRecord({}, [&] { finals.push_back(2); });
  manager.onNonRecord({}, [&] { finals.push_back(3); });  // an empty epoch
  EpochManager::completeOneRecord(second);
  EXPECT_FALSE(manager.advance());
  EXPECT_TRUE(finals.empty());
  EpochManager::completeOneRecord(first);
  EXPECT_TRUE(manager.advance());
  EXPECT_EQ(finals, (std::vector<int>{1, 2, 3}));
}

TEST(EpochManagerTest, TheTriggerActionRunsAgainWhileItAsksAndStartedWork) {
  EpochManager manager;
  int triggers = 0;
  int finals = 0;
  std::vector<EpochManager::Epoch*> started;
  manager.onNonRecord(
      [&] {
        ++triggers;
        if (triggers <= 2) started.push_back(manager.onRecord());  // timers registering due timers
        return true;
      },
      [&] { ++finals; });
  manager.advance();
  EXPECT_EQ(triggers, 1);
  EpochManager::completeOneRecord(started.at(0));
  manager.advance();
  EXPECT_EQ(triggers, 2);
  EpochManager::completeOneRecord(started.at(1));
  manager.advance();
  // The third run started nothing: asking again is pointless, the epoch finishes.
  EXPECT_EQ(triggers, 3);
  EXPECT_EQ(finals, 1);
  EXPECT_FALSE(manager.advance());
}

TEST(EpochManagerTest, AnActionThatThrowsRunsOnceAndTheEpochsGoOn) {
  EpochManager manager;
  int triggers = 0;
  std::vector<int> finals;
  manager.onNonRecord(
      [&]() -> bool {
        ++triggers;
        throw std::runtime_error("trigger failed");
      },
      [&] { finals.push_back(1); });
  manager.onNonRecord({}, [&] {
    finals.push_back(2);
    throw std::runtime_error("final failed");
  });
  manager.onNonRecord({}, [&] { finals.push_back(3); });
  EXPECT_THROW(manager.advance(), std::runtime_error);
  EXPECT_THROW(manager.advance(), std::runtime_error);
  EXPECT_TRUE(manager.advance());
  EXPECT_FALSE(manager.advance());
  EXPECT_EQ(triggers, 1);
  EXPECT_EQ(finals, (std::vector<int>{1, 2, 3}));
}

// Random interleavings of records, non-records, completions and advance(): every action
// runs exactly once, epochs finish in order, and a final action runs only after every
// record of its epoch -- those its trigger action started included -- completed.
TEST(EpochManagerTest, EachActionRunsExactlyOnceInOrderUnderRandomInterleavings) {
  for (unsigned seed = 1; seed <= 200; ++seed) {
    std::mt19937 rng(seed);
    EpochManager manager;
    struct Live {
      EpochManager::Epoch* epoch;
      int epochIndex;
    };
    std::vector<Live> live;
    std::map<int, int> triggers;
    std::vector<int> finals;
    std::map<int, int> unfinishedOf;  // epoch index -> records not completed
    int nonRecords = 0;
    int currentIndex = 0;
    auto addRecord = [&](int index) {
      live.push_back({manager.onRecord(), index});
      ++unfinishedOf[index];
    };
    for (int step = 0; step < 400; ++step) {
      const unsigned what = rng() % 10;
      if (what < 4) {
        addRecord(currentIndex);
      } else if (what < 5) {
        const int index = currentIndex++;
        ++nonRecords;
        const unsigned timers = rng() % 3;
        manager.onNonRecord(
            [&, index, timers] {
              ++triggers[index];
              for (unsigned t = 0; t < timers; ++t) addRecord(index);
              return false;
            },
            [&, index] {
              EXPECT_EQ(unfinishedOf[index], 0)
                  << "final action of epoch " << index << " before its records, seed " << seed;
              finals.push_back(index);
            });
      } else if (what < 8 && !live.empty()) {
        const std::size_t pick = rng() % live.size();
        EpochManager::completeOneRecord(live[pick].epoch);
        --unfinishedOf[live[pick].epochIndex];
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(pick));
      } else {
        manager.advance();
      }
    }
    while (!live.empty()) {
      EpochManager::completeOneRecord(live.back().epoch);
      --unfinishedOf[live.back().epochIndex];
      live.pop_back();
      manager.advance();
      // Records the trigger actions started in the meantime are completed by this loop too.
    }
    manager.advance();
    ASSERT_EQ(static_cast<int>(finals.size()), nonRecords) << "seed " << seed;
    for (int i = 0; i < nonRecords; ++i) {
      EXPECT_EQ(finals[static_cast<std::size_t>(i)], i) << "seed " << seed;
      EXPECT_EQ(triggers[i], 1) << "epoch " << i << " seed " << seed;
    }
    EXPECT_EQ(manager.pendingEpochs(), 0u);
  }
}

// --- the controller -------------------------------------------------------------------------

ControllerOptions quiet() {
  ControllerOptions o;
  o.log = nullptr;
  return o;
}

// A record reads its key's state and logs when the read came back.
void readingRecord(AsyncExecutionController& controller, ValueState<int>& state, std::vector<std::string>& events,
                   int key, const std::string& name) {
  controller.processRecord(key, [&state, &events, name] {
    events.push_back(name + " start");
    (void)state.asyncValue().thenAccept([&events, name](std::optional<int>) { events.push_back(name + " done"); });
  });
}

std::size_t indexOf(const std::vector<std::string>& events, const std::string& event) {
  const auto it = std::find(events.begin(), events.end(), event);
  EXPECT_NE(it, events.end()) << event;
  return static_cast<std::size_t>(it - events.begin());
}

TEST(EpochControllerTest, SerialModeTheNextRecordRunsAfterTheEpochFinished) {
  MemoryBackend backend;
  AsyncExecutionController controller(backend, quiet());
  ValueState<int> state(controller, ValueStateDescriptor<int>("s"));
  std::vector<std::string> events;
  readingRecord(controller, state, events, 1, "r1");
  controller.processNonRecord(
      [&] {
        events.push_back("trigger");
        readingRecord(controller, state, events, 2, "timer");
        return false;
      },
      [&] { events.push_back("final"); }, EpochMode::Serial);
  readingRecord(controller, state, events, 3, "r2");
  controller.drain();
  EXPECT_EQ(events, (std::vector<std::string>{"r1 start", "r1 done", "trigger", "timer start", "timer done", "final",
                                              "r2 start", "r2 done"}));
}

TEST(EpochControllerTest, ParallelModeLaterRecordsRunWhileTheEpochFinishes) {
  MemoryBackend backend;
  AsyncExecutionController controller(backend, quiet());  // batch of 1000: nothing is answered before drain
  ValueState<int> state(controller, ValueStateDescriptor<int>("s"));
  std::vector<std::string> events;
  readingRecord(controller, state, events, 1, "r1");
  controller.processNonRecord(
      [&] {
        events.push_back("trigger");
        readingRecord(controller, state, events, 2, "timer");
        return false;
      },
      [&] { events.push_back("final"); }, EpochMode::Parallel);
  readingRecord(controller, state, events, 3, "r2");
  EXPECT_EQ(events, (std::vector<std::string>{"r1 start", "r2 start"}));
  EXPECT_EQ(controller.metrics().pendingEpochs, 1u);
  controller.drain();
  EXPECT_LT(indexOf(events, "r1 done"), indexOf(events, "trigger"));
  EXPECT_LT(indexOf(events, "trigger"), indexOf(events, "timer start"));
  EXPECT_LT(indexOf(events, "timer done"), indexOf(events, "final"));
  EXPECT_EQ(std::count(events.begin(), events.end(), "final"), 1);
  EXPECT_EQ(controller.metrics().pendingEpochs, 0u);
}

TEST(EpochControllerTest, AFailingActionFailsTheTaskOnceAndLaterEpochsStillFinish) {
  MemoryBackend backend;
  AsyncExecutionController controller(backend, quiet());
  ValueState<int> state(controller, ValueStateDescriptor<int>("s"));
  std::vector<std::string> events;
  readingRecord(controller, state, events, 1, "r1");  // holds both epochs back until drain
  std::vector<int> finals;
  controller.processNonRecord({}, [] { throw std::runtime_error("watermark sink down"); }, EpochMode::Parallel);
  controller.processNonRecord({}, [&] { finals.push_back(2); }, EpochMode::Parallel);
  try {
    controller.drain();
    FAIL() << "the failed action must fail the task";
  } catch (const AsyncStateException& e) {
    EXPECT_EQ(e.first().operation(), "non-record action");
    EXPECT_EQ(e.first().what(), "watermark sink down");
  }
  EXPECT_EQ(finals, std::vector<int>{2});
  controller.drain();
}

// Parallel mode under shuffled completion order from another thread: every non-record's
// final action runs once, in order, after every record admitted before it and every
// record its trigger action started.
TEST(EpochControllerTest, ParallelModeEachFinalActionOnceInOrderAfterItsRecordsUnderRandomCompletion) {
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    testing::ShufflingBackend backend(seed);
    ControllerOptions o = quiet();
    o.batchSize = 6;
    o.inFlightLimit = 25;
    AsyncExecutionController controller(backend, o);
    ValueState<int> state(controller, ValueStateDescriptor<int>("s"));
    std::vector<bool> finished;
    std::vector<std::size_t> admittedBefore;  // per non-record: records admitted before its trigger ran
    std::vector<std::vector<std::size_t>> startedByTrigger;
    std::vector<int> finals;
    std::mt19937 rng(static_cast<unsigned>(seed));
    auto record = [&](int key) {
      const std::size_t id = finished.size();
      finished.push_back(false);
      controller.processRecord(key, [&, id] {
        (void)state.asyncValue()
            .thenCompose([&](std::optional<int> v) { return state.asyncUpdate(v.value_or(0) + 1); })
            .thenAccept([&, id] { finished[id] = true; });
      });
      return id;
    };
    for (int i = 0; i < 600; ++i) {
      if (rng() % 25 == 0) {
        const std::size_t index = admittedBefore.size();
        admittedBefore.push_back(finished.size());
        startedByTrigger.emplace_back();
        const int timers = static_cast<int>(rng() % 4);
        controller.processNonRecord(
            [&, index, timers] {
              for (std::size_t id = 0; id < admittedBefore[index]; ++id) {
                EXPECT_TRUE(finished[id]) << "trigger " << index << " before record " << id;
              }
              for (int t = 0; t < timers; ++t) startedByTrigger[index].push_back(record(t));
              return false;
            },
            [&, index] {
              for (std::size_t id : startedByTrigger[index]) EXPECT_TRUE(finished[id]) << "final " << index;
              finals.push_back(static_cast<int>(index));
            },
            EpochMode::Parallel);
      } else {
        (void)record(static_cast<int>(rng() % 11));
      }
    }
    controller.drain();
    ASSERT_EQ(finals.size(), admittedBefore.size()) << "seed " << seed;
    for (std::size_t i = 0; i < finals.size(); ++i) EXPECT_EQ(finals[i], static_cast<int>(i)) << "seed " << seed;
    EXPECT_TRUE(std::all_of(finished.begin(), finished.end(), [](bool f) { return f; }));
  }
}

// --- the runner -------------------------------------------------------------------------------

// Counts per key and 100-unit window; a window's timer emits its count.
class WindowCounts final : public KeyedProcessFunction<int, Tick, std::string> {
 public:
  void open(RuntimeContext& ctx) override { counts_ = &ctx.getMapState(MapStateDescriptor<std::int64_t, int>("c")); }
  void processElement(const Tick& tick, Context& ctx, Collector<std::string>&) override {
    const std::int64_t window = tick.time / 100;
    (void)counts_->asyncGet(window).thenCompose([this, &ctx, window](std::optional<int> n) {
      ctx.registerEventTimeTimer(window * 100 + 99);
      return counts_->asyncPut(window, n.value_or(0) + 1);
    });
  }
  void onTimer(std::int64_t timestamp, Context& ctx, Collector<std::string>& out) override {
    const std::int64_t window = timestamp / 100;
    (void)counts_->asyncGet(window).thenAccept([&ctx, &out, window](std::optional<int> n) {
      out.collect(std::to_string(ctx.currentKey()) + "@" + std::to_string(window) + "=" +
                  std::to_string(n.value_or(0)));
    });
  }

 private:
  MapState<std::int64_t, int>* counts_ = nullptr;
};

std::vector<std::string> runWindows(EpochMode mode, std::uint64_t seed, std::vector<std::int64_t>* watermarks) {
  testing::ShufflingBackend backend(seed);
  WindowCounts function;
  RunnerOptions o;
  o.controller.log = nullptr;
  o.controller.batchSize = 8;
  o.controller.inFlightLimit = 40;
  o.watermarkEvery = 23;
  o.epochMode = mode;
  if (watermarks != nullptr) o.onWatermark = [watermarks](std::int64_t w) { watermarks->push_back(w); };
  EmbeddedRunner<int, Tick, std::string> runner(
      backend, function, [](const Tick& t) { return t.key; }, [](const Tick& t) { return t.time; }, o);
  std::vector<Tick> ticks;
  for (int i = 0; i < 1500; ++i) ticks.push_back({i % 7, std::int64_t{i} * 3});  // in order: no late data
  VectorSource<Tick> source(ticks);
  VectorCollector<std::string> sink;
  runner.run(source, sink);
  std::sort(sink.values.begin(), sink.values.end());
  return sink.values;
}

TEST(EpochRunnerTest, ParallelEpochsGiveTheSerialOutputForInOrderInput) {
  std::vector<std::int64_t> serialWatermarks;
  const auto serial = runWindows(EpochMode::Serial, 3, &serialWatermarks);
  ASSERT_GT(serial.size(), 300u);
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    std::vector<std::int64_t> watermarks;
    EXPECT_EQ(runWindows(EpochMode::Parallel, seed, &watermarks), serial) << "seed " << seed;
    EXPECT_EQ(watermarks, serialWatermarks) << "each watermark exactly once, in order";
  }
}

TEST(EpochRunnerTest, ParallelModeEachWatermarkAndStatusChangeOnceAlsoWhenInputGoesIdle) {
  testing::ShufflingBackend backend(9);
  WindowCounts function;
  RunnerOptions o;
  o.controller.log = nullptr;
  o.watermarkEvery = 1000;  // only idleness and the end of input emit watermarks
  o.idleWait = std::chrono::milliseconds(1);
  o.epochMode = EpochMode::Parallel;
  std::vector<std::string> events;
  o.onWatermark = [&](std::int64_t w) { events.push_back("watermark " + std::to_string(w)); };
  o.onWatermarkStatus = [&](WatermarkStatus s) { events.push_back(s == WatermarkStatus::Idle ? "idle" : "active"); };
  EmbeddedRunner<int, Tick, std::string> runner(
      backend, function, [](const Tick& t) { return t.key; }, [](const Tick& t) { return t.time; }, o);
  testing::IdleTickSource source;
  VectorCollector<std::string> sink;
  runner.run(source, sink);
  // 40 records in 11 bursts: after each burst its watermark, then idle; active before the next.
  std::vector<std::string> expected;
  std::int64_t position = 0;
  for (int burst = 0; burst < 11; ++burst) {
    if (burst > 0) expected.push_back("active");
    position += burst == 0 ? 3 : (burst == 10 ? 1 : 4);
    expected.push_back("watermark " + std::to_string((position - 1) * 10));
    expected.push_back("idle");
  }
  expected.push_back("watermark " + std::to_string(std::numeric_limits<std::int64_t>::max()));
  EXPECT_EQ(events, expected);
}

}  // namespace
}  // namespace asyncstate
