// Task<T>: straight-line coroutine UDF code over StateFutures. Awaiting ready and
// pending futures, the record's key after a suspension, failures (thrown, awaited,
// caught), and where coroutine frames live.

#include "support/test_backends.hpp"

#include "support/controller_fixture.hpp"
#include "support/outcomes.hpp"

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace asyncstate;
using asyncstate::test::errorOf;
using asyncstate::test::valueOf;
using asyncstate::testing::FailingBackend;
using asyncstate::testing::InjectedFailure;
using asyncstate::testing::ShufflingBackend;

namespace {

class Boom : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// --- coroutines under test (free functions: a coroutine lambda's captures would not
// live in its frame) ------------------------------------------------------------------

Task<int> addOne(StateFuture<int> future) {
  const int value = co_await std::move(future);
  co_return value + 1;
}

Task<void> appendTo(StateFuture<int> future, std::vector<std::string>& events) {
  events.push_back("before await");
  const int value = co_await std::move(future);
  events.push_back("resumed with " + std::to_string(value));
}

Task<int> awaitVoidThenValue(StateFuture<void> first, StateFuture<int> second) {
  co_await std::move(first);
  co_return co_await std::move(second) * 10;
}

Task<int> sumOfTasks(StateFuture<int> a, StateFuture<int> b) {
  const int x = co_await addOne(std::move(a));
  const int y = co_await addOne(std::move(b));
  co_return x + y;
}

Task<int> throwsAfterAwait(StateFuture<int> future) {
  const int value = co_await std::move(future);
  if (value > 0) throw Boom("udf threw after " + std::to_string(value));
  co_return value;
}

Task<int> throwsImmediately() {
  throw Boom("before any await");
  co_return 0;
}

Task<std::optional<int>> readCount(const ValueState<int>& count) { co_return co_await count.asyncValue(); }

Task<int> readThroughNestedTask(const ValueState<int>& count) {
  const std::optional<int> value = co_await readCount(count);
  co_return value.value_or(0);
}

// Catches the awaited failure, then goes on with a fallback.
Task<int> readOrFallback(const ValueState<int>& count, std::string& caught) {
  try {
    const std::optional<int> value = co_await count.asyncValue();
    co_return value.value_or(0);
  } catch (const InjectedFailure& e) {
    caught = e.what();
  }
  co_return -1;
}

Task<int> catchThenThrowSomethingElse(const ValueState<int>& count) {
  try {
    (void)co_await count.asyncValue();
  } catch (const InjectedFailure&) {
    throw Boom("replacement");
  }
  co_return 0;
}

Task<int> catchAndRethrow(const ValueState<int>& count) {
  try {
    (void)co_await count.asyncValue();
  } catch (const InjectedFailure&) {
    throw;
  }
  co_return 0;
}

// A UDF as straight-line code: read-modify-write of two states with several awaits.
Task<void> countAndRemember(const ValueState<int>& count, const ListState<std::string>& items, std::string item,
                            std::map<std::string, std::vector<std::string>>& seen, std::string key) {
  const std::optional<int> current = co_await count.asyncValue();
  co_await count.asyncUpdate(current.value_or(0) + 1);
  co_await items.asyncAdd(item);
  std::vector<std::string> all = co_await toVector(items.asyncGet());
  seen[key] = std::move(all);
}

// Checks the current record after every suspension: it must be this record's, whatever
// other records were resumed in between.
Task<void> keyedIncrement(AsyncExecutionController& controller, const ValueState<int>& count, int key,
                          int& mismatches) {
  auto currentKey = [&] { return decode<int>(controller.currentRecord("keyedIncrement").keyBytes()); };
  mismatches += currentKey() != key;
  const std::optional<int> current = co_await count.asyncValue();
  mismatches += currentKey() != key;
  co_await count.asyncUpdate(current.value_or(0) + 1);
  mismatches += currentKey() != key;
  const std::optional<int> after = co_await count.asyncValue();
  mismatches += currentKey() != key;
  mismatches += after != current.value_or(0) + 1;
}

// Marks when the child's locals are destroyed.
struct Trace {
  std::vector<std::string>* log;
  ~Trace() { log->push_back("child's locals destroyed"); }
};

Task<int> tracedChild(StateFuture<int> future, std::vector<std::string>& log) {
  Trace trace{&log};
  const int value = co_await std::move(future);
  co_return value;
}

Task<void> tracedParent(StateFuture<int> future, std::vector<std::string>& log) {
  const int value = co_await tracedChild(std::move(future), log);
  log.push_back("parent resumed with " + std::to_string(value));
}

Task<int> bigFrame(StateFuture<int> future) {
  std::array<char, 2 * FuturePool::kMaxBlock> scratch{};
  scratch[0] = 3;
  const int value = co_await std::move(future);  // scratch lives across the suspension
  co_return value + scratch[0] + scratch[scratch.size() - 1];
}

class TaskTest : public asyncstate::testing::ControllerFixture {};

// --- awaiting ------------------------------------------------------------------------------

TEST_F(TaskTest, AwaitingReadyFuturesCompletesTheTaskBeforeTheCallReturns) {
  onTask([&] {
    Task<int> task = addOne(completedFuture(41));
    EXPECT_TRUE(task.isDone());
    EXPECT_EQ(valueOf<int>(std::move(task)), 42);

    std::vector<std::string> events;
    Task<void> voidTask = appendTo(completedFuture(7), events);
    EXPECT_TRUE(voidTask.isDone());
    EXPECT_FALSE(voidTask.isFailed());
    EXPECT_EQ(events, (std::vector<std::string>{"before await", "resumed with 7"}));

    EXPECT_EQ(valueOf<int>(awaitVoidThenValue(completedVoidFuture(), completedFuture(2))), 20);
  });
}

TEST_F(TaskTest, AwaitingAPendingFutureResumesWhenItCompletes) {
  onTask([&] {
    StatePromise<int> promise = controller_.newPromise<int>();
    std::vector<std::string> events;
    Task<void> task = appendTo(promise.future(), events);
    EXPECT_FALSE(task.isDone());
    EXPECT_EQ(events, std::vector<std::string>{"before await"});
    promise.setValue(5);
    EXPECT_TRUE(task.isDone());
    EXPECT_EQ(events, (std::vector<std::string>{"before await", "resumed with 5"}));

    StatePromise<void> first = controller_.newPromise<void>();
    StatePromise<int> second = controller_.newPromise<int>();
    Task<int> two = awaitVoidThenValue(first.future(), second.future());
    second.setValue(4);  // completes before it is awaited
    EXPECT_FALSE(two.isDone());
    first.setValue();
    EXPECT_EQ(valueOf<int>(std::move(two)), 40);
  });
}

TEST_F(TaskTest, TasksAwaitTasksAndComposeWithFutures) {
  onTask([&] {
    StatePromise<int> a = controller_.newPromise<int>();
    StatePromise<int> b = controller_.newPromise<int>();
    Task<int> sum = sumOfTasks(a.future(), b.future());
    b.setValue(10);
    EXPECT_FALSE(sum.isDone());
    a.setValue(1);
    EXPECT_EQ(valueOf<int>(std::move(sum)), 13);

    // A Task is a StateFuture: chain it, or return it from thenCompose.
    StatePromise<int> c = controller_.newPromise<int>();
    StateFuture<int> composed = completedFuture(5).thenCompose(
        [&](int v) { return addOne(c.future()).thenApply([v](int w) { return v * w; }); });
    c.setValue(1);
    EXPECT_EQ(valueOf(std::move(composed)), 10);
    StateFuture<int> taskAsFuture = completedFuture(2).thenCompose([](int v) { return addOne(completedFuture(v)); });
    EXPECT_EQ(valueOf(std::move(taskAsFuture)), 3);
  });
}

TEST(TaskWithoutController, RunsOnTheDetachedRuntime) {
  Task<int> task = addOne(completedFuture(1));
  EXPECT_TRUE(task.isDone());
  EXPECT_EQ(valueOf<int>(std::move(task)), 2);
}

// --- state access as straight-line code -----------------------------------------------------

TEST_F(TaskTest, StraightLineUdfWithSeveralAwaitsPerRecord) {
  ValueState<int> count(controller_, ValueStateDescriptor<int>("count"));
  ListState<std::string> items(controller_, ListStateDescriptor<std::string>("items"));
  std::map<std::string, std::vector<std::string>> seen;
  const std::vector<std::pair<std::string, std::string>> input{{"ann", "apple"},  {"bob", "bread"},  {"ann", "avocado"},
                                                               {"cid", "cheese"}, {"bob", "butter"}, {"ann", "anise"}};
  for (const auto& [key, item] : input) {
    controller_.processRecord(key,
                              [&, key = key, item = item] { (void)countAndRemember(count, items, item, seen, key); });
  }
  controller_.drain();
  EXPECT_EQ(seen["ann"], (std::vector<std::string>{"apple", "avocado", "anise"}));
  EXPECT_EQ(seen["bob"], (std::vector<std::string>{"bread", "butter"}));
  EXPECT_EQ(seen["cid"], (std::vector<std::string>{"cheese"}));
  std::map<std::string, std::optional<int>> counts;
  for (const std::string& key : std::vector<std::string>{"ann", "bob", "cid", "dan"}) {
    controller_.processRecord(key, [&, key] { counts[key] = count.value(); });
  }
  EXPECT_EQ(counts["ann"], 3);
  EXPECT_EQ(counts["bob"], 2);
  EXPECT_EQ(counts["cid"], 1);
  EXPECT_EQ(counts["dan"], std::nullopt);
}

// Completions arrive from another thread in shuffled order, so records resume in an
// order unrelated to their arrival; each must still see its own key.
TEST(TaskKeys, CurrentKeyAfterEveryAwaitIsTheRecordsOwn) {
  ShufflingBackend backend(11);
  ControllerOptions o;
  o.log = nullptr;
  o.batchSize = 4;
  o.bufferTimeout = std::chrono::milliseconds(2);
  AsyncExecutionController controller(backend, o);
  ValueState<int> count(controller, ValueStateDescriptor<int>("count"));
  constexpr int kKeys = 25;
  constexpr int kRecordsPerKey = 8;
  int mismatches = 0;
  int started = 0;
  for (int round = 0; round < kRecordsPerKey; ++round) {
    for (int key = 0; key < kKeys; ++key) {
      controller.processRecord(key, [&, key] {
        ++started;
        (void)keyedIncrement(controller, count, key, mismatches);
      });
    }
  }
  controller.drain();
  EXPECT_EQ(started, kKeys * kRecordsPerKey);
  EXPECT_EQ(mismatches, 0);
  for (int key = 0; key < kKeys; ++key) {
    std::optional<int> value;
    controller.processRecord(key, [&] { value = count.value(); });
    EXPECT_EQ(value, kRecordsPerKey) << "key " << key;
  }
  EXPECT_EQ(controller.poolStats().live, 0u);
}

// As in a plain call, the awaited coroutine is finished -- its locals destroyed --
// before its caller goes on: a caller that resumed first could end and free what the
// callee's destructors still touch (a trace span, a guard on the caller's data).
TEST_F(TaskTest, AwaitedTaskIsFinishedBeforeItsCallerResumes) {
  onTask([&] {
    for (const bool pending : {false, true}) {
      SCOPED_TRACE(pending ? "pending" : "ready");
      std::vector<std::string> log;
      StatePromise<int> promise = controller_.newPromise<int>();
      Task<void> task = tracedParent(pending ? promise.future() : completedFuture(1), log);
      promise.setValue(1);
      EXPECT_TRUE(task.isDone());
      EXPECT_EQ(log, (std::vector<std::string>{"child's locals destroyed", "parent resumed with 1"}));
    }
  });
}

// --- failures -----------------------------------------------------------------------------

TEST_F(TaskTest, ExceptionThrownInATaskFailsItsFutureWithTheRecordKey) {
  std::optional<StatePromise<int>> promise;
  std::optional<Task<int>> task;
  controller_.processRecord(std::string("kim"), [&] {
    promise.emplace(controller_.newPromise<int>());
    task.emplace(throwsAfterAwait(promise->future()));
  });
  onTask([&] {
    EXPECT_FALSE(task->isDone());
    promise->setValue(3);
    const auto error = errorOf<int>(std::move(*task));
    ASSERT_TRUE(error);
    EXPECT_EQ(error->what(), "udf threw after 3");
    EXPECT_EQ(error->operation(), "Task");
    EXPECT_EQ(error->key(), "kim");
    EXPECT_THROW(error->rethrow(), Boom);

    Task<int> early = throwsImmediately();
    EXPECT_TRUE(early.isFailed());
    EXPECT_EQ(errorOf<int>(std::move(early))->what(), "before any await");
    task.reset();
    promise.reset();
  });
  controller_.drain();
}

TEST(TaskFailures, UncaughtAwaitedFailureFailsTheTaskWithItsOriginalContext) {
  FailingBackend backend;
  ControllerOptions o;
  o.log = nullptr;
  AsyncExecutionController controller(backend, o);
  ValueState<int> count(controller, ValueStateDescriptor<int>("count"));
  std::optional<AsyncError> direct;
  std::optional<AsyncError> nested;
  controller.processRecord(std::string("lea"), [&] {
    (void)readCount(count).handle([&](std::optional<std::optional<int>>, const AsyncError* e) {
      if (e != nullptr) direct = *e;
    });
    (void)readThroughNestedTask(count).handle([&](std::optional<int>, const AsyncError* e) {
      if (e != nullptr) nested = *e;
    });
  });
  controller.drain();  // would throw if a failure had reached the (fail-the-task) handler
  for (const auto* error : {&direct, &nested}) {
    ASSERT_TRUE(*error);
    EXPECT_EQ((*error)->stateName(), "count");
    EXPECT_EQ((*error)->key(), "lea");
    EXPECT_EQ((*error)->operation(), "ValueState.asyncValue");
    EXPECT_THROW((*error)->rethrow(), InjectedFailure);
  }
}

TEST(TaskFailures, AwaitedFailureCanBeCaughtInsideTheCoroutine) {
  FailingBackend backend;
  ControllerOptions o;
  o.log = nullptr;
  AsyncExecutionController controller(backend, o);
  ValueState<int> count(controller, ValueStateDescriptor<int>("count"));
  std::string caught;
  std::optional<int> result;
  std::optional<AsyncError> replaced;
  std::optional<AsyncError> rethrown;
  controller.processRecord(std::string("max"), [&] {
    (void)readOrFallback(count, caught).thenAccept([&](int v) { result = v; });
    (void)catchThenThrowSomethingElse(count).handle([&](std::optional<int>, const AsyncError* e) {
      if (e != nullptr) replaced = *e;
    });
    (void)catchAndRethrow(count).handle([&](std::optional<int>, const AsyncError* e) {
      if (e != nullptr) rethrown = *e;
    });
  });
  EXPECT_NO_THROW(controller.drain());  // the caught failure counts as delivered
  EXPECT_TRUE(contains(caught, "injected get failure"));
  EXPECT_EQ(result, -1);

  // A new exception after the catch is the Task's own failure, not the awaited one.
  ASSERT_TRUE(replaced);
  EXPECT_EQ(replaced->what(), "replacement");
  EXPECT_EQ(replaced->operation(), "Task");
  EXPECT_EQ(replaced->key(), "max");

  // Rethrowing the awaited exception keeps where it came from.
  ASSERT_TRUE(rethrown);
  EXPECT_EQ(rethrown->operation(), "ValueState.asyncValue");
  EXPECT_EQ(rethrown->stateName(), "count");
}

TEST_F(TaskTest, DroppedFailedTaskReachesTheHandlerOnce) {
  std::optional<StatePromise<int>> promise;
  controller_.processRecord(std::string("ned"), [&] {
    promise.emplace(controller_.newPromise<int>());
    (void)throwsAfterAwait(promise->future());
  });
  EXPECT_TRUE(unhandled_.empty());
  onTask([&] { promise->setValue(1); });
  ASSERT_EQ(unhandled_.size(), 1u);
  EXPECT_EQ(unhandled_[0].what(), "udf threw after 1");
  EXPECT_EQ(unhandled_[0].key(), "ned");
  unhandled_.clear();
  controller_.drain();
}

TEST_F(TaskTest, AwaitingAConsumedFutureFailsTheTask) {
  onTask([&] {
    StateFuture<int> spent = completedFuture(1);
    StateFuture<int> taken = std::move(spent);
    Task<int> task = addOne(std::move(spent));
    const auto error = errorOf<int>(std::move(task));
    ASSERT_TRUE(error);
    EXPECT_THROW(error->rethrow(), FutureMisuseError);
    EXPECT_TRUE(contains(error->what(), "consumed"));
    EXPECT_EQ(valueOf(std::move(taken)), 1);
  });
}

// --- frames come from the pool --------------------------------------------------------------

TEST_F(TaskTest, TaskFramesComeFromTheControllersPool) {
  auto s = [&] { return controller_.poolStats(); };
  onTask([&] {
    const std::size_t allocations = s().allocations;
    const std::size_t live = s().live;
    Task<int> task = addOne(completedFuture(1));
    EXPECT_EQ(s().allocations - allocations, 2u);  // the frame and the Task's result
    EXPECT_EQ(s().live - live, 1u);                // the frame went back when the coroutine finished
    EXPECT_EQ(s().heapFallbacks, 0u);
    EXPECT_EQ(valueOf<int>(std::move(task)), 2);
    EXPECT_EQ(s().live, live);
  });

  ValueState<int> count(controller_, ValueStateDescriptor<int>("count"));
  int mismatches = 0;
  // Fewer than the memory backend's batch, so that no batch goes out before the drain.
  constexpr int kRecords = static_cast<int>(MemoryBackend::kPreferredBatchSize) - 1;
  for (int key = 0; key < kRecords; ++key) {
    controller_.processRecord(key, [&, key] { (void)keyedIncrement(controller_, count, key, mismatches); });
  }
  EXPECT_GT(s().live, static_cast<std::size_t>(kRecords));  // all suspended at once, frames included
  controller_.drain();
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(s().live, 0u);
  EXPECT_EQ(s().heapFallbacks, 0u);
}

TEST_F(TaskTest, OversizedFrameFallsBackToTheHeapAndIsReturned) {
  auto s = [&] { return controller_.poolStats(); };
  onTask([&] {
    StatePromise<int> promise = controller_.newPromise<int>();
    Task<int> task = bigFrame(promise.future());
    EXPECT_EQ(s().heapFallbacks, 1u);
    promise.setValue(1);
    EXPECT_EQ(valueOf<int>(std::move(task)), 4);
  });
  EXPECT_EQ(s().live, 0u);
}

}  // namespace

// --- processElement and onTimer written as coroutines ---------------------------------------

namespace udf {

struct Visit {
  std::string user;
  std::int64_t time;
};

// Each record awaits a pending read held back by `gate` (a test-controlled promise), so
// the test sees the coroutine suspended with its record in flight.
class CountVisits : public KeyedProcessFunction<std::string, Visit, std::string> {
 public:
  void open(RuntimeContext& ctx) override { count_ = &ctx.getState(ValueStateDescriptor<int>("count")); }

  void processElement(const Visit& visit, Context& ctx, Collector<std::string>& out) override {
    const int n = (co_await count_->asyncValue()).value_or(0) + 1;
    if (visit.user == "boom") throw Boom("boom after the first await");
    count_->asyncUpdate(n);
    ctx.registerEventTimeTimer(100);
    out.collect(ctx.currentKey() + "=" + std::to_string(n));
  }

  void onTimer(std::int64_t timestamp, Context& ctx, Collector<std::string>& out) override {
    const std::optional<int> n = co_await count_->asyncValue();
    out.collect("timer " + std::to_string(timestamp) + " " + ctx.currentKey() + "=" + std::to_string(n.value_or(-1)));
  }

 private:
  ValueState<int>* count_ = nullptr;
};

}  // namespace udf

TEST(RecordCoroutines, ProcessElementAndOnTimerMayBeCoroutines) {
  ShufflingBackend backend(3);  // completions out of order: per-key order must still hold
  udf::CountVisits function;
  RunnerOptions options;
  options.controller.log = nullptr;
  EmbeddedRunner<std::string, udf::Visit, std::string> runner(
      backend, function, [](const udf::Visit& v) { return v.user; }, [](const udf::Visit& v) { return v.time; },
      options);
  VectorSource<udf::Visit> source({{"ann", 1}, {"bob", 2}, {"ann", 3}, {"ann", 4}, {"bob", 200}});
  VectorCollector<std::string> sink;
  runner.run(source, sink);
  std::vector<std::string> lines = sink.values;
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"ann=1", "ann=2", "ann=3", "bob=1", "bob=2", "timer 100 ann=3",
                                             "timer 100 bob=2"}));
}

// The record is in flight until the coroutine body has finished: a watermark or a
// later record of its key waits for it.
TEST_F(TaskTest, RecordOfACoroutineFinishesWhenTheBodyDoes) {
  struct Probe : Collector<int> {
    void collect(int v) override { values.push_back(v); }
    std::vector<int> values;
  } out;
  std::optional<StatePromise<int>> gate;
  struct Fn {
    void run(StateFuture<int> future, Collector<int>& collector) { collector.collect(co_await std::move(future)); }
  } fn;
  controller_.processRecord(std::string("kim"), [&] {
    gate.emplace(controller_.newPromise<int>());
    fn.run(gate->future(), out);
  });
  bool secondRan = false;
  controller_.processRecord(std::string("kim"), [&] { secondRan = true; });
  EXPECT_EQ(controller_.metrics().inFlightRecords, 2u);
  EXPECT_FALSE(secondRan);  // the first record of the key is still running (suspended)
  onTask([&] { gate->setValue(7); });
  controller_.drain();
  EXPECT_TRUE(secondRan);
  EXPECT_EQ(out.values, std::vector<int>{7});
  EXPECT_EQ(controller_.metrics().inFlightRecords, 0u);
  EXPECT_EQ(controller_.poolStats().live, 0u);  // the frame went back to the pool
}

TEST(RecordCoroutines, ExceptionEscapingTheBodyReachesTheHandlerOnce) {
  MemoryBackend backend;
  udf::CountVisits function;
  std::vector<AsyncError> errors;
  RunnerOptions options;
  options.controller.log = nullptr;
  options.controller.errorHandler = [&](const AsyncError& e) {
    errors.push_back(e);
    return ErrorAction::Continue;
  };
  EmbeddedRunner<std::string, udf::Visit, std::string> runner(
      backend, function, [](const udf::Visit& v) { return v.user; }, [](const udf::Visit& v) { return v.time; },
      options);
  VectorSource<udf::Visit> source({{"boom", 1}, {"ann", 2}});
  VectorCollector<std::string> sink;
  runner.run(source, sink);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].what(), "boom after the first await");
  EXPECT_EQ(errors[0].key(), "boom");
  EXPECT_EQ(sink.values, (std::vector<std::string>{"ann=1", "timer 100 ann=1"}));
}
