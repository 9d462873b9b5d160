// The execution controller: per-key order under random completion order, the in-flight
// limit, batching by size and timeout, overdraft while draining, the current key in
// continuations, failures, read-your-writes for sync access, and never hanging.

#include "support/backends.hpp"

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

namespace asyncstate {
namespace {

using namespace std::chrono_literals;
using testing::FailingBackend;
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

TEST(ControllerTest, BufferTimeoutFlushesAPartialBatchWithinBoundedSlack) {
  ShufflingBackend backend;
  ControllerOptions o = quiet();
  o.batchSize = 1000;
  o.bufferTimeout = 60ms;
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  bool done = false;
  const auto start = std::chrono::steady_clock::now();
  controller.processRecord(1, [&] { (void)v.asyncValue().thenAccept([&](std::optional<int>) { done = true; }); });
  std::chrono::steady_clock::duration flushedAfter{};
  while (!done && std::chrono::steady_clock::now() - start < 5s) {
    const std::uint64_t before = controller.metrics().timeoutFlushes;
    controller.pollFor(5ms);
    if (before == 0 && controller.metrics().timeoutFlushes == 1)
      flushedAfter = std::chrono::steady_clock::now() - start;
  }
  ASSERT_TRUE(done);
  EXPECT_EQ(controller.metrics().timeoutFlushes, 1u);
  EXPECT_GE(flushedAfter, 60ms);
  EXPECT_LT(flushedAfter, 60ms + 200ms) << "slack is bounded by the idle wait, not by another timeout";
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

TEST(ControllerTest, StartupLogShowsTheConfigurationSoSlowDefaultsAreVisible) {
  MemoryBackend backend;
  std::ostringstream log;
  ControllerOptions o;
  o.log = &log;
  AsyncExecutionController controller(backend, o);
  EXPECT_NE(log.str().find("batch size 1000"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("in-flight limit 6000"), std::string::npos) << log.str();
}

}  // namespace
}  // namespace asyncstate
