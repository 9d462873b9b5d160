// StateFuture: every combinator for values and for void, when continuations run
// (inline on a complete future, at completion on a pending one), how failures travel
// (with their context) and where they end, combineAll/toVector, and misuse.

#include "support/controller_fixture.hpp"
#include "support/outcomes.hpp"

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

using namespace asyncstate;
using asyncstate::test::errorOf;
using asyncstate::test::succeeded;
using asyncstate::test::valueOf;

namespace {

class Boom : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

AsyncError makeError(const std::string& what, const std::string& state = "orders", const std::string& key = "k1",
                     const std::string& operation = "MapState.asyncGet") {
  return AsyncError(std::make_exception_ptr(Boom(what)), state, key, operation);
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

template <class F>
std::string misuseMessage(F&& f) {
  try {
    f();
  } catch (const FutureMisuseError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected FutureMisuseError";
  return {};
}

std::string whatOf(const std::optional<AsyncError>& error) { return error ? error->what() : "<no error>"; }

class FutureTest : public asyncstate::testing::ControllerFixture {};

// --- ready futures and queries -----------------------------------------------

TEST_F(FutureTest, ReadyFuturesAreDone) {
  onTask([&] {
    StateFuture<int> value = completedFuture(3);
    EXPECT_TRUE(value.valid());
    EXPECT_TRUE(value.isDone());
    EXPECT_FALSE(value.isFailed());
    EXPECT_EQ(valueOf(std::move(value)), 3);

    StateFuture<void> done = completedVoidFuture();
    EXPECT_TRUE(done.isDone());
    EXPECT_FALSE(done.isFailed());
    EXPECT_TRUE(succeeded(std::move(done)));

    StateFuture<int> failed = failedFuture<int>(makeError("gone"));
    EXPECT_TRUE(failed.isDone());
    EXPECT_TRUE(failed.isFailed());
    const auto error = errorOf(std::move(failed));
    ASSERT_TRUE(error);
    EXPECT_EQ(error->what(), "gone");
    EXPECT_EQ(error->stateName(), "orders");
    EXPECT_EQ(error->key(), "k1");
    EXPECT_EQ(error->operation(), "MapState.asyncGet");
  });
}

TEST_F(FutureTest, FailedFutureFromPlainExceptionKeepsTypeAndNamesTheRecordKey) {
  controller_.processRecord(std::string("dora"), [&] {
    StateFuture<void> failed = failedFuture<void>(Boom("no stock"));
    EXPECT_TRUE(failed.isFailed());
    const auto error = errorOf(std::move(failed));
    ASSERT_TRUE(error);
    EXPECT_EQ(error->key(), "dora");
    EXPECT_EQ(error->operation(), "failedFuture");
    EXPECT_THROW(error->rethrow(), Boom);
  });
}

TEST_F(FutureTest, PendingFutureIsDoneOnlyOnceItsPromiseIsCompleted) {
  onTask([&] {
    StatePromise<int> ok = controller_.newPromise<int>();
    StatePromise<int> bad = controller_.newPromise<int>();
    StateFuture<int> okFuture = ok.future();
    StateFuture<int> badFuture = bad.future();
    EXPECT_FALSE(okFuture.isDone());
    EXPECT_FALSE(okFuture.isFailed());
    EXPECT_FALSE(badFuture.isDone());

    ok.setValue(5);
    bad.setError(makeError("disk"));
    EXPECT_TRUE(okFuture.isDone());
    EXPECT_FALSE(okFuture.isFailed());
    EXPECT_TRUE(badFuture.isDone());
    EXPECT_TRUE(badFuture.isFailed());
    EXPECT_EQ(valueOf(std::move(okFuture)), 5);
    EXPECT_EQ(whatOf(errorOf(std::move(badFuture))), "disk");
  });
}

// --- thenAccept / thenApply -------------------------------------------------------

TEST_F(FutureTest, ContinuationOnCompletedFutureRunsBeforeTheCallReturns) {
  onTask([&] {
    int seen = 0;
    StateFuture<void> accepted = completedFuture(41).thenAccept([&](int v) { seen = v; });
    EXPECT_EQ(seen, 41);
    EXPECT_TRUE(accepted.isDone());
    EXPECT_TRUE(succeeded(std::move(accepted)));

    bool ran = false;
    StateFuture<void> voidAccepted = completedVoidFuture().thenAccept([&] { ran = true; });
    EXPECT_TRUE(ran);
    EXPECT_TRUE(succeeded(std::move(voidAccepted)));

    StateFuture<std::string> applied = completedFuture(7).thenApply([](int v) { return std::to_string(v * 6); });
    EXPECT_TRUE(applied.isDone());
    EXPECT_EQ(valueOf(std::move(applied)), "42");
  });
}

TEST_F(FutureTest, ContinuationOnCompletedButUnconsumedPendingFutureRunsInline) {
  onTask([&] {
    StatePromise<int> promise = controller_.newPromise<int>();
    StateFuture<int> future = promise.future();
    promise.setValue(9);
    int seen = 0;
    StateFuture<int> next = std::move(future).thenApply([&](int v) {
      seen = v;
      return v + 1;
    });
    EXPECT_EQ(seen, 9);
    EXPECT_EQ(valueOf(std::move(next)), 10);
  });
}

TEST_F(FutureTest, ContinuationOnPendingFutureRunsOnTheTaskThreadWhenThePromiseCompletes) {
  onTask([&] {
    StatePromise<int> promise = controller_.newPromise<int>();
    std::vector<std::string> events;
    std::thread::id ranOn;
    StateFuture<void> done = promise.future()
                                 .thenApply([&](int v) {
                                   events.push_back("apply " + std::to_string(v));
                                   ranOn = std::this_thread::get_id();
                                   return v * 2;
                                 })
                                 .thenAccept([&](int v) { events.push_back("accept " + std::to_string(v)); });
    EXPECT_TRUE(events.empty());
    EXPECT_FALSE(done.isDone());
    events.push_back("complete");
    promise.setValue(21);
    events.push_back("completed");
    EXPECT_EQ(events, (std::vector<std::string>{"complete", "apply 21", "accept 42", "completed"}));
    EXPECT_EQ(ranOn, std::this_thread::get_id());
    EXPECT_TRUE(succeeded(std::move(done)));
  });
}

// One pool block per chain: a value step on a pending future leaves its result in the
// source's block; a stage attached before the step ran gets a block of its own.
TEST_F(FutureTest, PendingValueStepKeepsItsResultInTheSourcesBlock) {
  auto stats = [&] { return controller_.poolStats(); };
  onTask([&] {
    StatePromise<int> promise = controller_.newPromise<int>();
    StateFuture<int> result = promise.future().thenApply([](int v) { return v + 1; });
    EXPECT_EQ(stats().live, 1u);
    promise.setValue(41);
    EXPECT_EQ(stats().live, 1u);  // the producer is done; the block holds the result
    EXPECT_EQ(valueOf(std::move(result)), 42);

    StatePromise<int> chained = controller_.newPromise<int>();
    StateFuture<int> doubled =
        chained.future().thenApply([](int v) { return v + 1; }).thenApply([](int v) { return v * 2; });
    EXPECT_EQ(stats().live, 2u);
    bool accepted = false;
    StateFuture<void> done = std::move(doubled).thenAccept([&](int v) {
      EXPECT_EQ(v, 4);
      accepted = true;
    });
    EXPECT_EQ(stats().live, 3u);
    chained.setValue(1);
    EXPECT_TRUE(accepted);
    EXPECT_TRUE(succeeded(std::move(done)));

    // A result too large for the source's block gets a core of its own.
    StatePromise<int> grows = controller_.newPromise<int>();
    StateFuture<std::string> text =
        grows.future().thenApply([](int v) { return std::string(100, 'a') + std::to_string(v); });
    EXPECT_EQ(stats().live, 2u);
    grows.setValue(7);
    EXPECT_EQ(valueOf(std::move(text)), std::string(100, 'a') + "7");
  });
  EXPECT_EQ(stats().live, 0u);
}

// A value with a destructor, counted: a core destroys its value in code that knows the
// type (the release itself makes no indirect call), so every way a value can be left
// behind must destroy it exactly once.
struct Counted {
  static inline int live = 0;
  int v;
  explicit Counted(int value) : v(value) { ++live; }
  Counted(const Counted& other) : v(other.v) { ++live; }
  Counted(Counted&& other) noexcept : v(other.v) { ++live; }
  Counted& operator=(const Counted&) = default;
  Counted& operator=(Counted&&) = default;
  ~Counted() { --live; }
};

// Too large for the block of a Core<Counted>: a step to it gets a core of its own.
struct LargeCounted {
  Counted counted;
  std::array<char, 200> padding{};
};

TEST_F(FutureTest, EveryValueLeftInACoreIsDestroyedOnce) {
  auto stats = [&] { return controller_.poolStats(); };
  onTask([&] {
    {  // dropped before and after the value arrived
      StatePromise<Counted> early = controller_.newPromise<Counted>();
      (void)early.future();
      early.setValue(Counted(1));
      StatePromise<Counted> late = controller_.newPromise<Counted>();
      std::optional<StateFuture<Counted>> kept(late.future());
      late.setValue(Counted(2));
      kept.reset();
    }
    EXPECT_EQ(Counted::live, 0);
    {  // a step's result in the source's block, dropped before and after the step ran
      StatePromise<int> early = controller_.newPromise<int>();
      (void)early.future().thenApply([](int v) { return Counted(v); });
      early.setValue(3);
      StatePromise<int> late = controller_.newPromise<int>();
      std::optional<StateFuture<Counted>> kept(late.future().thenApply([](int v) { return Counted(v); }));
      late.setValue(4);
      kept.reset();
    }
    EXPECT_EQ(Counted::live, 0);
    {  // a chain built before its source completed: the second stage has a core of its own
      StatePromise<Counted> source = controller_.newPromise<Counted>();
      std::optional<StateFuture<Counted>> chain(
          source.future().thenApply([](Counted c) { return Counted(c.v + 1); }).thenApply([](Counted c) {
            return Counted(c.v * 2);
          }));
      source.setValue(Counted(5));
      EXPECT_EQ(chain->isDone(), true);
      chain.reset();
    }
    EXPECT_EQ(Counted::live, 0);
    {  // a result too large for the source's block, and a continuation too large for it
      StatePromise<Counted> source = controller_.newPromise<Counted>();
      StateFuture<LargeCounted> large =
          source.future().thenApply([](Counted c) { return LargeCounted{Counted(c.v), {}}; });
      std::array<char, 100> capture{};
      capture[0] = 7;
      StateFuture<int> read =
          std::move(large).thenApply([capture](LargeCounted l) { return l.counted.v + capture[0]; });
      source.setValue(Counted(6));
      EXPECT_EQ(valueOf(std::move(read)), 13);
    }
    EXPECT_EQ(Counted::live, 0);
    {  // a failure: no value to destroy, the error box is freed with the block
      StatePromise<Counted> failing = controller_.newPromise<Counted>();
      StateFuture<Counted> recovered =
          failing.future().thenApply([](Counted c) { return Counted(c.v); }).exceptionally([](const AsyncError&) {
            return Counted(-1);
          });
      failing.setError(makeError("gone"));
      EXPECT_EQ(valueOf(std::move(recovered))->v, -1);
    }
    EXPECT_EQ(Counted::live, 0);
  });
  EXPECT_EQ(stats().live, 0u);
}

TEST_F(FutureTest, FailuresTravelThroughValueStepsSharingABlock) {
  onTask([&] {
    // A throwing step whose result was dropped before it ran: reported once.
    StatePromise<int> throws = controller_.newPromise<int>();
    {
      StateFuture<int> dropped = throws.future().thenApply([](int) -> int { throw Boom("step threw"); });
    }
    throws.setValue(1);
    std::vector<AsyncError> handled = takeUnhandled();
    ASSERT_EQ(handled.size(), 1u);
    EXPECT_EQ(handled[0].what(), "step threw");

    // A failed source, then a step, a recovery and a reader attached while pending.
    StatePromise<int> fails = controller_.newPromise<int>();
    int seen = 0;
    StateFuture<void> done = fails.future()
                                 .thenApply([](int v) { return v + 1; })
                                 .exceptionally([](const AsyncError&) { return -1; })
                                 .thenAccept([&](int v) { seen = v; });
    fails.setError(makeError("source failed"));
    EXPECT_EQ(seen, -1);
    EXPECT_TRUE(succeeded(std::move(done)));

    // A dropped void result of a failing source: reported once.
    StatePromise<int> failsDropped = controller_.newPromise<int>();
    failsDropped.future().thenAccept([](int) { ADD_FAILURE() << "ran on a failure"; });
    failsDropped.setError(makeError("dropped write failed"));
    handled = takeUnhandled();
    ASSERT_EQ(handled.size(), 1u);
    EXPECT_EQ(handled[0].what(), "dropped write failed");

    // combineAll over results still waiting for their steps.
    StatePromise<int> a = controller_.newPromise<int>();
    StatePromise<int> b = controller_.newPromise<int>();
    std::vector<StateFuture<int>> steps;
    steps.push_back(a.future().thenApply([](int v) { return v * 10; }));
    steps.push_back(b.future().thenApply([](int v) { return v * 100; }));
    StateFuture<std::vector<int>> all = combineAll(std::move(steps));
    b.setValue(2);
    a.setValue(1);
    EXPECT_EQ(valueOf(std::move(all)), (std::vector<int>{10, 200}));
  });
}

// The step's own result, used from inside the step: not done yet, and a continuation
// attached there sees the step's value.
TEST_F(FutureTest, ValueStepResultUsedFromInsideTheStep) {
  onTask([&] {
    StatePromise<int> promise = controller_.newPromise<int>();
    StateFuture<int> result;
    int seen = 0;
    result = promise.future().thenApply([&](int v) {
      EXPECT_FALSE(result.isDone());
      std::move(result).thenAccept([&](int r) { seen = r; });
      return v + 1;
    });
    promise.setValue(1);
    EXPECT_EQ(seen, 2);
  });
}

TEST_F(FutureTest, ThenApplyCoversVoidSourcesAndVoidResults) {
  onTask([&] {
    StatePromise<void> promise = controller_.newPromise<void>();
    int calls = 0;
    StateFuture<int> fromVoid = promise.future().thenApply([&] { return ++calls; });
    StateFuture<void> toVoid = std::move(fromVoid).thenApply([&](int v) { calls += v * 10; });
    EXPECT_EQ(calls, 0);
    promise.setValue();
    EXPECT_EQ(calls, 11);
    EXPECT_TRUE(succeeded(std::move(toVoid)));
  });
}

TEST_F(FutureTest, FailureSkipsValueContinuationsAndKeepsItsContext) {
  onTask([&] {
    StatePromise<int> promise = controller_.newPromise<int>();
    bool ran = false;
    StateFuture<void> chained = promise.future()
                                    .thenApply([&](int v) {
                                      ran = true;
                                      return v;
                                    })
                                    .thenCompose([&](int v) {
                                      ran = true;
                                      return completedFuture(v);
                                    })
                                    .thenAccept([&](int) { ran = true; });
    promise.setError(makeError("timeout", "cart", "u9", "ValueState.asyncValue"));
    EXPECT_FALSE(ran);
    const auto error = errorOf(std::move(chained));
    ASSERT_TRUE(error);
    EXPECT_EQ(error->what(), "timeout");
    EXPECT_EQ(error->stateName(), "cart");
    EXPECT_EQ(error->key(), "u9");
    EXPECT_EQ(error->operation(), "ValueState.asyncValue");
  });
  EXPECT_TRUE(takeUnhandled().empty());
}

// --- exceptions thrown by continuations ----------------------------------------

TEST_F(FutureTest, ThrowingContinuationFailsTheReturnedFutureWithOperationAndKey) {
  std::optional<StatePromise<int>> promise;
  std::optional<StateFuture<int>> result;
  controller_.processRecord(std::string("carol"), [&] {
    promise.emplace(controller_.newPromise<int>());
    result.emplace(promise->future().thenApply([](int) -> int { throw Boom("bad price"); }));
  });
  onTask([&] {
    promise->setValue(1);
    const auto error = errorOf(std::move(*result));
    ASSERT_TRUE(error);
    EXPECT_EQ(error->what(), "bad price");
    EXPECT_EQ(error->operation(), "thenApply continuation");
    EXPECT_EQ(error->key(), "carol");
    EXPECT_THROW(error->rethrow(), Boom);
    EXPECT_TRUE(contains(error->message(), "thenApply continuation for key 'carol' failed: bad price"));
    result.reset();
    promise.reset();
  });
}

TEST_F(FutureTest, EveryContinuationKindTurnsAThrowIntoAFailureNamingIt) {
  onTask([&] {
    auto expectFailure = [](auto future, const std::string& operation) {
      const auto error = errorOf(std::move(future));
      ASSERT_TRUE(error) << operation;
      EXPECT_EQ(error->operation(), operation);
      EXPECT_EQ(error->what(), "thrown");
    };
    auto thrower = [](auto&&...) -> int { throw Boom("thrown"); };
    expectFailure(completedFuture(1).thenAccept([](int) { throw Boom("thrown"); }), "thenAccept continuation");
    expectFailure(completedVoidFuture().thenAccept([] { throw Boom("thrown"); }), "thenAccept continuation");
    expectFailure(completedFuture(1).thenApply(thrower), "thenApply continuation");
    expectFailure(completedVoidFuture().thenApply(thrower), "thenApply continuation");
    expectFailure(completedFuture(1).thenCompose([](int) -> StateFuture<int> { throw Boom("thrown"); }),
                  "thenCompose continuation");
    expectFailure(completedFuture(1).thenCombine(completedFuture(2), thrower), "thenCombine continuation");
    expectFailure(completedFuture(1).thenConditionallyAccept([](const int&) -> bool { throw Boom("thrown"); },
                                                             [](int) {}, [](int) {}),
                  "thenConditionallyAccept continuation");
    expectFailure(failedFuture<int>(makeError("first")).exceptionally(thrower), "exceptionally continuation");
    expectFailure(completedFuture(1).handle(thrower), "handle continuation");
    expectFailure(completedVoidFuture().handle(thrower), "handle continuation");
  });
  EXPECT_TRUE(takeUnhandled().empty());
}

TEST_F(FutureTest, NonStandardExceptionIsKeptAsIs) {
  onTask([&] {
    const auto error = errorOf(completedFuture(1).thenApply([](int) -> int { throw 42; }));
    ASSERT_TRUE(error);
    EXPECT_EQ(error->what(), "non-standard exception");
    try {
      error->rethrow();
    } catch (int thrown) {
      EXPECT_EQ(thrown, 42);
    }
  });
}

// --- thenCompose -------------------------------------------------------------------

TEST_F(FutureTest, ThenComposeWaitsForTheInnerFuture) {
  onTask([&] {
    StatePromise<int> outer = controller_.newPromise<int>();
    StatePromise<std::string> inner = controller_.newPromise<std::string>();
    int outerSeen = 0;
    StateFuture<std::string> composed = outer.future().thenCompose([&](int v) {
      outerSeen = v;
      return inner.future();
    });
    outer.setValue(4);
    EXPECT_EQ(outerSeen, 4);
    EXPECT_FALSE(composed.isDone());
    inner.setValue("four");
    EXPECT_EQ(valueOf(std::move(composed)), "four");

    // Ready source, ready inner: complete before thenCompose returns.
    StateFuture<int> ready = completedFuture(2).thenCompose([](int v) { return completedFuture(v + 1); });
    EXPECT_TRUE(ready.isDone());
    EXPECT_EQ(valueOf(std::move(ready)), 3);

    // Void source; inner future that is already complete in its core.
    StatePromise<int> done = controller_.newPromise<int>();
    StateFuture<int> doneFuture = done.future();
    done.setValue(8);
    StatePromise<void> trigger = controller_.newPromise<void>();
    StateFuture<int> fromVoid = trigger.future().thenCompose([&] { return std::move(doneFuture); });
    trigger.setValue();
    EXPECT_EQ(valueOf(std::move(fromVoid)), 8);
  });
}

TEST_F(FutureTest, ThenComposeFailsWithTheInnerFailure) {
  onTask([&] {
    StatePromise<int> inner = controller_.newPromise<int>();
    StateFuture<int> composed = completedFuture(1).thenCompose([&](int) { return inner.future(); });
    EXPECT_FALSE(composed.isDone());
    inner.setError(makeError("inner broke"));
    EXPECT_EQ(whatOf(errorOf(std::move(composed))), "inner broke");
  });
  EXPECT_TRUE(takeUnhandled().empty());
}

// A continuation handing back a future it no longer owns is a bug that must not vanish,
// whether the source was complete already or completed later.
TEST_F(FutureTest, ThenComposeReturningAConsumedFutureFails) {
  onTask([&] {
    for (const bool pendingSource : {false, true}) {
      SCOPED_TRACE(pendingSource ? "pending source" : "ready source");
      StateFuture<int> spent = completedFuture(1);
      StateFuture<int> taken = std::move(spent);
      StatePromise<int> source = controller_.newPromise<int>();
      StateFuture<int> start = pendingSource ? source.future() : completedFuture(0);
      StateFuture<int> composed = std::move(start).thenCompose([&](int) { return std::move(spent); });
      source.setValue(0);
      ASSERT_TRUE(composed.valid());
      const auto error = errorOf(std::move(composed));
      ASSERT_TRUE(error);
      EXPECT_EQ(error->operation(), "thenCompose continuation");
      EXPECT_THROW(error->rethrow(), FutureMisuseError);
      EXPECT_TRUE(contains(error->what(), "consumed"));
    }
  });
}

// --- thenCombine ----------------------------------------------------------------------

TEST_F(FutureTest, ThenCombineWaitsForBothInEitherOrder) {
  onTask([&] {
    for (const bool leftFirst : {true, false}) {
      SCOPED_TRACE(leftFirst ? "left completes first" : "right completes first");
      StatePromise<int> left = controller_.newPromise<int>();
      StatePromise<std::string> right = controller_.newPromise<std::string>();
      int calls = 0;
      StateFuture<std::string> combined = left.future().thenCombine(right.future(), [&](int a, std::string b) {
        ++calls;
        return std::to_string(a) + b;
      });
      if (leftFirst) {
        left.setValue(3);
        EXPECT_FALSE(combined.isDone());
        right.setValue("x");
      } else {
        right.setValue("x");
        EXPECT_FALSE(combined.isDone());
        left.setValue(3);
      }
      EXPECT_EQ(calls, 1);
      EXPECT_EQ(valueOf(std::move(combined)), "3x");
    }
    EXPECT_EQ(valueOf(completedFuture(2).thenCombine(completedFuture(5), [](int a, int b) { return a * b; })), 10);
  });
}

TEST_F(FutureTest, ThenCombineWithVoidOperands) {
  onTask([&] {
    StatePromise<void> left = controller_.newPromise<void>();
    StateFuture<int> leftVoid = left.future().thenCombine(completedFuture(4), [](int b) { return b + 1; });
    StateFuture<int> rightVoid = completedFuture(6).thenCombine(completedVoidFuture(), [](int a) { return a - 1; });
    StateFuture<int> bothVoid = completedVoidFuture().thenCombine(completedVoidFuture(), [] { return 99; });
    EXPECT_FALSE(leftVoid.isDone());
    left.setValue();
    EXPECT_EQ(valueOf(std::move(leftVoid)), 5);
    EXPECT_EQ(valueOf(std::move(rightVoid)), 5);
    EXPECT_EQ(valueOf(std::move(bothVoid)), 99);
  });
}

TEST_F(FutureTest, ThenCombineReportsEachFailureExactlyOnce) {
  onTask([&] {
    // Only the right fails: it fails the result.
    StateFuture<int> rightFails =
        completedFuture(1).thenCombine(failedFuture<int>(makeError("right")), [](int a, int b) { return a + b; });
    EXPECT_EQ(whatOf(errorOf(std::move(rightFails))), "right");
    EXPECT_TRUE(takeUnhandled().empty());

    // Both fail, in both completion orders: the left reaches the result, the right
    // the handler.
    for (const bool leftFirst : {true, false}) {
      SCOPED_TRACE(leftFirst ? "left fails first" : "right fails first");
      StatePromise<int> left = controller_.newPromise<int>();
      StatePromise<int> right = controller_.newPromise<int>();
      StateFuture<int> combined = left.future().thenCombine(right.future(), [](int a, int b) { return a + b; });
      if (leftFirst) {
        left.setError(makeError("left"));
        right.setError(makeError("right"));
      } else {
        right.setError(makeError("right"));
        left.setError(makeError("left"));
      }
      EXPECT_EQ(whatOf(errorOf(std::move(combined))), "left");
      const std::vector<AsyncError> handled = takeUnhandled();
      ASSERT_EQ(handled.size(), 1u);
      EXPECT_EQ(handled[0].what(), "right");
    }
  });
}

// --- thenConditionallyAccept -------------------------------------------------------

TEST_F(FutureTest, ThenConditionallyAcceptRunsExactlyOneBranch) {
  onTask([&] {
    std::vector<std::string> ran;
    auto pick = [&](StateFuture<int>&& source) {
      return std::move(source).thenConditionallyAccept([](const int& v) { return v > 10; },
                                                       [&](int v) { ran.push_back("big " + std::to_string(v)); },
                                                       [&](int v) { ran.push_back("small " + std::to_string(v)); });
    };
    EXPECT_EQ(valueOf(pick(completedFuture(50))), true);
    EXPECT_EQ(valueOf(pick(completedFuture(5))), false);
    StatePromise<int> promise = controller_.newPromise<int>();
    StateFuture<bool> pending = pick(promise.future());
    EXPECT_EQ(ran.size(), 2u);
    promise.setValue(11);
    EXPECT_EQ(valueOf(std::move(pending)), true);
    EXPECT_EQ(ran, (std::vector<std::string>{"big 50", "small 5", "big 11"}));

    int yes = 0;
    int no = 0;
    EXPECT_EQ(
        valueOf(completedVoidFuture().thenConditionallyAccept([] { return false; }, [&] { ++yes; }, [&] { ++no; })),
        false);
    EXPECT_EQ(yes, 0);
    EXPECT_EQ(no, 1);
  });
}

// --- exceptionally / handle ----------------------------------------------------------

TEST_F(FutureTest, ExceptionallyRecoversAFailureAndPassesASuccessThrough) {
  onTask([&] {
    int calls = 0;
    StateFuture<int> passed = completedFuture(5).exceptionally([&](const AsyncError&) {
      ++calls;
      return -1;
    });
    EXPECT_EQ(valueOf(std::move(passed)), 5);
    EXPECT_EQ(calls, 0);

    StatePromise<int> promise = controller_.newPromise<int>();
    std::optional<AsyncError> seen;
    StateFuture<int> recovered =
        promise.future().thenApply([](int v) { return v; }).exceptionally([&](const AsyncError& e) {
          seen = e;
          return -1;
        });
    EXPECT_FALSE(seen);
    promise.setError(makeError("lost", "visits", "u1", "ValueState.asyncUpdate"));
    ASSERT_TRUE(seen);
    EXPECT_EQ(seen->what(), "lost");
    EXPECT_EQ(seen->stateName(), "visits");
    EXPECT_EQ(seen->key(), "u1");
    EXPECT_EQ(seen->operation(), "ValueState.asyncUpdate");
    EXPECT_EQ(valueOf(std::move(recovered)), -1);

    int voidCalls = 0;
    EXPECT_TRUE(succeeded(failedFuture<void>(makeError("v")).exceptionally([&](const AsyncError&) { ++voidCalls; })));
    EXPECT_TRUE(succeeded(completedVoidFuture().exceptionally([&](const AsyncError&) { ++voidCalls; })));
    EXPECT_EQ(voidCalls, 1);
  });
  EXPECT_TRUE(takeUnhandled().empty());
}

// The original failure counts as delivered to exceptionally; only the new one travels on.
TEST_F(FutureTest, ThrowingExceptionallyReplacesTheFailure) {
  onTask([&] {
    StateFuture<int> replaced = failedFuture<int>(makeError("original")).exceptionally([](const AsyncError&) -> int {
      throw Boom("replacement");
    });
    EXPECT_EQ(whatOf(errorOf(std::move(replaced))), "replacement");
  });
  EXPECT_TRUE(takeUnhandled().empty());
}

TEST_F(FutureTest, HandleSeesEitherOutcome) {
  onTask([&] {
    auto describe = [](std::optional<int> value, const AsyncError* error) {
      return error != nullptr ? "error " + error->what() : "value " + std::to_string(*value);
    };
    EXPECT_EQ(valueOf(completedFuture(3).handle(describe)), "value 3");
    EXPECT_EQ(valueOf(failedFuture<int>(makeError("nope")).handle(describe)), "error nope");

    StatePromise<int> promise = controller_.newPromise<int>();
    StateFuture<std::string> pending = promise.future().handle(describe);
    EXPECT_FALSE(pending.isDone());
    promise.setValue(8);
    EXPECT_EQ(valueOf(std::move(pending)), "value 8");

    auto describeVoid = [](const AsyncError* error) { return error == nullptr ? 0 : 1; };
    EXPECT_EQ(valueOf(completedVoidFuture().handle(describeVoid)), 0);
    EXPECT_EQ(valueOf(failedFuture<void>(makeError("v")).handle(describeVoid)), 1);

    int sideEffect = 0;
    StateFuture<void> voidResult =
        completedFuture(4).handle([&](std::optional<int> v, const AsyncError*) { sideEffect = *v; });
    EXPECT_TRUE(succeeded(std::move(voidResult)));
    EXPECT_EQ(sideEffect, 4);
  });
  EXPECT_TRUE(takeUnhandled().empty());
}

// --- dropping futures: no failure vanishes, none is reported twice -----------------

TEST_F(FutureTest, DroppedFailuresReachTheHandlerOnceAndSuccessesNever) {
  onTask([&] {
    {
      StateFuture<int> dropped = failedFuture<int>(makeError("ready and dropped"));
    }
    std::vector<AsyncError> handled = takeUnhandled();
    ASSERT_EQ(handled.size(), 1u);
    EXPECT_EQ(handled[0].what(), "ready and dropped");

    StatePromise<int> failsLater = controller_.newPromise<int>();
    StatePromise<int> succeedsLater = controller_.newPromise<int>();
    {
      StateFuture<int> dropped = failsLater.future();
    }
    {
      StateFuture<int> dropped = succeedsLater.future().thenApply([](int v) { return v; });
    }
    EXPECT_TRUE(takeUnhandled().empty());  // a pending future carries no failure yet
    succeedsLater.setValue(1);
    EXPECT_TRUE(takeUnhandled().empty());
    failsLater.setError(makeError("pending and dropped"));
    handled = takeUnhandled();
    ASSERT_EQ(handled.size(), 1u);
    EXPECT_EQ(handled[0].what(), "pending and dropped");

    // Failed in its core, then dropped.
    StatePromise<int> failsFirst = controller_.newPromise<int>();
    StateFuture<int> held = failsFirst.future();
    failsFirst.setError(makeError("failed then dropped"));
    EXPECT_TRUE(takeUnhandled().empty());
    {
      StateFuture<int> dropped = std::move(held);
    }
    handled = takeUnhandled();
    ASSERT_EQ(handled.size(), 1u);
    EXPECT_EQ(handled[0].what(), "failed then dropped");

    // Overwritten by assignment.
    StateFuture<int> reassigned = failedFuture<int>(makeError("overwritten"));
    reassigned = completedFuture(1);
    handled = takeUnhandled();
    ASSERT_EQ(handled.size(), 1u);
    EXPECT_EQ(handled[0].what(), "overwritten");
    EXPECT_EQ(valueOf(std::move(reassigned)), 1);
  });
}

// A promise holds its future's reference until future() is called; whatever way it goes
// without handing the future out, the core comes back and a failure is reported once.
TEST_F(FutureTest, PromiseWhoseFutureIsNeverTakenLetsGoOfItsCore) {
  onTask([&] {
    const std::size_t liveBefore = controller_.poolStats().live;
    {
      StatePromise<std::string> completed = controller_.newPromise<std::string>();
      completed.setValue(std::string(64, 'x'));
    }
    EXPECT_TRUE(takeUnhandled().empty());
    {
      StatePromise<int> abandoned = controller_.newPromise<int>();
    }
    std::vector<AsyncError> handled = takeUnhandled();
    ASSERT_EQ(handled.size(), 1u);
    EXPECT_TRUE(contains(handled[0].what(), "broken promise"));

    StatePromise<int> target = controller_.newPromise<int>();
    target = controller_.newPromise<int>();
    handled = takeUnhandled();
    ASSERT_EQ(handled.size(), 1u);
    EXPECT_TRUE(contains(handled[0].what(), "broken promise"));
    StatePromise<int> moved = std::move(target);
    EXPECT_THROW(target.setValue(1), FutureMisuseError);
    moved.setValue(2);
    EXPECT_EQ(valueOf(moved.future()), 2);
    EXPECT_EQ(controller_.poolStats().live, liveBefore);
  });
}

TEST_F(FutureTest, AbandonedPromiseFailsItsFutureInsteadOfLeavingItWaiting) {
  onTask([&] {
    std::optional<AsyncError> seen;
    StateFuture<int> recovered;
    {
      StatePromise<int> abandoned = controller_.newPromise<int>();
      recovered = abandoned.future().exceptionally([&](const AsyncError& e) {
        seen = e;
        return 0;
      });
      EXPECT_FALSE(seen);
    }
    ASSERT_TRUE(seen);
    EXPECT_TRUE(contains(seen->what(), "broken promise"));
    EXPECT_EQ(valueOf(std::move(recovered)), 0);
  });
}

// --- continuations run under the record that attached them ------------------------

TEST_F(FutureTest, ContinuationSeesItsOwnRecordKeyAlsoWhenNested) {
  std::optional<StatePromise<int>> outer;
  std::optional<StatePromise<int>> inner;
  std::vector<std::string> keys;
  auto currentKey = [&] { return decode<std::string>(controller_.currentRecord("test").keyBytes()); };
  StateFuture<void> a;
  StateFuture<void> b;
  controller_.processRecord(std::string("alpha"), [&] {
    outer.emplace(controller_.newPromise<int>());
    a = outer->future().thenAccept([&](int) {
      keys.push_back(currentKey());
      inner->setValue(1);  // completes beta's future from inside alpha's continuation
      keys.push_back(currentKey());
    });
  });
  controller_.processRecord(std::string("beta"), [&] {
    inner.emplace(controller_.newPromise<int>());
    b = inner->future().thenAccept([&](int) { keys.push_back(currentKey()); });
  });
  onTask([&] {
    outer->setValue(0);
    EXPECT_THROW((void)controller_.currentRecord("outside"), FutureMisuseError);
    EXPECT_TRUE(succeeded(std::move(a)));
    EXPECT_TRUE(succeeded(std::move(b)));
  });
  EXPECT_EQ(keys, (std::vector<std::string>{"alpha", "beta", "alpha"}));
  controller_.drain();
  EXPECT_EQ(controller_.metrics().inFlightRecords, 0u);
}

// --- the contract of issue 10: one outcome object, Flink's combinators -------------

TEST_F(FutureTest, HandleReceivesOneOutcomeObject) {
  onTask([&] {
    auto describe = [](Outcome<int> outcome) {
      return outcome.failed() ? "error " + outcome.error().what() : "value " + std::to_string(outcome.value());
    };
    EXPECT_EQ(valueOf(completedFuture(3).handle(describe)), "value 3");
    EXPECT_EQ(valueOf(failedFuture<int>(makeError("nope")).handle(describe)), "error nope");
    StatePromise<int> promise = controller_.newPromise<int>();
    StateFuture<std::string> pending = promise.future().handle(describe);
    promise.setError(makeError("later"));
    EXPECT_EQ(valueOf(std::move(pending)), "error later");
    auto describeVoid = [](Outcome<void> outcome) { return outcome.failed() ? outcome.error().operation() : "ok"; };
    EXPECT_EQ(valueOf(completedVoidFuture().handle(describeVoid)), "ok");
    EXPECT_EQ(valueOf(failedFuture<void>(makeError("v")).handle(describeVoid)), "MapState.asyncGet");
    // value() of a failure rethrows the original exception: the failure is not lost.
    StateFuture<int> rethrown = failedFuture<int>(makeError("inner")).handle([](Outcome<int> o) { return o.value(); });
    EXPECT_EQ(whatOf(errorOf(std::move(rethrown))), "inner");
  });
}

TEST_F(FutureTest, ConditionalApplyAndComposeReportTheBranchAndItsResult) {
  onTask([&] {
    auto isEven = [](int v) { return v % 2 == 0; };
    auto half = [](int v) { return v / 2; };
    auto triple = [](int v) { return static_cast<long>(v) * 3; };
    EXPECT_EQ(valueOf(completedFuture(8).thenConditionallyApply(isEven, half, triple)),
              (std::pair<bool, long>(true, 4)));
    EXPECT_EQ(valueOf(completedFuture(5).thenConditionallyApply(isEven, half, triple)),
              (std::pair<bool, long>(false, 15)));
    int sideEffect = 0;
    EXPECT_EQ(valueOf(completedFuture(3).thenConditionallyApply(
                  isEven, [&](int v) { sideEffect = v; }, [&](int v) { sideEffect = -v; })),
              false);
    EXPECT_EQ(sideEffect, -3);

    StatePromise<int> promise = controller_.newPromise<int>();
    StatePromise<std::string> inner = controller_.newPromise<std::string>();
    StateFuture<std::pair<bool, std::string>> composed = promise.future().thenConditionallyCompose(
        isEven, [&](int) { return inner.future(); }, [](int v) { return completedFuture(std::to_string(v)); });
    promise.setValue(2);
    EXPECT_FALSE(composed.isDone());
    inner.setValue("from the pending branch");
    EXPECT_EQ(valueOf(std::move(composed)), (std::pair<bool, std::string>(true, "from the pending branch")));
    EXPECT_EQ(valueOf(completedFuture(1).thenConditionallyCompose(
                  isEven, [](int) { return completedVoidFuture(); }, [](int) { return completedVoidFuture(); })),
              false);
    EXPECT_EQ(whatOf(errorOf(failedFuture<int>(makeError("source")).thenConditionallyApply(isEven, half, triple))),
              "source");
    EXPECT_EQ(valueOf(completedFuture(4).thenConditionallyAccept(isEven, [&](int v) { sideEffect = v; })), true);
    EXPECT_EQ(sideEffect, 4);
  });
}

TEST_F(FutureTest, ThenCombineFlattensAFunctionReturningAFuture) {
  onTask([&] {
    StatePromise<int> inner = controller_.newPromise<int>();
    StateFuture<int> combined = completedFuture(2).thenCombine(completedFuture(3), [&](int a, int b) {
      return inner.future().thenApply([a, b](int c) { return a * b + c; });
    });
    EXPECT_FALSE(combined.isDone());
    inner.setValue(10);
    EXPECT_EQ(valueOf(std::move(combined)), 16);
  });
}

TEST_F(FutureTest, VariadicCombineAllGivesATupleOfDifferentTypes) {
  onTask([&] {
    StatePromise<std::string> name = controller_.newPromise<std::string>();
    StatePromise<void> write = controller_.newPromise<void>();
    StateFuture<std::tuple<int, std::string, std::monostate>> all =
        combineAll(completedFuture(7), name.future(), write.future());
    write.setValue();
    EXPECT_FALSE(all.isDone());
    name.setValue("ann");
    EXPECT_EQ(valueOf(std::move(all)), (std::tuple<int, std::string, std::monostate>(7, "ann", {})));

    // The first failure fails the result; the second goes to the handler: each seen once.
    StatePromise<int> a = controller_.newPromise<int>();
    StatePromise<bool> b = controller_.newPromise<bool>();
    StateFuture<std::tuple<int, bool>> failing = combineAll(a.future(), b.future());
    b.setError(makeError("first"));
    a.setError(makeError("second"));
    EXPECT_EQ(whatOf(errorOf(std::move(failing))), "first");
    std::vector<AsyncError> reported = takeUnhandled();
    ASSERT_EQ(reported.size(), 1u);
    EXPECT_EQ(reported[0].what(), "second");
  });
  EXPECT_EQ(controller_.poolStats().live, 0u);
}

TEST_F(FutureTest, CombineAllKeepsItsBookkeepingInThePool) {
  auto stats = [&] { return controller_.poolStats(); };
  onTask([&] {
    std::vector<StatePromise<int>> promises;
    std::vector<StateFuture<int>> futures;
    for (int i = 0; i < 40; ++i) {
      promises.push_back(controller_.newPromise<int>());
      futures.push_back(promises.back().future());
    }
    const std::size_t before = stats().allocations;
    StateFuture<std::vector<int>> all = combineAll(std::move(futures));
    EXPECT_EQ(stats().allocations - before, 2u);  // its bookkeeping and the result's core, whatever the count
    for (int i = 0; i < 40; ++i) promises[static_cast<std::size_t>(i)].setValue(i);
    EXPECT_EQ(valueOf(std::move(all))->size(), 40u);
  });
  EXPECT_EQ(stats().heapFallbacks, 0u);
  EXPECT_EQ(stats().live, 0u);
}

// --- combineAll ---------------------------------------------------------------------

TEST_F(FutureTest, CombineAllOfNothingIsReadyAndEmpty) {
  onTask([&] {
    StateFuture<std::vector<int>> none = combineAll(std::vector<StateFuture<int>>{});
    EXPECT_TRUE(none.isDone());
    EXPECT_EQ(valueOf(std::move(none)), std::vector<int>{});
    StateFuture<void> noneVoid = combineAll(std::vector<StateFuture<void>>{});
    EXPECT_TRUE(succeeded(std::move(noneVoid)));
  });
}

TEST_F(FutureTest, CombineAllOfReadyFuturesIsReadyAtOnce) {
  onTask([&] {
    std::vector<StateFuture<int>> futures;
    for (int i = 0; i < 4; ++i) futures.push_back(completedFuture(i * i));
    StateFuture<std::vector<int>> all = combineAll(std::move(futures));
    EXPECT_TRUE(all.isDone());
    EXPECT_EQ(valueOf(std::move(all)), (std::vector<int>{0, 1, 4, 9}));
  });
}

TEST_F(FutureTest, CombineAllWaitsForPendingFuturesAndKeepsInputOrder) {
  onTask([&] {
    std::vector<StatePromise<std::string>> promises;
    std::vector<StateFuture<std::string>> futures;
    futures.push_back(completedFuture(std::string("ready")));
    for (int i = 0; i < 3; ++i) {
      promises.push_back(controller_.newPromise<std::string>());
      futures.push_back(promises.back().future());
    }
    StateFuture<std::vector<std::string>> all = combineAll(std::move(futures));
    promises[2].setValue("c");
    promises[0].setValue("a");
    EXPECT_FALSE(all.isDone());
    promises[1].setValue("b");
    EXPECT_EQ(valueOf(std::move(all)), (std::vector<std::string>{"ready", "a", "b", "c"}));

    StatePromise<void> voidPromise = controller_.newPromise<void>();
    std::vector<StateFuture<void>> voids;
    voids.push_back(completedVoidFuture());
    voids.push_back(voidPromise.future());
    StateFuture<void> allVoid = combineAll(std::move(voids));
    EXPECT_FALSE(allVoid.isDone());
    voidPromise.setValue();
    EXPECT_TRUE(succeeded(std::move(allVoid)));
  });
}

TEST_F(FutureTest, CombineAllWithOneFailureFailsTheResultOnly) {
  onTask([&] {
    StatePromise<int> promise = controller_.newPromise<int>();
    std::vector<StateFuture<int>> futures;
    futures.push_back(completedFuture(1));
    futures.push_back(promise.future());
    futures.push_back(completedFuture(3));
    StateFuture<std::vector<int>> all = combineAll(std::move(futures));
    promise.setError(makeError("one"));
    EXPECT_EQ(whatOf(errorOf(std::move(all))), "one");

    std::vector<StateFuture<void>> voids;
    voids.push_back(completedVoidFuture());
    voids.push_back(failedFuture<void>(makeError("void one")));
    EXPECT_EQ(whatOf(errorOf(combineAll(std::move(voids)))), "void one");
  });
  EXPECT_TRUE(takeUnhandled().empty());
}

// The first failure to complete reaches the result, the later one the handler (as soon
// as it happens), so each is seen exactly once; the result still waits for every input.
TEST_F(FutureTest, CombineAllWithTwoFailuresSendsOneToTheResultAndOneToTheHandler) {
  onTask([&] {
    std::vector<StatePromise<int>> promises;
    std::vector<StateFuture<int>> futures;
    for (int i = 0; i < 3; ++i) {
      promises.push_back(controller_.newPromise<int>());
      futures.push_back(promises.back().future());
    }
    StateFuture<std::vector<int>> all = combineAll(std::move(futures));
    promises[2].setError(makeError("third, first to fail"));
    promises[0].setError(makeError("first, second to fail"));
    EXPECT_FALSE(all.isDone());
    EXPECT_EQ(unhandled_.size(), 1u);
    promises[1].setValue(1);
    EXPECT_EQ(whatOf(errorOf(std::move(all))), "third, first to fail");
  });
  std::vector<AsyncError> handled = takeUnhandled();
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_EQ(handled[0].what(), "first, second to fail");

  onTask([&] {
    std::vector<StateFuture<void>> voids;
    voids.push_back(failedFuture<void>(makeError("void a")));
    voids.push_back(failedFuture<void>(makeError("void b")));
    EXPECT_EQ(whatOf(errorOf(combineAll(std::move(voids)))), "void a");
  });
  handled = takeUnhandled();
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_EQ(handled[0].what(), "void b");
}

// --- toVector ------------------------------------------------------------------------

TEST_F(FutureTest, ToVectorOfReadyAndPendingIterators) {
  onTask([&] {
    StateFuture<std::vector<int>> ready =
        toVector(completedFuture(StateIterator<int>(std::vector<int>{1, 2, 3}, false, {}, nullptr)));
    EXPECT_EQ(valueOf(std::move(ready)), (std::vector<int>{1, 2, 3}));

    StatePromise<StateIterator<std::string>> promise = controller_.newPromise<StateIterator<std::string>>();
    StateFuture<std::vector<std::string>> pending = toVector(promise.future());
    EXPECT_FALSE(pending.isDone());
    promise.setValue(StateIterator<std::string>(std::vector<std::string>{"x", "y"}, false, {}, nullptr));
    EXPECT_EQ(valueOf(std::move(pending)), (std::vector<std::string>{"x", "y"}));

    EXPECT_EQ(valueOf(toVector(completedFuture(StateIterator<int>()))), std::vector<int>{});
    EXPECT_EQ(whatOf(errorOf(toVector(failedFuture<StateIterator<int>>(makeError("scan failed"))))), "scan failed");
  });
  EXPECT_TRUE(takeUnhandled().empty());
}

TEST_F(FutureTest, ToVectorLoadsEveryChunkOfAMapState) {
  ControllerOptions o = options();
  o.iteratorChunkSize = 2;  // 5 entries: three chunks, two of them loaded by toVector
  MemoryBackend backend;
  AsyncExecutionController controller(backend, o);
  MapState<int, std::string> map(controller, MapStateDescriptor<int, std::string>("names"));
  std::optional<StateFuture<std::vector<std::pair<int, std::string>>>> result;
  controller.processRecord(1, [&] {
    std::map<int, std::string> entries{{5, "e"}, {1, "a"}, {3, "c"}, {2, "b"}, {4, "d"}};
    result.emplace(map.asyncPutAll(entries).thenCompose([&] { return toVector(map.asyncEntries()); }));
  });
  controller.drain();
  controller.runOnTaskThread([&] {
    EXPECT_EQ(valueOf(std::move(*result)),
              (std::vector<std::pair<int, std::string>>{{1, "a"}, {2, "b"}, {3, "c"}, {4, "d"}, {5, "e"}}));
  });
  EXPECT_GE(backend.stats().requests, 5u + 3u);
}

// --- misuse ------------------------------------------------------------------------------

TEST_F(FutureTest, ConsumingAFutureTwiceIsMisuse) {
  onTask([&] {
    StateFuture<int> ready = completedFuture(1);
    StateFuture<int> next = std::move(ready).thenApply([](int v) { return v; });
    EXPECT_FALSE(ready.valid());
    std::string message = misuseMessage([&] { (void)std::move(ready).thenAccept([](int) {}); });
    EXPECT_TRUE(contains(message, "already consumed by thenApply"));
    EXPECT_TRUE(contains(message, "thenAccept"));
    EXPECT_TRUE(contains(misuseMessage([&] { (void)ready.isDone(); }), "consumed by thenApply"));

    StatePromise<int> promise = controller_.newPromise<int>();
    StateFuture<int> pending = promise.future();
    StateFuture<int> recovered = std::move(pending).exceptionally([](const AsyncError&) { return 0; });
    message = misuseMessage([&] { (void)std::move(pending).handle([](std::optional<int>, const AsyncError*) {}); });
    EXPECT_TRUE(contains(message, "already consumed by exceptionally"));
    EXPECT_TRUE(contains(misuseMessage([&] { (void)pending.isFailed(); }), "consumed by exceptionally"));
    promise.setValue(2);
    EXPECT_EQ(valueOf(std::move(recovered)), 2);
    EXPECT_EQ(valueOf(std::move(next)), 1);
  });
}

TEST_F(FutureTest, UsingAMovedFromFutureIsMisuse) {
  onTask([&] {
    StateFuture<int> original = completedFuture(1);
    StateFuture<int> moved = std::move(original);
    EXPECT_FALSE(original.valid());
    EXPECT_TRUE(moved.valid());
    const std::string message = misuseMessage([&] { (void)original.isDone(); });
    EXPECT_TRUE(contains(message, "isDone()"));
    EXPECT_TRUE(contains(message, "consumed by a move"));
    EXPECT_TRUE(contains(misuseMessage([&] { (void)original.isFailed(); }), "a move"));
    EXPECT_TRUE(
        contains(misuseMessage([&] { (void)std::move(original).thenApply([](int v) { return v; }); }), "a move"));

    // The promise hands out its future once; asking again is misuse, said at once.
    StatePromise<void> promise = controller_.newPromise<void>();
    StateFuture<void> first = promise.future();
    EXPECT_TRUE(contains(misuseMessage([&] { (void)promise.future(); }), "already taken"));
    promise.setValue();
    EXPECT_TRUE(succeeded(std::move(first)));
    StatePromise<int> defaultedPromise;
    EXPECT_TRUE(contains(misuseMessage([&] { (void)defaultedPromise.future(); }), "default-constructed"));

    StateFuture<int> defaulted;
    EXPECT_FALSE(defaulted.valid());
    EXPECT_THROW((void)defaulted.isDone(), FutureMisuseError);
    EXPECT_EQ(valueOf(std::move(moved)), 1);
  });
}

// Refused as a whole: nothing of the combination may stay behind (the pending input
// before the bad one must not be left pointing at a half-built combination).
TEST_F(FutureTest, CombineAllOfAConsumedFutureIsMisuse) {
  const std::size_t live = controller_.poolStats().live;
  onTask([&] {
    StateFuture<int> spent = completedFuture(1);
    StateFuture<int> taken = std::move(spent);
    StatePromise<int> promise = controller_.newPromise<int>();
    std::vector<StateFuture<int>> futures;
    futures.push_back(promise.future());
    futures.push_back(std::move(spent));
    EXPECT_TRUE(contains(misuseMessage([&] { (void)combineAll(std::move(futures)); }), "consumed"));
    promise.setValue(2);
    EXPECT_EQ(valueOf(std::move(taken)), 1);
  });
  EXPECT_EQ(controller_.poolStats().live, live);
}

}  // namespace
