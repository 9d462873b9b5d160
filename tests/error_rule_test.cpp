// The error rule: every failure reaches exactly one place -- a downstream
// exceptionally()/handle() or the controller's error handler. A randomized search over
// chain shapes checks it for each injected failure by id; the fixed tests check what
// the built-in handlers do with a failure (fail the task, log and continue) and that
// nothing is lost when the controller shuts down.

#include "support/test_backends.hpp"

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace asyncstate;
using asyncstate::testing::FailingBackend;

namespace {

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// --- randomized: each injected failure is observed exactly once ---------------------------

class Injected : public std::runtime_error {
 public:
  explicit Injected(int failureId) : std::runtime_error("injected #" + std::to_string(failureId)), id(failureId) {}
  int id;
};

// Where every injected failure came from and how often it was observed.
class Ledger {
 public:
  int inject(const char* origin) {
    origins_.emplace_back(origin);
    seen_.push_back(0);
    return static_cast<int>(seen_.size()) - 1;
  }

  void observe(const AsyncError& error, const char* where) {
    try {
      error.rethrow();
    } catch (const Injected& injected) {
      ++seen_.at(static_cast<std::size_t>(injected.id));
      ++observedAt_[where];
    } catch (...) {
      foreign_.push_back(std::string(where) + ": " + error.message());
    }
  }

  std::size_t injected() const { return seen_.size(); }
  const std::vector<int>& seen() const { return seen_; }
  const std::string& origin(std::size_t id) const { return origins_[id]; }
  const std::vector<std::string>& foreign() const { return foreign_; }
  std::size_t observedAt(const std::string& where) const {
    auto it = observedAt_.find(where);
    return it == observedAt_.end() ? 0 : it->second;
  }

 private:
  std::vector<std::string> origins_;
  std::vector<int> seen_;
  std::vector<std::string> foreign_;
  std::map<std::string, std::size_t> observedAt_;
};

// A memory backend that fails the requests `failure` picks, with the exception it returns.
class FlakyBackend final : public StateBackend {
 public:
  std::function<std::exception_ptr(const StateRequest&)> failure;

  std::string name() const override { return "flaky(memory)"; }
  std::uint32_t registerState(const std::string& n, StateKind kind) override { return inner_.registerState(n, kind); }
  void executeBatch(std::vector<StateRequest> batch, CompletionSink& sink) override {
    std::vector<StateRequest> pass;
    for (StateRequest& request : batch) {
      if (std::exception_ptr error = failure ? failure(request) : nullptr) {
        sink.fail(request.ticket, error);
      } else {
        pass.push_back(std::move(request));
      }
    }
    if (!pass.empty()) inner_.executeBatch(std::move(pass), sink);
  }
  void snapshot(Savepoint& out) override { inner_.snapshot(out); }
  void restore(const Savepoint& in) override { inner_.restore(in); }

 private:
  MemoryBackend inner_;
};

constexpr int kMaxDepth = 2;

// Builds random chains and drives them to completion with one controller. Continuations
// build more chain (thenCompose), so the shapes also change at completion time.
class ChainFuzzer {
 public:
  explicit ChainFuzzer(std::uint32_t seed)
      : rng_(seed), controller_(backend_, options()), counter_(controller_, descriptor()) {
    backend_.failure = [this](const StateRequest&) -> std::exception_ptr {
      if (!chance(1, 4)) return nullptr;
      return std::make_exception_ptr(Injected(ledger_.inject("backend request")));
    };
  }

  void run(int chains) {
    for (int chain = 0; chain < chains; ++chain) {
      if (chance(1, 2)) {
        controller_.processRecord(chain, [this] { finish(extend(source(0, true), 0, true)); });
      } else {
        controller_.runOnTaskThread([this] { finish(extend(source(0, false), 0, false)); });
      }
      if (chance(1, 3)) {
        controller_.runOnTaskThread([this] {
          for (std::uint32_t n = next(4); n > 0; --n) step();
        });
      }
    }
    // Complete and drop everything, including what completions create on the way.
    for (int round = 0;; ++round) {
      ASSERT_LT(round, 1000) << "the chains never settle";
      controller_.runOnTaskThread([this] {
        while (!open_.empty() || !held_.empty()) step();
      });
      controller_.flush();
      controller_.poll();
      const ControllerMetrics m = controller_.metrics();
      if (open_.empty() && held_.empty() && m.bufferedRequests == 0 && m.pendingRequests == 0) break;
    }
    controller_.drain();
    EXPECT_EQ(controller_.metrics().inFlightRecords, 0u);
    EXPECT_EQ(controller_.poolStats().live, 0u);
  }

  const Ledger& ledger() const { return ledger_; }

 private:
  ControllerOptions options() {
    ControllerOptions o;
    o.log = nullptr;
    o.batchSize = 4;
    o.bufferTimeout = std::chrono::hours(1);  // flushes happen by size or explicitly, never by the clock
    o.errorHandler = [this](const AsyncError& error) {
      ledger_.observe(error, "error handler");
      return ErrorAction::Continue;
    };
    return o;
  }
  static ValueStateDescriptor<int> descriptor() { return ValueStateDescriptor<int>("counter"); }

  std::uint32_t next(std::uint32_t bound) { return static_cast<std::uint32_t>(rng_() % bound); }
  bool chance(std::uint32_t in, std::uint32_t outOf) { return next(outOf) < in; }

  // Decided when the chain is built; the failure gets its id only if the code runs.
  void maybeThrow(bool throws, const char* origin) {
    if (throws) throw Injected(ledger_.inject(origin));
  }

  StateFuture<int> source(int depth, bool inRecord) {
    switch (next(depth < kMaxDepth ? 6 : 5)) {
      case 0:
      case 1: {
        open_.push_back(controller_.newPromise<int>());
        return open_.back().future();
      }
      case 2: return completedFuture(static_cast<int>(next(100)));
      case 3: return failedFuture<int>(Injected(ledger_.inject("failedFuture source")));
      case 4:
        if (!inRecord) return completedFuture(1);
        if (chance(1, 2)) {
          return counter_.asyncValue().thenApply([](std::optional<int> v) { return v.value_or(0); });
        }
        return counter_.asyncUpdate(static_cast<int>(next(100))).thenApply([] { return 1; });
      default: return extend(source(depth + 1, inRecord), depth + 1, inRecord);
    }
  }

  StateFuture<int> extend(StateFuture<int> future, int depth, bool inRecord) {
    for (std::uint32_t stages = next(5); stages > 0; --stages) {
      future = stage(std::move(future), depth, inRecord);
    }
    return future;
  }

  StateFuture<int> stage(StateFuture<int> future, int depth, bool inRecord) {
    const bool throws = chance(1, 5);
    const bool nested = depth < kMaxDepth;
    switch (next(nested ? 9 : 7)) {
      case 0:
        return std::move(future).thenApply([this, throws](int v) {
          maybeThrow(throws, "thenApply");
          return v + 1;
        });
      case 1:
        return voidDetour(std::move(future).thenAccept([this, throws](int) { maybeThrow(throws, "thenAccept"); }));
      case 2:
        return std::move(future).thenCompose([this, throws, depth, inRecord](int) {
          maybeThrow(throws, "thenCompose");
          return source(depth + 1, inRecord);
        });
      case 3:
        return std::move(future).exceptionally([this, throws](const AsyncError& error) {
          ledger_.observe(error, "exceptionally");
          maybeThrow(throws, "exceptionally");
          return -1;
        });
      case 4:
        return std::move(future).handle([this, throws](std::optional<int> value, const AsyncError* error) {
          if (error != nullptr) ledger_.observe(*error, "handle");
          maybeThrow(throws, "handle");
          return value.value_or(-1);
        });
      case 5:
        return std::move(future)
            .thenConditionallyAccept(
                [this, throws](const int& v) {
                  maybeThrow(throws, "thenConditionallyAccept");
                  return v % 2 == 0;
                },
                [](int) {}, [](int) {})
            .thenApply([](bool taken) { return taken ? 1 : 0; });
      case 6:
        return std::move(future).thenCombine(source(depth + 1, inRecord), [this, throws](int a, int b) {
          maybeThrow(throws, "thenCombine");
          return a + b;
        });
      case 7:
        return std::move(future).thenCombine(extend(source(depth + 1, inRecord), depth + 1, inRecord),
                                             [this, throws](int a, int b) {
                                               maybeThrow(throws, "thenCombine");
                                               return a + b;
                                             });
      default: {
        std::vector<StateFuture<int>> all;
        all.push_back(std::move(future));
        for (std::uint32_t n = next(3); n > 0; --n)
          all.push_back(extend(source(depth + 1, inRecord), depth + 1, inRecord));
        return combineAll(std::move(all)).thenApply([this, throws](std::vector<int> values) {
          maybeThrow(throws, "combineAll");
          return static_cast<int>(values.size());
        });
      }
    }
  }

  // The StateFuture<void> forms of the same stages, then back to int.
  StateFuture<int> voidDetour(StateFuture<void> future) {
    const bool throws = chance(1, 5);
    switch (next(4)) {
      case 0:
        future = std::move(future).exceptionally([this, throws](const AsyncError& error) {
          ledger_.observe(error, "exceptionally");
          maybeThrow(throws, "exceptionally (void)");
        });
        break;
      case 1:
        future = std::move(future).handle([this, throws](const AsyncError* error) {
          if (error != nullptr) ledger_.observe(*error, "handle");
          maybeThrow(throws, "handle (void)");
        });
        break;
      case 2: future = std::move(future).thenAccept([this, throws] { maybeThrow(throws, "thenAccept (void)"); }); break;
      default: break;
    }
    const bool backThrows = chance(1, 5);
    return std::move(future).thenApply([this, backThrows] {
      maybeThrow(backThrows, "thenApply (void)");
      return 0;
    });
  }

  // A chain's end: kept for a while, dropped now, or closed by an error branch.
  void finish(StateFuture<int> end) {
    switch (next(4)) {
      case 0:
      case 1: held_.push_back(std::move(end)); break;
      case 2: break;  // dropped while pending, failed or done
      default:
        held_.push_back(std::move(end).handle([this](std::optional<int>, const AsyncError* error) {
          if (error != nullptr) ledger_.observe(*error, "handle");
          return 0;
        }));
        break;
    }
  }

  // One move of the outside world: complete a promise (value or failure) or drop a held end.
  void step() {
    if (!open_.empty() && (held_.empty() || chance(2, 3))) {
      const std::size_t i = next(static_cast<std::uint32_t>(open_.size()));
      StatePromise<int> promise = std::move(open_[i]);
      open_[i] = std::move(open_.back());
      open_.pop_back();
      if (chance(1, 3)) {
        promise.setError(
            AsyncError(std::make_exception_ptr(Injected(ledger_.inject("promise setError"))), "", "", "promise"));
      } else {
        promise.setValue(static_cast<int>(next(100)));
      }
    } else if (!held_.empty()) {
      const std::size_t i = next(static_cast<std::uint32_t>(held_.size()));
      StateFuture<int> victim = std::move(held_[i]);
      held_[i] = std::move(held_.back());
      held_.pop_back();
    }
  }

  std::mt19937 rng_;
  Ledger ledger_;
  FlakyBackend backend_;
  AsyncExecutionController controller_;
  ValueState<int> counter_;
  std::vector<StatePromise<int>> open_;
  std::vector<StateFuture<int>> held_;
};

// Failure boxes are recycled per thread (ErrorBoxCache), except under AddressSanitizer,
// which must still see a box used after it was freed.
TEST(ErrorRule, FreedFailureBoxesAreRecycledExceptUnderAddressSanitizer) {
  const void* first = nullptr;
  {
    auto box = std::make_unique<AsyncError>(std::make_exception_ptr(std::runtime_error("x")), "v", "k", "get");
    first = box.get();
  }
  auto second = std::make_unique<AsyncError>(std::make_exception_ptr(std::runtime_error("y")), "v", "k", "get");
  if (ASYNCSTATE_ADDRESS_SANITIZER) {
    EXPECT_NE(second.get(), first) << "a freed box came back without the heap: AddressSanitizer cannot see its misuse";
  } else {
    EXPECT_EQ(second.get(), first) << "a freed box was not kept for the next failure";
  }
}

TEST(ErrorRuleRandomized, EveryInjectedFailureIsObservedExactlyOnce) {
  constexpr int kSeeds = 20;
  constexpr int kChains = 500;
  std::size_t injected = 0;
  std::size_t atHandler = 0;
  std::size_t atBranches = 0;
  for (std::uint32_t seed = 1; seed <= kSeeds; ++seed) {
    ChainFuzzer fuzzer(seed);
    fuzzer.run(kChains);
    const Ledger& ledger = fuzzer.ledger();
    int reported = 0;
    for (std::size_t id = 0; id < ledger.injected(); ++id) {
      const int seen = ledger.seen()[id];
      if (seen != 1 && reported++ < 10) {
        ADD_FAILURE() << "seed " << seed << ": failure #" << id << " injected by " << ledger.origin(id)
                      << " was observed " << seen << " times";
      }
    }
    for (const std::string& f : ledger.foreign()) ADD_FAILURE() << "seed " << seed << ": not injected: " << f;
    injected += ledger.injected();
    atHandler += ledger.observedAt("error handler");
    atBranches += ledger.observedAt("exceptionally") + ledger.observedAt("handle");
    if (::testing::Test::HasFailure()) break;
  }
  // The search must actually exercise both destinations, or it proves little.
  EXPECT_GT(injected, static_cast<std::size_t>(kSeeds) * 100);
  EXPECT_GT(atHandler, injected / 10);
  EXPECT_GT(atBranches, injected / 10);
}

// --- the built-in handlers -------------------------------------------------------------------

ControllerOptions failingOptions(std::size_t batchSize) {
  ControllerOptions o;
  o.log = nullptr;
  o.batchSize = batchSize;
  return o;
}

TEST(ErrorRule, DefaultHandlerFailsTheTaskAtTheNextProcessRecord) {
  FailingBackend backend;
  AsyncExecutionController controller(backend, failingOptions(1));
  MapState<std::string, int> profile(controller, MapStateDescriptor<std::string, int>("profile"));
  controller.processRecord(std::string("alice"), [&] { (void)profile.asyncPut("visits", 1); });

  bool ran = false;
  try {
    controller.processRecord(std::string("bob"), [&] { ran = true; });
    ADD_FAILURE() << "the kept failure was not rethrown";
  } catch (const AsyncStateException& e) {
    EXPECT_TRUE(
        contains(e.what(), "MapState.asyncPut on state 'profile' for key 'alice' failed: injected put failure"));
    ASSERT_EQ(e.errors().size(), 1u);
    EXPECT_EQ(e.first().stateName(), "profile");
    EXPECT_EQ(e.first().key(), "alice");
    EXPECT_EQ(e.first().operation(), "MapState.asyncPut");
    EXPECT_THROW(e.first().rethrow(), asyncstate::testing::InjectedFailure);
  }
  EXPECT_FALSE(ran);  // a failed task does not take more input
  EXPECT_EQ(controller.metrics().unhandledFailures, 1u);
}

TEST(ErrorRule, DefaultHandlerFailsTheTaskAtDrainWithEveryFailure) {
  FailingBackend backend;
  AsyncExecutionController controller(backend, failingOptions(100));
  ValueState<int> count(controller, ValueStateDescriptor<int>("count"));
  controller.processRecord(42, [&] { (void)count.asyncUpdate(1); });
  controller.processRecord(43, [&] {
    // A continuation's own failure, dropped with its future.
    (void)count.asyncValue()
        .exceptionally([](const AsyncError&) { return std::optional<int>(); })
        .thenApply([](std::optional<int>) -> int { throw std::runtime_error("bad state"); });
  });
  try {
    controller.drain();
    ADD_FAILURE() << "drain did not rethrow the kept failures";
  } catch (const AsyncStateException& e) {
    EXPECT_TRUE(contains(e.what(), "ValueState.asyncUpdate on state 'count' for key '42' failed"));
    EXPECT_TRUE(contains(e.what(), "(and 1 more failures)"));
    ASSERT_EQ(e.errors().size(), 2u);
    EXPECT_EQ(e.errors()[1].operation(), "thenApply continuation");
    EXPECT_EQ(e.errors()[1].key(), "43");
    EXPECT_EQ(e.errors()[1].what(), "bad state");
  }
  EXPECT_NO_THROW(controller.drain());  // each failure is rethrown once
}

TEST(ErrorRule, ThrowFromTheRecordItselfReachesTheHandlerWithItsKey) {
  MemoryBackend backend;
  std::vector<AsyncError> handled;
  ControllerOptions o = failingOptions(1);
  o.errorHandler = [&](const AsyncError& e) {
    handled.push_back(e);
    return ErrorAction::Continue;
  };
  AsyncExecutionController controller(backend, o);
  controller.processRecord(std::string("eve"), [] { throw std::logic_error("udf bug"); });
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_EQ(handled[0].key(), "eve");
  EXPECT_EQ(handled[0].operation(), "processElement");
  EXPECT_EQ(handled[0].what(), "udf bug");
  EXPECT_NO_THROW(controller.drain());
}

TEST(ErrorRule, HandlerThatThrowsFailsTheTask) {
  FailingBackend backend;
  ControllerOptions o = failingOptions(1);
  o.errorHandler = [](const AsyncError&) -> ErrorAction { throw std::runtime_error("handler broke"); };
  AsyncExecutionController controller(backend, o);
  ValueState<int> count(controller, ValueStateDescriptor<int>("count"));
  controller.processRecord(7, [&] { (void)count.asyncClear(); });
  try {
    controller.drain();
    ADD_FAILURE() << "a handler that throws lost the failure";
  } catch (const AsyncStateException& e) {
    EXPECT_EQ(e.first().operation(), "ValueState.asyncClear");
    EXPECT_EQ(e.first().key(), "7");
  }
}

TEST(ErrorRule, LogAndContinueLogsTheFailureAndKeepsProcessing) {
  FailingBackend backend;
  backend.shouldFail = [](const StateRequest& r) { return r.type == RequestType::Put; };
  std::ostringstream log;
  ControllerOptions o = failingOptions(1);
  o.errorHandler = logAndContinue(log);
  AsyncExecutionController controller(backend, o);
  ValueState<int> count(controller, ValueStateDescriptor<int>("count"));
  controller.processRecord(42, [&] { (void)count.asyncUpdate(1); });
  EXPECT_TRUE(contains(
      log.str(), "asyncstate: ValueState.asyncUpdate on state 'count' for key '42' failed: injected put failure\n"));

  std::optional<int> read;
  EXPECT_NO_THROW(controller.processRecord(42, [&] { read = count.value(); }));
  EXPECT_NO_THROW(controller.drain());
  EXPECT_EQ(read, std::nullopt);  // the failed write was not applied
  EXPECT_EQ(controller.metrics().unhandledFailures, 1u);
  EXPECT_EQ(controller.metrics().recordsProcessed, 2u);
}

// A failure delivered to the code that waited for it (sync access throws) is not
// reported a second time.
TEST(ErrorRule, FailureThrownBySyncAccessIsDeliveredOnce) {
  FailingBackend backend;
  std::vector<AsyncError> handled;
  ControllerOptions o = failingOptions(100);
  o.errorHandler = [&](const AsyncError& e) {
    handled.push_back(e);
    return ErrorAction::Continue;
  };
  AsyncExecutionController controller(backend, o);
  ValueState<int> count(controller, ValueStateDescriptor<int>("count"));
  std::string caught;
  controller.processRecord(5, [&] {
    try {
      (void)count.value();
    } catch (const AsyncStateException& e) {
      caught = e.first().message();
    }
  });
  controller.drain();
  EXPECT_TRUE(contains(caught, "ValueState.asyncValue on state 'count' for key '5' failed"));
  EXPECT_TRUE(handled.empty());
}

// --- shutdown -------------------------------------------------------------------------------

TEST(ErrorRuleShutdown, KeptFailureIsPrintedWhenTheControllerIsDestroyed) {
  FailingBackend backend;
  std::ostringstream log;
  {
    ControllerOptions o = failingOptions(1);
    o.log = &log;
    AsyncExecutionController controller(backend, o);
    MapState<std::string, int> profile(controller, MapStateDescriptor<std::string, int>("profile"));
    controller.processRecord(std::string("alice"), [&] { (void)profile.asyncPut("visits", 1); });
    EXPECT_TRUE(log.str().find("not rethrown") == std::string::npos);  // kept, not yet reported
  }
  EXPECT_TRUE(contains(log.str(),
                       "failure not rethrown before the controller was destroyed: MapState.asyncPut on "
                       "state 'profile' for key 'alice' failed: injected put failure"));
}

// Requests still buffered at destruction are sent and their failures reported too.
TEST(ErrorRuleShutdown, FailureOfWorkInFlightAtDestructionIsPrinted) {
  FailingBackend backend;
  std::ostringstream log;
  {
    // The state outlives the controller: the requests its destructor drains name it.
    std::optional<ValueState<int>> count;
    ControllerOptions o = failingOptions(1000);
    o.log = &log;
    AsyncExecutionController controller(backend, o);
    count.emplace(controller, ValueStateDescriptor<int>("count"));
    controller.processRecord(9, [&] { (void)count->asyncUpdate(3); });
    EXPECT_EQ(controller.metrics().bufferedRequests, 1u);
  }
  EXPECT_TRUE(contains(log.str(),
                       "failure not rethrown before the controller was destroyed: ValueState.asyncUpdate "
                       "on state 'count' for key '9' failed"));
}

}  // namespace
