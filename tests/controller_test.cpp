// The execution controller: per-key order under random completion order, the in-flight
// limit, batching by size and timeout, overdraft while draining, the current key in
// continuations, failures, read-your-writes for sync access, and never hanging.

#include "support/backends.hpp"
#include "support/controller_fixture.hpp"

#include <asyncstate/asyncstate.hpp>
#include <asyncstate/backend/latency.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asyncstate {
namespace {

using namespace std::chrono_literals;
using testing::FailingBackend;
using testing::ManualClock;
using testing::ShufflingBackend;

ControllerOptions quiet() {
  ControllerOptions o;
  o.log = nullptr;
  return o;
}

TEST(ControllerTest, PerKeyEffectsHappenInRecordOrderUnderRandomCompletionOrder) {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    ShufflingBackend backend(seed);
    ControllerOptions o = quiet();
    o.batchSize = 7;
    o.inFlightLimit = 40;
    AsyncExecutionController controller(backend, o);
    ValueState<std::vector<int>> history(controller, ValueStateDescriptor<std::vector<int>>("history"));
    std::map<int, std::vector<int>> effects;
    std::mt19937 rng(static_cast<unsigned>(seed));
    for (int seq = 0; seq < 2000; ++seq) {
      const int key = static_cast<int>(rng() % 13);
      controller.processRecord(key, [&, key, seq] {
        (void)history.asyncValue().thenCompose([&, key, seq](std::optional<std::vector<int>> h) {
          effects[key].push_back(seq);
          std::vector<int> next = h.value_or(std::vector<int>{});
          next.push_back(seq);
          return history.asyncUpdate(next);
        });
      });
    }
    controller.drain();
    std::map<int, std::vector<int>> stored;
    for (int key = 0; key < 13; ++key) {
      controller.processRecord(key, [&, key] { stored[key] = history.value().value_or(std::vector<int>{}); });
    }
    controller.drain();
    for (auto& [key, seqs] : effects) {
      EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end())) << "key " << key << " seed " << seed;
      EXPECT_EQ(stored[key], seqs) << "key " << key;  // no update lost, none reordered
    }
    EXPECT_GT(controller.metrics().peakInFlightRecords, 1u);  // records really overlapped
  }
}

TEST(ControllerTest, InFlightLimitIsNeverExceeded) {
  ShufflingBackend backend(3);
  ControllerOptions o = quiet();
  o.inFlightLimit = 8;
  o.batchSize = 4;
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  std::size_t maxSeen = 0;
  for (int i = 0; i < 1000; ++i) {
    controller.processRecord(i % 50, [&] {
      maxSeen = std::max(maxSeen, controller.metrics().inFlightRecords);
      (void)v.asyncValue().thenCompose([&](std::optional<int> x) { return v.asyncUpdate(x.value_or(0) + 1); });
    });
  }
  controller.drain();
  EXPECT_LE(maxSeen, 8u);
  EXPECT_EQ(controller.metrics().peakInFlightRecords, 8u);
  EXPECT_EQ(controller.metrics().inFlightRecords, 0u);
}

TEST(ControllerTest, BatchesBySize) {
  MemoryBackend backend;
  ControllerOptions o = quiet();
  o.batchSize = 10;
  o.bufferTimeout = 1h;
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  for (int i = 0; i < 95; ++i) controller.processRecord(i, [&, i] { (void)v.asyncUpdate(i); });
  EXPECT_EQ(controller.metrics().sizeFlushes, 9u);
  EXPECT_EQ(controller.metrics().bufferedRequests, 5u);
  controller.drain();
  EXPECT_EQ(controller.metrics().batchesSent, 10u);
  EXPECT_EQ(controller.metrics().drainFlushes, 1u);
  EXPECT_EQ(backend.stats().requests, 95u);
}

TEST(ControllerTest, DefaultsFollowFlink) {
  const ControllerOptions defaults;
  EXPECT_EQ(defaults.batchSize, 1000u);
  EXPECT_EQ(defaults.inFlightLimit, 6000u);
  EXPECT_EQ(defaults.bufferTimeout, 1000ms);
}

TEST(ControllerTest, BufferTimeoutFlushesAPartialBatchWhenItExpires) {
  MemoryBackend backend;
  ManualClock time;
  ControllerOptions o = quiet();
  o.batchSize = 1000;
  o.bufferTimeout = 60ms;
  o.clock = time.clock();
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  bool done = false;
  controller.processRecord(1, [&] { (void)v.asyncValue().thenAccept([&](std::optional<int>) { done = true; }); });
  time.advance(59ms);
  controller.poll();
  EXPECT_FALSE(done);
  EXPECT_EQ(controller.metrics().timeoutFlushes, 0u);
  time.advance(1ms);
  controller.poll();
  EXPECT_TRUE(done);
  EXPECT_EQ(controller.metrics().timeoutFlushes, 1u);
}

TEST(ControllerTest, BufferTimeoutSlackIsAFewRecordsWhileRecordsKeepArriving) {
  MemoryBackend backend;
  ManualClock time;
  ControllerOptions o = quiet();
  o.bufferTimeout = 60ms;
  o.clock = time.clock();
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  controller.processRecord(0, [&] { (void)v.asyncValue(); });
  time.advance(60ms);
  int recordsUntilFlushed = 0;
  while (controller.metrics().timeoutFlushes == 0 && recordsUntilFlushed < 1000) {
    controller.processRecord(++recordsUntilFlushed, [] {});
  }
  EXPECT_EQ(controller.metrics().timeoutFlushes, 1u);
  EXPECT_LE(recordsUntilFlushed, 32);
}

TEST(ControllerTest, ABackendThatStopsAnsweringIsReportedAfterTheStallTimeout) {
  testing::HoldingBackend backend;
  ManualClock time(400ms);  // every reading of the clock moves it on
  ControllerOptions o = quiet();
  o.stallTimeout = 1s;
  o.clock = time.clock();
  {
    AsyncExecutionController controller(backend, o);
    ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
    controller.processRecord(1, [&] { (void)v.asyncValue(); });
    try {
      controller.drain();
      FAIL() << "drain must not hang";
    } catch (const AsyncStateException& e) {
      EXPECT_NE(std::string(e.what()).find("answered none of 1 requests within 1000 ms"), std::string::npos)
          << e.what();
    }
  }
  backend.answerAllFromAnotherThread();
}

// Issue 11.1: the backend answered into a controller that had been destroyed.
TEST(ControllerTest, AnswersArrivingAfterTheControllerWasDestroyedAreDroppedHarmlessly) {
  testing::HoldingBackend backend;
  ManualClock time(400ms);
  ControllerOptions o = quiet();
  o.stallTimeout = 1s;
  o.clock = time.clock();
  std::string told;
  {
    AsyncExecutionController controller(backend, o);
    ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
    for (int key = 0; key < 3; ++key) {
      controller.processRecord(key, [&] {
        (void)v.asyncValue().exceptionally([&](const AsyncError& e) {
          told = e.message();
          return std::optional<int>();
        });
      });
    }
    controller.processRecord(0, [] { ADD_FAILURE() << "a record blocked behind a stalled one must not run"; });
    EXPECT_THROW(controller.drain(), AsyncStateException);
  }
  EXPECT_NE(told.find("state 'v' went away before backend holding answered"), std::string::npos) << told;
  EXPECT_EQ(backend.held(), 3u);
  backend.answerAllFromAnotherThread();
}

// States are built on a controller, so they are declared after it and destroyed first.
// Leaving the scope without drain() (an exception unwinding, say) used to leave the
// destructor's drain running the adds' own continuations on the dead state.
TEST(ControllerTest, AStateGoingAwayBeforeItsControllerFirstFinishesWhatItsRecordsStarted) {
  MemoryBackend backend;
  const auto plus = [](const int& a, const int& b) { return a + b; };
  {
    AsyncExecutionController controller(backend, quiet());
    ReducingState<int> sum(controller, ReducingStateDescriptor<int>("sum", plus));
    controller.processRecord(1, [&] {
      sum.asyncAdd(5);
      sum.asyncAdd(7);
    });
  }
  AsyncExecutionController controller(backend, quiet());
  ReducingState<int> sum(controller, ReducingStateDescriptor<int>("sum", plus));
  std::optional<int> total;
  controller.processRecord(1, [&] { sum.asyncGet().thenAccept([&](std::optional<int> v) { total = v; }); });
  controller.drain();
  EXPECT_EQ(total, 12);
}

// A runner whose backend stalls cannot drain when destroyed; the controller, destroyed
// after the runner's states, used to fail the requests then and run their continuations
// on the freed states. The runner now gives them up while its states exist.
TEST(ControllerTest, ARunnerDestroyedWhileItsBackendStallsGivesUpItsRequestsWhileItsStatesExist) {
  struct Sum final : KeyedProcessFunction<int, int, int> {
    ReducingState<int>* sum = nullptr;
    void open(RuntimeContext& ctx) override {
      sum =
          &ctx.getReducingState(ReducingStateDescriptor<int>("sum", [](const int& a, const int& b) { return a + b; }));
    }
    void processElement(const int& v, Context&, Collector<int>&) override { sum->asyncAdd(v); }
  };
  testing::HoldingBackend backend;
  ManualClock time(400ms);
  std::vector<std::string> handled;
  RunnerOptions o;
  o.controller = quiet();
  o.controller.stallTimeout = 1s;
  o.controller.clock = time.clock();
  o.controller.errorHandler = [&](const AsyncError& e) {
    handled.push_back(e.message());
    return ErrorAction::Continue;
  };
  Sum function;
  {
    EmbeddedRunner<int, int, int> runner(
        backend, function, [](const int& v) { return v; }, [](const int&) { return std::int64_t{0}; }, o);
    VectorSource<int> source({1});
    VectorCollector<int> sink;
    EXPECT_THROW(runner.run(source, sink), AsyncStateException);
  }
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_NE(handled[0].find("the runner was destroyed before backend holding answered"), std::string::npos)
      << handled[0];
  EXPECT_EQ(backend.held(), 1u);
  backend.answerAllFromAnotherThread();  // late: dropped
}

// StateBackend's contract: a backend that throws from executeBatch took none of the
// batch. Its requests used to stay outstanding: drain() let the raw exception escape,
// the destructor waited a stall timeout and blamed the backend for not answering, and
// the mailbox leaked.
TEST(ControllerTest, ABatchTheBackendRefusesByThrowingFailsEachOfItsFuturesOnceWithTheBackendsError) {
  struct RefusingFirstBatch final : StateBackend {
    MemoryBackend inner;
    int batches = 0;
    std::string name() const override { return "refusing"; }
    std::uint32_t registerState(const std::string& n, StateKind k) override { return inner.registerState(n, k); }
    void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
      if (batches++ == 0) throw std::runtime_error("connection refused while sending the batch");
      inner.executeBatch(std::move(batch), sink);
    }
    void snapshot(Savepoint& out) override { inner.snapshot(out); }
    void restore(const Savepoint& in) override { inner.restore(in); }
  } backend;
  ManualClock time(400ms);
  ControllerOptions o = quiet();
  o.stallTimeout = 1s;
  o.clock = time.clock();
  std::vector<std::string> handled;
  o.errorHandler = [&](const AsyncError& e) {
    handled.push_back(e.message());
    return ErrorAction::Continue;
  };
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  std::string readFailure;
  controller.processRecord(1, [&] {
    v.asyncUpdate(5);
    (void)v.asyncValue().exceptionally([&](const AsyncError& e) {
      readFailure = e.message();
      return std::optional<int>();
    });
  });
  EXPECT_NO_THROW(controller.drain());
  ASSERT_EQ(handled.size(), 1u) << "the dropped write's failure, once";
  EXPECT_NE(handled[0].find("connection refused while sending the batch"), std::string::npos) << handled[0];
  EXPECT_NE(readFailure.find("connection refused while sending the batch"), std::string::npos) << readFailure;
  EXPECT_EQ(controller.metrics().inFlightRecords, 0u);
  EXPECT_EQ(controller.metrics().pendingRequests, 0u);

  std::optional<int> read;
  controller.processRecord(1, [&] {
    v.asyncUpdate(6);
    v.asyncValue().thenAccept([&](std::optional<int> value) { read = value; });
  });
  controller.drain();
  EXPECT_EQ(read, 6) << "the next batch goes through";
  EXPECT_EQ(handled.size(), 1u);
}

TEST(ControllerTest, HotKeyWithManyDerivedRequestsOverdrawsTheLimitWithoutDeadlock) {
  ShufflingBackend backend(11);
  ControllerOptions o = quiet();
  o.inFlightLimit = 2;
  o.batchSize = 3;
  AsyncExecutionController controller(backend, o);
  ValueState<int> counter(controller, ValueStateDescriptor<int>("counter"));
  std::function<StateFuture<void>(int)> bump = [&](int remaining) -> StateFuture<void> {
    if (remaining == 0) return completedVoidFuture();
    return counter.asyncValue()
        .thenCompose([&](std::optional<int> c) { return counter.asyncUpdate(c.value_or(0) + 1); })
        .thenCompose([&bump, remaining] { return bump(remaining - 1); });
  };
  for (int i = 0; i < 20; ++i) controller.processRecord(std::string("hot"), [&] { (void)bump(25); });
  controller.drain();
  int total = 0;
  controller.processRecord(std::string("hot"), [&] { total = counter.value().value_or(0); });
  EXPECT_EQ(total, 20 * 25);
  EXPECT_EQ(controller.metrics().inFlightRecords, 0u);
}

TEST(ControllerTest, ARecordWaitingOnlyForItsKeyIsAdmittedAtTheLimit) {
  MemoryBackend backend;
  ControllerOptions o = quiet();
  o.inFlightLimit = 1;
  AsyncExecutionController controller(backend, o);
  std::vector<int> order;
  StatePromise<int> event;
  controller.processRecord(7, [&] {
    event = controller.newPromise<int>();
    (void)event.future().thenAccept([&](int) { order.push_back(1); });
  });
  // Same key, at the limit, while the first record waits for an event only the caller
  // can deliver: it queues behind its key instead of failing the task.
  controller.processRecord(7, [&] { order.push_back(2); });
  EXPECT_EQ(controller.metrics().overdraftRecords, 1u);
  EXPECT_EQ(controller.metrics().blockedRecords, 1u);
  controller.runOnTaskThread([&] { event.setValue(1); });
  controller.drain();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(controller.metrics().inFlightRecords, 0u);
}

TEST(ControllerTest, WorkStartedFromInsideARunningRecordIsAdmittedAtTheLimit) {
  ShufflingBackend backend(21);
  ControllerOptions o = quiet();
  o.inFlightLimit = 1;
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  std::vector<std::string> ran;
  controller.processRecord(1, [&] {
    controller.processRecord(1, [&] { ran.emplace_back("same key, from the record"); });
    (void)v.asyncValue().thenAccept([&](std::optional<int>) {
      controller.processRecord(2, [&] { ran.emplace_back("other key, from a continuation"); });
      ran.emplace_back("first");
    });
  });
  controller.drain();
  ASSERT_EQ(ran.size(), 3u);
  EXPECT_EQ(ran[0], "first");  // the same-key record waited for the record that started it
  std::sort(ran.begin() + 1, ran.end());
  EXPECT_EQ(ran[1], "other key, from a continuation");
  EXPECT_EQ(ran[2], "same key, from the record");
  EXPECT_EQ(controller.metrics().overdraftRecords, 2u);
  EXPECT_EQ(controller.metrics().inFlightRecords, 0u);
}

TEST(ControllerTest, HotKeyWorkDerivedInsideRecordsOverdrawsTheLimitWithoutDeadlock) {
  ShufflingBackend backend(13);
  ControllerOptions o = quiet();
  o.inFlightLimit = 2;
  o.batchSize = 3;
  AsyncExecutionController controller(backend, o);
  ValueState<int> counter(controller, ValueStateDescriptor<int>("counter"));
  auto bump = [&] {
    (void)counter.asyncValue().thenCompose(
        [&](std::optional<int> c) { return counter.asyncUpdate(c.value_or(0) + 1); });
  };
  for (int i = 0; i < 10; ++i) {
    controller.processRecord(std::string("hot"), [&] {
      (void)counter.asyncValue()
          .thenCompose([&](std::optional<int> c) { return counter.asyncUpdate(c.value_or(0) + 1); })
          .thenAccept([&] {
            for (int j = 0; j < 5; ++j) controller.processRecord(std::string("hot"), bump);
          });
    });
  }
  controller.drain();
  int total = 0;
  controller.processRecord(std::string("hot"), [&] { total = counter.value().value_or(0); });
  EXPECT_EQ(total, 10 + 10 * 5);
  EXPECT_GE(controller.metrics().overdraftRecords, 50u);
  EXPECT_EQ(controller.metrics().inFlightRecords, 0u);
}

// Issue 11.5.
TEST(ControllerTest, CompletingAStatePromiseTwiceOrUnboundIsMisuse) {
  MemoryBackend backend;
  AsyncExecutionController controller(backend, quiet());
  controller.runOnTaskThread([&] {
    StatePromise<int> promise = controller.newPromise<int>();
    int seen = 0;
    (void)promise.future().thenAccept([&](int x) { seen = x; });
    promise.setValue(1);
    EXPECT_THROW(promise.setValue(2), FutureMisuseError);
    EXPECT_THROW(promise.setError(AsyncError(std::make_exception_ptr(std::runtime_error("late")), "", "", "test")),
                 FutureMisuseError);
    EXPECT_EQ(seen, 1);
    StatePromise<void> unbound;
    EXPECT_THROW(unbound.setValue(), FutureMisuseError);
  });
}

TEST(ControllerTest, ContinuationsSeeTheirOwnRecordsKeyAlsoAfterNesting) {
  ShufflingBackend backend(5);
  ControllerOptions o = quiet();
  o.batchSize = 5;
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  int mismatches = 0;
  int checks = 0;
  auto expectKey = [&](int key) {
    ++checks;
    if (controller.currentRecord("test").keyBytes() != encode(key)) ++mismatches;
  };
  for (int key = 0; key < 300; ++key) {
    controller.processRecord(key, [&, key] {
      (void)v.asyncValue()
          .thenCompose([&, key](std::optional<int>) {
            expectKey(key);
            auto inner = v.asyncUpdate(key).thenAccept([&, key] { expectKey(key); });
            expectKey(key);  // restored after the nested continuation was attached/ran
            return inner;
          })
          .thenAccept([&, key] { expectKey(key); });
    });
  }
  controller.drain();
  EXPECT_EQ(checks, 1200);
  EXPECT_EQ(mismatches, 0);
}

TEST(ControllerTest, ContinuationsRunOnTheTaskThreadNeverOnTheBackendThread) {
  ShufflingBackend backend(9);
  AsyncExecutionController controller(backend, quiet());
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  const auto taskThread = std::this_thread::get_id();
  int offThread = 0;
  int ran = 0;
  for (int i = 0; i < 500; ++i) {
    controller.processRecord(i, [&] {
      (void)v.asyncValue().thenAccept([&](std::optional<int>) {
        ++ran;
        if (std::this_thread::get_id() != taskThread) ++offThread;
      });
    });
  }
  controller.drain();
  EXPECT_EQ(ran, 500);
  EXPECT_EQ(offThread, 0);
  EXPECT_EQ(backend.delivered(), 500u);
}

TEST(ControllerTest, FailedRequestFailsItsFutureAndTheDefaultHandlerFailsTheTask) {
  FailingBackend backend;
  AsyncExecutionController controller(backend, quiet());
  MapState<std::string, int> scores(controller, MapStateDescriptor<std::string, int>("scores"));
  controller.processRecord(std::string("alice"), [&] { (void)scores.asyncGet("math"); });
  try {
    controller.drain();
    FAIL() << "the failure must be rethrown";
  } catch (const AsyncStateException& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("scores"), std::string::npos) << what;
    EXPECT_NE(what.find("alice"), std::string::npos) << what;
    EXPECT_NE(what.find("MapState.asyncGet"), std::string::npos) << what;
    EXPECT_NE(what.find("injected get failure"), std::string::npos) << what;
  }
  EXPECT_EQ(controller.metrics().inFlightRecords, 0u);
  controller.drain();  // the failure was delivered once and is gone
}

TEST(ControllerTest, InFlightCountStaysExactWhenRequestsFail) {
  FailingBackend backend;
  std::mt19937 rng(4);
  backend.shouldFail = [&](const StateRequest&) { return rng() % 3 == 0; };
  ControllerOptions o = quiet();
  std::size_t handled = 0;
  o.errorHandler = [&](const AsyncError&) {
    ++handled;
    return ErrorAction::Continue;
  };
  o.batchSize = 8;
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  std::size_t recovered = 0;
  for (int i = 0; i < 600; ++i) {
    controller.processRecord(i % 17, [&, i] {
      auto f = v.asyncValue().thenCompose([&](std::optional<int> x) { return v.asyncUpdate(x.value_or(0) + 1); });
      if (i % 2 == 0) {
        (void)std::move(f).exceptionally([&](const AsyncError&) { ++recovered; });
      }
    });
  }
  controller.drain();
  EXPECT_EQ(controller.metrics().inFlightRecords, 0u);
  EXPECT_EQ(controller.metrics().pendingRequests, 0u);
  EXPECT_GT(handled, 0u);
  EXPECT_GT(recovered, 0u);
  EXPECT_EQ(controller.metrics().unhandledFailures, handled);
}

TEST(ControllerTest, SyncAccessFlushesBufferedWritesInsteadOfWaitingForTheTimeout) {
  ShufflingBackend backend;
  ControllerOptions o = quiet();
  o.bufferTimeout = 10s;
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  std::optional<int> read;
  const auto start = std::chrono::steady_clock::now();
  controller.processRecord(1, [&] {
    (void)v.asyncUpdate(41);
    read = v.value();
  });
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(read, 41);
}

TEST(ControllerTest, AFutureThatCanNeverCompleteIsReportedInsteadOfHanging) {
  MemoryBackend backend;
  AsyncExecutionController controller(backend, quiet());
  StatePromise<int> never;
  controller.processRecord(1, [&] {
    never = controller.newPromise<int>();
    (void)never.future().thenAccept([](int) {});
  });
  try {
    controller.drain();
    FAIL() << "drain must not hang";
  } catch (const AsyncStateException& e) {
    EXPECT_NE(std::string(e.what()).find("no state request is outstanding"), std::string::npos) << e.what();
  }
  controller.runOnTaskThread([&] { never.setValue(1); });
  controller.drain();
}

TEST(ControllerTest, BlockedKeysAndBufferedRequestsAreVisibleInMetrics) {
  ShufflingBackend backend;
  ControllerOptions o = quiet();
  o.bufferTimeout = 1h;
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  for (int i = 0; i < 3; ++i) controller.processRecord(7, [&] { (void)v.asyncValue(); });
  controller.processRecord(8, [&] { (void)v.asyncValue(); });
  const ControllerMetrics m = controller.metrics();
  EXPECT_EQ(m.inFlightRecords, 4u);
  EXPECT_EQ(m.blockedRecords, 2u);
  EXPECT_EQ(m.blockedKeys, 1u);
  EXPECT_EQ(m.bufferedRequests, 2u);
  controller.drain();
  EXPECT_EQ(controller.metrics().blockedRecords, 0u);
  EXPECT_EQ(controller.metrics().recordsProcessed, 4u);
}

TEST(ControllerTest, AHotKeyHoldingMostOfTheWindowIsNamedInTheLogAndTheSketch) {
  ShufflingBackend backend;
  std::ostringstream log;
  ControllerOptions o = quiet();
  o.log = &log;
  o.bufferTimeout = 1h;
  o.hotKeys.minInFlight = 64;
  o.hotKeys.maxWindowShare = 0.25;
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  // Key 7 is one user with a burst of events among many quiet ones: 60 of 100 in flight.
  for (int i = 0; i < 100; ++i) {
    const int key = i % 5 < 3 ? 7 : 1000 + i;
    controller.processRecord(key, [&] { (void)v.asyncValue(); });
  }
  EXPECT_EQ(controller.hotKeys().hottestKey(), "7");
  EXPECT_GT(controller.hotKeys().hottestShare(), 0.5);
  const std::vector<HotKey> top = controller.hotKeys().waitingRecords().top(1);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].key, "7");
  EXPECT_EQ(top[0].count, 59u);  // every record of the key but the one holding it waited
  EXPECT_NE(log.str().find("hot key '7'"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("salt"), std::string::npos) << log.str();
  controller.drain();
}

TEST(ControllerTest, QuietKeysNeverRaiseAHotKeyWarning) {
  ShufflingBackend backend;
  std::ostringstream log;
  ControllerOptions o = quiet();
  o.log = &log;
  o.bufferTimeout = 1h;
  o.hotKeys.minInFlight = 64;
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  // Every key twice: records wait, but no key holds more than 2 of 200.
  for (int i = 0; i < 200; ++i) controller.processRecord(i / 2, [&] { (void)v.asyncValue(); });
  EXPECT_EQ(controller.hotKeys().policy().warnings(), 0u);
  EXPECT_EQ(log.str().find("hot key"), std::string::npos) << log.str();
  controller.drain();
}

// Issue 10.4: the clock is not read per record, not even for records waiting for their key
// (only the buffer timeout's check every 32 records and latency samples read it).
TEST(ControllerTest, RecordsWaitingForTheirKeyDoNotReadTheClock) {
  ShufflingBackend backend;
  ManualClock time;
  std::size_t clockReads = 0;
  ControllerOptions o = quiet();
  o.bufferTimeout = 1h;
  o.latencySampleEvery = 0;
  o.clock = [&, clock = time.clock()] {
    ++clockReads;
    return clock();
  };
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  // Every key twice among 640 in flight: 320 records wait, no key is hot.
  for (int i = 0; i < 640; ++i) controller.processRecord(i / 2, [&] { (void)v.asyncValue(); });
  EXPECT_EQ(controller.hotKeys().waitingRecords().totalWeight(), 320u);
  EXPECT_LE(clockReads, 640u / 32 + 1);  // one per timeout check, one for the batch's deadline
  controller.drain();
}

TEST(ControllerTest, StartupLogShowsTheConfigurationSoSlowDefaultsAreVisible) {
  MemoryBackend backend(0);
  std::ostringstream log;
  ControllerOptions o;
  o.log = &log;
  AsyncExecutionController controller(backend, o);
  EXPECT_NE(log.str().find("batch size 1000,"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("in-flight limit 6000"), std::string::npos) << log.str();
}

// Batching pays for a round trip; the memory backend has none, and a batch of 1000 only
// holds a wave of records out of the cache: the controller sends what the backend
// prefers, and says so. A wrapper that stands for a remote store lifts the limit.
TEST(ControllerTest, BatchesAreNoLargerThanTheBackendPrefers) {
  struct Sizes : ExecutionObserver {
    void batchSent(std::size_t requests, BatchReason) override { largest = std::max(largest, requests); }
    std::size_t largest = 0;
  };
  auto run = [](StateBackend& backend, std::ostringstream& log) {
    Sizes sizes;
    ControllerOptions o;
    o.log = &log;
    o.observer = &sizes;
    AsyncExecutionController controller(backend, o);
    ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
    for (int key = 0; key < 500; ++key) controller.processRecord(key, [&] { (void)v.asyncValue(); });
    controller.drain();
    return sizes.largest;
  };
  MemoryBackend memory;
  std::ostringstream log;
  EXPECT_EQ(run(memory, log), MemoryBackend::kPreferredBatchSize);
  EXPECT_NE(log.str().find("batch size 64 as the backend prefers, 1000 asked"), std::string::npos) << log.str();

  MemoryBackend unlimited(0);
  std::ostringstream unlimitedLog;
  EXPECT_EQ(run(unlimited, unlimitedLog), 500u);

  LatencyOptions latency;
  latency.latency = std::chrono::microseconds(0);
  LatencyInjectingBackend remote(memory, latency);
  std::ostringstream remoteLog;
  EXPECT_EQ(run(remote, remoteLog), 500u);
}

}  // namespace
}  // namespace asyncstate
