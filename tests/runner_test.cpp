// The embedded runner: checkpoint + restore + replay equals an uninterrupted run,
// watermarks follow every earlier record's last continuation, an epoch's action fires
// exactly once (also on idle input), and snapshots never hold half a record.

#include "ecommerce/async_job.hpp"
#include "ecommerce/sync_job.hpp"
#include "support/backends.hpp"
#include "support/ecommerce_job.hpp"
#include "support/ticks.hpp"

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

namespace asyncstate {
namespace {

using test::ecommerceKeyOf;
using test::ecommerceRunnerOptions;
using test::ecommerceTimeOf;
using testing::Tick;

using ecommerce::Event;
using ecommerce::WindowCount;
using Runner = EmbeddedRunner<std::string, Event, WindowCount>;

template <class Function>
std::vector<WindowCount> uninterrupted(const std::vector<Event>& events, StateBackend& backend) {
  Function function;
  Runner runner(backend, function, ecommerceKeyOf, ecommerceTimeOf, ecommerceRunnerOptions());
  VectorSource<Event> source(events);
  VectorCollector<WindowCount> sink;
  runner.run(source, sink);
  std::sort(sink.values.begin(), sink.values.end());
  return sink.values;
}

class RunnerRecoveryTest : public ::testing::TestWithParam<testing::BackendFactory> {};

TEST_P(RunnerRecoveryTest, RestoreAndReplayFromACheckpointGivesTheUninterruptedOutput) {
  const auto events = ecommerce::generateEvents(30000, 7, 300);
  auto reference = GetParam().make();
  const auto expected = uninterrupted<ecommerce::AsyncActivityFunction>(events, *reference);
  ASSERT_GT(expected.size(), 100u);

  // First attempt: checkpoints every 4000 records, "killed" after 17500.
  std::optional<Savepoint> lastCheckpoint;
  std::vector<WindowCount> emitted;
  {
    auto backend = GetParam().make();
    ecommerce::AsyncActivityFunction function;
    RunnerOptions o = ecommerceRunnerOptions();
    o.checkpointEvery = 4000;
    o.stopAfter = 17500;
    o.onCheckpoint = [&](const Savepoint& sp) { lastCheckpoint = Savepoint::parse(sp.serialize()); };
    Runner runner(*backend, function, ecommerceKeyOf, ecommerceTimeOf, o);
    VectorSource<Event> source(events);
    VectorCollector<WindowCount> sink;
    runner.run(source, sink);
    emitted = std::move(sink.values);
  }
  ASSERT_TRUE(lastCheckpoint.has_value());

  // Second attempt on a fresh backend: restore, keep what the checkpoint had emitted, replay.
  auto backend = GetParam().make();
  ecommerce::AsyncActivityFunction function;
  Runner runner(*backend, function, ecommerceKeyOf, ecommerceTimeOf, ecommerceRunnerOptions());
  VectorSource<Event> source(events);
  const std::uint64_t committed = runner.restore(*lastCheckpoint, source);
  EXPECT_EQ(source.position(), 16000u);
  ASSERT_LE(committed, emitted.size());
  VectorCollector<WindowCount> sink;
  sink.values.assign(emitted.begin(), emitted.begin() + static_cast<std::ptrdiff_t>(committed));
  runner.run(source, sink);
  std::sort(sink.values.begin(), sink.values.end());
  EXPECT_EQ(sink.values, expected);
}

TEST_P(RunnerRecoveryTest, SyncAndAsyncVersionsOfTheJobAgree) {
  const auto events = ecommerce::generateEvents(8000, 3, 200);
  auto a = GetParam().make();
  auto b = GetParam().make();
  EXPECT_EQ(uninterrupted<ecommerce::SyncActivityFunction>(events, *a),
            uninterrupted<ecommerce::AsyncActivityFunction>(events, *b));
}

INSTANTIATE_TEST_SUITE_P(Backends, RunnerRecoveryTest, ::testing::ValuesIn(testing::allBackends()),
                         [](const auto& info) { return info.param.name; });

// Three chained requests per record; the last continuation counts the record done.
class ChainFunction final : public KeyedProcessFunction<int, Tick, int> {
 public:
  void open(RuntimeContext& ctx) override {
    a_ = &ctx.getState(ValueStateDescriptor<int>("a"));
    b_ = &ctx.getState(ValueStateDescriptor<int>("b"));
  }
  void processElement(const Tick&, Context&, Collector<int>&) override {
    (void)a_->asyncValue()
        .thenCompose([this](std::optional<int> a) {
          return a_->asyncUpdate(a.value_or(0) + 1).thenApply([a] { return a.value_or(0) + 1; });
        })
        .thenCompose([this](int next) { return b_->asyncUpdate(next); })
        .thenAccept([this] { ++finished; });
  }
  int finished = 0;

 private:
  ValueState<int>* a_ = nullptr;
  ValueState<int>* b_ = nullptr;
};

TEST(RunnerTest, WatermarkIsEmittedOnlyAfterEveryEarlierRecordsLastContinuation) {
  testing::ShufflingBackend backend(21);
  ChainFunction function;
  RunnerOptions o;
  o.controller.log = nullptr;
  o.controller.batchSize = 9;
  o.watermarkEvery = 37;
  std::vector<std::pair<std::int64_t, int>> atWatermark;
  o.onWatermark = [&](std::int64_t wm) { atWatermark.emplace_back(wm, function.finished); };
  EmbeddedRunner<int, Tick, int> runner(
      backend, function, [](const Tick& t) { return t.key; }, [](const Tick& t) { return t.time; }, o);
  std::vector<Tick> ticks;
  for (int i = 0; i < 1000; ++i) ticks.push_back({i % 23, i});
  VectorSource<Tick> source(ticks);
  VectorCollector<int> sink;
  runner.run(source, sink);
  ASSERT_GE(atWatermark.size(), 27u);
  for (std::size_t i = 0; i + 1 < atWatermark.size(); ++i) {
    // The i-th periodic watermark comes after record 37*(i+1): all of them must be finished.
    EXPECT_EQ(atWatermark[i].second, static_cast<int>(37 * (i + 1))) << "watermark " << atWatermark[i].first;
  }
  EXPECT_EQ(atWatermark.back().second, 1000);
}

TEST(RunnerTest, EachWatermarkFiresExactlyOnceAlsoWhenInputGoesIdle) {
  testing::ShufflingBackend backend(2);
  ChainFunction function;
  RunnerOptions o;
  o.controller.log = nullptr;
  o.watermarkEvery = 1000;  // never reached: only idleness and the end of input emit watermarks
  o.idleWait = std::chrono::milliseconds(1);
  std::vector<std::int64_t> watermarks;
  o.onWatermark = [&](std::int64_t wm) { watermarks.push_back(wm); };
  EmbeddedRunner<int, Tick, int> runner(
      backend, function, [](const Tick& t) { return t.key; }, [](const Tick& t) { return t.time; }, o);
  testing::IdleTickSource source;
  VectorCollector<int> sink;
  runner.run(source, sink);
  ASSERT_GE(watermarks.size(), 3u);
  EXPECT_TRUE(std::is_sorted(watermarks.begin(), watermarks.end()));
  EXPECT_EQ(std::adjacent_find(watermarks.begin(), watermarks.end()), watermarks.end()) << "a watermark fired twice";
  EXPECT_EQ(watermarks.back(), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(function.finished, 40);
}

TEST(RunnerTest, WatermarkStatusChangesAreReportedOnceEachAndIdleFollowsEveryEarlierRecord) {
  testing::ShufflingBackend backend(5);
  ChainFunction function;
  testing::IdleTickSource source;
  RunnerOptions o;
  o.controller.log = nullptr;
  o.idleWait = std::chrono::milliseconds(1);
  std::vector<WatermarkStatus> statuses;
  o.onWatermarkStatus = [&](WatermarkStatus status) {
    statuses.push_back(status);
    if (status == WatermarkStatus::Idle) {
      EXPECT_EQ(function.finished, static_cast<int>(source.position())) << "idle before every earlier record finished";
    }
  };
  EmbeddedRunner<int, Tick, int> runner(
      backend, function, [](const Tick& t) { return t.key; }, [](const Tick& t) { return t.time; }, o);
  VectorCollector<int> sink;
  runner.run(source, sink);
  // 40 records in 11 bursts (3, nine of 4, 1) between idle gaps: idle after each burst,
  // active again before the next.
  ASSERT_EQ(statuses.size(), 21u);
  for (std::size_t i = 0; i < statuses.size(); ++i) {
    EXPECT_EQ(statuses[i], i % 2 == 0 ? WatermarkStatus::Idle : WatermarkStatus::Active) << "change " << i;
  }
}

TEST(RunnerTest, ACheckpointNeverContainsHalfOfARecordsUpdates) {
  testing::ShufflingBackend backend(8);
  ChainFunction function;
  RunnerOptions o;
  o.controller.log = nullptr;
  o.controller.batchSize = 5;
  o.checkpointEvery = 97;
  int checked = 0;
  o.onCheckpoint = [&](const Savepoint& sp) {
    std::map<std::string, std::string> a, b;
    for (const auto& e : sp.states().at("a").entries) a[e.key] = e.value;
    for (const auto& e : sp.states().at("b").entries) b[e.key] = e.value;
    EXPECT_EQ(a, b) << "a record's first update is in the snapshot but not its second";
    ++checked;
  };
  EmbeddedRunner<int, Tick, int> runner(
      backend, function, [](const Tick& t) { return t.key; }, [](const Tick& t) { return t.time; }, o);
  std::vector<Tick> ticks;
  for (int i = 0; i < 2000; ++i) ticks.push_back({i % 31, i});
  VectorSource<Tick> source(ticks);
  VectorCollector<int> sink;
  runner.run(source, sink);
  EXPECT_EQ(checked, 2000 / 97);
}

// A quiet runner on the memory backend that has processed two ticks.
struct RunnerAfterTwoTicks {
  static RunnerOptions quiet() {
    RunnerOptions o;
    o.controller.log = nullptr;
    return o;
  }
  RunnerAfterTwoTicks() { runner.run(source, sink); }

  MemoryBackend backend;
  ChainFunction function;
  EmbeddedRunner<int, Tick, int> runner{backend, function, [](const Tick& t) { return t.key; },
                                        [](const Tick& t) { return t.time; }, quiet()};
  VectorSource<Tick> source{{{1, 1}, {2, 2}}};
  VectorCollector<int> sink;
};

TEST(RunnerTest, RestoreRejectsACheckpointWithoutRunnerFieldsAndTouchesNothing) {
  RunnerAfterTwoTicks ran;
  Savepoint before;
  ran.backend.snapshot(before);
  Savepoint foreign;
  foreign.add("a", StateKind::Value, encode(1), "", encode(99));
  EXPECT_THROW(ran.runner.restore(foreign, ran.source), CorruptSavepointError);
  Savepoint after;
  ran.backend.snapshot(after);
  EXPECT_EQ(before.serialize(), after.serialize());
}

TEST(RunnerTest, RestoreRejectsMalformedRunnerFieldsNamingThemAndTouchesNothing) {
  RunnerAfterTwoTicks ran;
  const Savepoint valid = ran.runner.checkpoint(ran.source);
  const std::string before = valid.serialize();
  const std::vector<std::pair<std::string, std::string>> malformed = {
      {"watermark", std::string(3, '\0')},
      {"schedule.idleWatermarkDone", std::string(1, '\2')},
      {"timers", encode(std::uint32_t{1}) + encode(std::int64_t{5}) + encode(std::uint32_t{255})},
      // Timers are listed once each; a repeat is corruption, not a second timer.
      {"timers", encode(std::vector<std::pair<std::int64_t, std::string>>{{5, "k"}, {5, "k"}})},
  };
  for (const auto& [field, bytes] : malformed) {
    Savepoint checkpoint = valid;
    checkpoint.metadata()[field] = bytes;
    try {
      ran.runner.restore(Savepoint::parse(checkpoint.serialize()), ran.source);
      ADD_FAILURE() << "restore accepted a malformed '" << field << "'";
    } catch (const CorruptSavepointError& e) {
      EXPECT_NE(std::string(e.what()).find("runner field '" + field + "' is malformed"), std::string::npos) << e.what();
    }
    EXPECT_EQ(ran.runner.checkpoint(ran.source).serialize(), before) << field;
  }
}

}  // namespace
}  // namespace asyncstate
