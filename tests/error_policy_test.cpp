// The error policy per record: skip, retry (bounded, with backoff, per-key order kept),
// dead letter; every failure reaches exactly one place, which a randomized test with
// many seeds checks by accounting for every record.

#include "support/backends.hpp"
#include "support/controller_fixture.hpp"

#include <asyncstate/asyncstate.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace asyncstate {
namespace {

using namespace std::chrono_literals;
using testing::FailingBackend;
using testing::InjectedFailure;
using testing::ManualClock;
using testing::ShufflingBackend;

// A controller on the memory backend whose error handler must see nothing: with a record
// error policy every failure of a record goes to the policy.
struct PolicyRig {
  explicit PolicyRig(RecordErrorPolicy policy, std::chrono::milliseconds clockStep = 1ms) : clock(clockStep) {
    ControllerOptions o;
    o.log = nullptr;
    o.clock = clock.clock();
    o.recordErrors = std::move(policy);
    o.errorHandler = [this](const AsyncError& e) {
      handlerSaw.push_back(e.message());
      return ErrorAction::Continue;
    };
    controller.emplace(backend, std::move(o));
  }

  ManualClock clock;
  MemoryBackend backend;
  std::vector<std::string> handlerSaw;
  std::optional<AsyncExecutionController> controller;
};

TEST(RecordErrorPolicyTest, SkipDropsTheFailedRecordAndItsKeysNextRecordRuns) {
  PolicyRig rig(skipFailedRecords());
  std::vector<int> ran;
  rig.controller->processRecord(1, [&] { throw InjectedFailure("bad record"); });
  rig.controller->processRecord(1, [&] { ran.push_back(2); });
  rig.controller->drain();
  EXPECT_EQ(ran, std::vector<int>{2});
  const RecordErrorMetrics m = rig.controller->metrics().recordErrors;
  EXPECT_EQ(m.failedAttempts, 1u);
  EXPECT_EQ(m.skipped, 1u);
  EXPECT_EQ(m.failedTask, 0u);
  EXPECT_TRUE(rig.handlerSaw.empty());
  EXPECT_EQ(rig.controller->metrics().unhandledFailures, 0u);
}

TEST(RecordErrorPolicyTest, RetryRunsTheRecordAgainAndLaterRecordsOfItsKeyWaitBehindIt) {
  RecordRetryOptions retry;
  retry.maxAttempts = 4;
  retry.initialBackoff = 10ms;
  PolicyRig rig(retryFailedRecords(retry));
  std::vector<std::string> events;
  int attempts = 0;
  rig.controller->processRecord(7, [&] {
    events.push_back("first attempt " + std::to_string(++attempts));
    if (attempts < 3) throw InjectedFailure("not yet");
  });
  rig.controller->processRecord(7, [&] { events.push_back("second record"); });
  rig.controller->processRecord(8, [&] { events.push_back("other key"); });
  // The other key is not blocked by the retrying record.
  EXPECT_EQ(events, (std::vector<std::string>{"first attempt 1", "other key"}));
  EXPECT_EQ(rig.controller->metrics().retryingRecords, 1u);
  EXPECT_EQ(rig.controller->metrics().blockedRecords, 1u);
  rig.controller->drain();
  EXPECT_EQ(events, (std::vector<std::string>{"first attempt 1", "other key", "first attempt 2", "first attempt 3",
                                              "second record"}));
  const ControllerMetrics m = rig.controller->metrics();
  EXPECT_EQ(m.recordErrors.retries, 2u);
  EXPECT_EQ(m.recordErrors.retriedToSuccess, 1u);
  EXPECT_EQ(m.recordsProcessed, 3u);  // records, not attempts
  EXPECT_EQ(m.inFlightRecords, 0u);
  EXPECT_TRUE(rig.handlerSaw.empty());
}

TEST(RecordErrorPolicyTest, BackoffGrowsExponentiallyUpToItsMaximum) {
  RecordRetryOptions retry;
  retry.initialBackoff = 10ms;
  retry.multiplier = 3;
  retry.maxBackoff = 200ms;
  EXPECT_EQ(retry.backoffBefore(1), 10ms);
  EXPECT_EQ(retry.backoffBefore(2), 30ms);
  EXPECT_EQ(retry.backoffBefore(3), 90ms);
  EXPECT_EQ(retry.backoffBefore(4), 200ms);
  EXPECT_EQ(retry.backoffBefore(40), 200ms);
}

TEST(RecordErrorPolicyTest, ARetryWaitsForItsBackoffOnTheControllersClock) {
  RecordRetryOptions retry;
  retry.initialBackoff = 100ms;
  PolicyRig rig(retryFailedRecords(retry), 0ms);
  int attempts = 0;
  rig.controller->processRecord(1, [&] {
    if (++attempts == 1) throw InjectedFailure("once");
  });
  rig.clock.advance(99ms);
  rig.controller->poll();
  EXPECT_EQ(attempts, 1);
  rig.clock.advance(1ms);
  rig.controller->poll();
  EXPECT_EQ(attempts, 2);
  rig.controller->drain();
}

TEST(RecordErrorPolicyTest, RetriesAreBoundedThenTheExhaustedActionApplies) {
  RecordRetryOptions retry;
  retry.maxAttempts = 3;
  retry.initialBackoff = 1ms;
  RecordErrorPolicy policy = retryFailedRecords(retry, RecordFailureAction::DeadLetter);
  std::vector<std::uint32_t> deadAttempts;
  std::vector<std::string> deadErrors;
  policy.deadLetter = [&](const FailedRecord& failed) {
    deadAttempts.push_back(failed.attempts());
    deadErrors.push_back(failed.error().what());
  };
  PolicyRig rig(std::move(policy));
  int attempts = 0;
  rig.controller->processRecord(std::string("k"), [&] {
    ++attempts;
    throw InjectedFailure("always " + std::to_string(attempts));
  });
  rig.controller->drain();
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(deadAttempts, std::vector<std::uint32_t>{3});
  EXPECT_EQ(deadErrors, std::vector<std::string>{"always 3"});
  EXPECT_EQ(rig.controller->metrics().recordErrors.retries, 2u);
  EXPECT_EQ(rig.controller->metrics().recordErrors.deadLettered, 1u);
}

TEST(RecordErrorPolicyTest, ExhaustedRetriesFailTheTaskByDefault) {
  RecordRetryOptions retry;
  retry.maxAttempts = 2;
  retry.initialBackoff = 1ms;
  PolicyRig rig(retryFailedRecords(retry));
  rig.controller->processRecord(1, [&] { throw InjectedFailure("broken input"); });
  try {
    rig.controller->drain();
    FAIL() << "the exhausted retries must fail the task";
  } catch (const AsyncStateException& e) {
    EXPECT_NE(std::string(e.what()).find("broken input"), std::string::npos) << e.what();
  }
  EXPECT_EQ(rig.controller->metrics().recordErrors.failedTask, 1u);
  rig.controller->drain();  // delivered once
}

TEST(RecordErrorPolicyTest, DeadLetterSeesTheInputTheKeyAndEveryFailureOfTheAttempt) {
  FailingBackend backend;
  backend.shouldFail = [](const StateRequest& r) { return r.type == RequestType::Get; };
  struct Letter {
    std::string input;
    std::string key;
    std::int64_t timestamp;
    std::vector<std::string> errors;
  };
  std::vector<Letter> letters;
  ControllerOptions o;
  o.log = nullptr;
  o.recordErrors = deadLetterFailedRecords([&](const FailedRecord& failed) {
    Letter letter{failed.input<std::string>() != nullptr ? *failed.input<std::string>() : "<none>",
                  failed.keyText(),
                  failed.timestamp(),
                  {}};
    for (const AsyncError& e : failed.errors()) letter.errors.push_back(e.operation());
    letters.push_back(std::move(letter));
  });
  AsyncExecutionController controller(backend, o);
  ValueState<int> a(controller, ValueStateDescriptor<int>("a"));
  MapState<int, int> b(controller, MapStateDescriptor<int, int>("b"));
  controller.processRecord(std::string("alice"),
                           recordWithInput(std::string("order 17"),
                                           [&](const std::string&) {
                                             (void)a.asyncValue();
                                             (void)b.asyncGet(3);
                                           }),
                           1234);
  controller.processRecord(std::string("bob"), [&] { (void)a.asyncValue(); });
  controller.drain();
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_EQ(letters[0].input, "order 17");
  EXPECT_EQ(letters[0].key, "alice");
  EXPECT_EQ(letters[0].timestamp, 1234);
  EXPECT_EQ(letters[0].errors, (std::vector<std::string>{"ValueState.asyncValue", "MapState.asyncGet"}));
  EXPECT_EQ(letters[1].input, "<none>");  // a record without input()
  EXPECT_EQ(controller.metrics().recordErrors.failures, 3u);
  EXPECT_EQ(controller.metrics().recordErrors.failedAttempts, 2u);
  EXPECT_EQ(controller.metrics().recordErrors.deadLettered, 2u);
}

TEST(RecordErrorPolicyTest, ADeadLetterDecisionWithoutAnOutputFailsTheTaskWithAClearError) {
  RecordErrorPolicy policy;
  policy.decide = [](const FailedRecord&) { return RecordFailureAction::DeadLetter; };
  PolicyRig rig(std::move(policy));
  rig.controller->processRecord(1, [&] { throw InjectedFailure("bad"); });
  try {
    rig.controller->drain();
    FAIL() << "a dead letter with nowhere to go must fail the task";
  } catch (const AsyncStateException& e) {
    ASSERT_EQ(e.errors().size(), 2u);
    EXPECT_EQ(e.errors()[0].what(), "bad");
    EXPECT_NE(e.errors()[1].what().find("no deadLetter output"), std::string::npos) << e.errors()[1].what();
  }
}

TEST(RecordErrorPolicyTest, ADeadLetterOutputThatThrowsFailsTheTask) {
  PolicyRig rig(
      deadLetterFailedRecords([](const FailedRecord&) { throw std::runtime_error("dead-letter queue full"); }));
  rig.controller->processRecord(1, [&] { throw InjectedFailure("bad"); });
  try {
    rig.controller->drain();
    FAIL() << "a lost dead letter must fail the task";
  } catch (const AsyncStateException& e) {
    ASSERT_EQ(e.errors().size(), 2u);
    EXPECT_EQ(e.errors()[1].what(), "dead-letter queue full");
    EXPECT_EQ(e.errors()[1].operation(), "dead-letter output");
  }
}

TEST(RecordErrorPolicyTest, FailuresHandledDownstreamNeverReachThePolicy) {
  FailingBackend backend;
  ControllerOptions o;
  o.log = nullptr;
  int decided = 0;
  o.recordErrors.decide = [&](const FailedRecord&) {
    ++decided;
    return RecordFailureAction::Skip;
  };
  AsyncExecutionController controller(backend, o);
  ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
  int recovered = 0;
  controller.processRecord(1, [&] {
    (void)v.asyncValue().exceptionally([&](const AsyncError&) {
      ++recovered;
      return std::optional<int>();
    });
  });
  controller.drain();
  EXPECT_EQ(recovered, 1);
  EXPECT_EQ(decided, 0);
}

TEST(RecordErrorPolicyTest, FailuresOutsideRecordsStillReachTheErrorHandler) {
  PolicyRig rig(skipFailedRecords());
  rig.controller->runOnTaskThread(
      [] { (void)failedFuture<int>(AsyncError(std::make_exception_ptr(InjectedFailure("outside")), "", "", "test")); });
  ASSERT_EQ(rig.handlerSaw.size(), 1u);
  EXPECT_NE(rig.handlerSaw[0].find("outside"), std::string::npos);
  EXPECT_EQ(rig.controller->metrics().recordErrors.failures, 0u);
}

// A retried record is re-run from the start; its failed attempt's writes stay.
TEST(RecordErrorPolicyTest, ARetryDoesNotUndoTheFailedAttemptsStateWrites) {
  RecordRetryOptions retry;
  retry.initialBackoff = 1ms;
  PolicyRig rig(retryFailedRecords(retry));
  ValueState<int> counter(*rig.controller, ValueStateDescriptor<int>("counter"));
  int attempts = 0;
  rig.controller->processRecord(1, [&] {
    (void)counter.asyncValue()
        .thenCompose([&](std::optional<int> n) { return counter.asyncUpdate(n.value_or(0) + 1); })
        .thenAccept([&] {
          if (++attempts == 1) throw InjectedFailure("after the write");
        });
  });
  rig.controller->drain();
  int stored = 0;
  rig.controller->processRecord(1, [&] { stored = counter.value().value_or(0); });
  rig.controller->drain();
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(stored, 2);  // not idempotent: counted twice
}

TEST(RecordErrorPolicyTest, RunnerElementsReachTheDeadLetterOutputAsTheirInput) {
  struct Order {
    std::string user;
    int amount = 0;
  };
  class Totals final : public KeyedProcessFunction<std::string, Order, std::string> {
   public:
    void open(RuntimeContext& ctx) override { total_ = &ctx.getState(ValueStateDescriptor<int>("total")); }
    void processElement(const Order& order, Context& ctx, Collector<std::string>& out) override {
      if (order.amount < 0) throw std::invalid_argument("negative amount");
      (void)total_->asyncValue().thenCompose([this, &ctx, &out, order](std::optional<int> t) {
        out.collect(ctx.currentKey() + "=" + std::to_string(t.value_or(0) + order.amount));
        return total_->asyncUpdate(t.value_or(0) + order.amount);
      });
    }

   private:
    ValueState<int>* total_ = nullptr;
  };
  std::vector<std::string> deadLetters;
  RunnerOptions options;
  options.controller.log = nullptr;
  options.controller.recordErrors = deadLetterFailedRecords([&](const FailedRecord& failed) {
    const Order* order = failed.input<Order>();
    ASSERT_NE(order, nullptr);
    deadLetters.push_back(order->user + ":" + std::to_string(order->amount) + ":" + failed.error().what());
  });
  MemoryBackend backend;
  Totals function;
  EmbeddedRunner<std::string, Order, std::string> runner(
      backend, function, [](const Order& o) { return o.user; }, [](const Order&) { return 0; }, options);
  VectorSource<Order> source({{"ann", 5}, {"ann", -3}, {"ann", 2}});
  VectorCollector<std::string> sink;
  runner.run(source, sink);
  EXPECT_EQ(sink.values, (std::vector<std::string>{"ann=5", "ann=7"}));
  EXPECT_EQ(deadLetters, std::vector<std::string>{"ann:-3:negative amount"});
}

// A watermark follows every earlier record's last attempt: a retrying record holds its
// epoch open, so the watermark behind it waits (and per-key order holds across it).
TEST(RecordErrorPolicyTest, AWatermarkWaitsForTheRetriesOfEveryEarlierRecord) {
  struct Tick {
    int key;
    std::int64_t time;
  };
  class FlakyFirstAttempts final : public KeyedProcessFunction<int, Tick, std::string> {
   public:
    void open(RuntimeContext& ctx) override { seen_ = &ctx.getState(ValueStateDescriptor<int>("seen")); }
    void processElement(const Tick& tick, Context&, Collector<std::string>& out) override {
      const bool fail = ++attempts_[tick.time] == 1 && tick.time % 3 == 0;
      (void)seen_->asyncValue().thenAccept([this, &out, tick, fail](std::optional<int>) {
        if (fail) throw InjectedFailure("first attempt of " + std::to_string(tick.time));
        finished.insert(tick.time);
        out.collect(std::to_string(tick.time));
      });
    }
    std::set<std::int64_t> finished;

   private:
    ValueState<int>* seen_ = nullptr;
    std::map<std::int64_t, int> attempts_;
  };
  for (const EpochMode mode : {EpochMode::Serial, EpochMode::Parallel}) {
    RecordRetryOptions retry;
    retry.initialBackoff = 1ms;
    RunnerOptions options;
    options.controller.log = nullptr;
    options.controller.batchSize = 4;
    options.controller.recordErrors = retryFailedRecords(retry);
    options.watermarkEvery = 1;
    options.epochMode = mode;
    FlakyFirstAttempts function;
    std::vector<std::int64_t> watermarks;
    options.onWatermark = [&](std::int64_t w) {
      watermarks.push_back(w);
      // Every record at or before the watermark has finished its last attempt.
      for (std::int64_t t = 1; t <= std::min<std::int64_t>(w, 30); ++t) {
        EXPECT_TRUE(function.finished.contains(t)) << "watermark " << w << " before record " << t << " finished";
      }
    };
    MemoryBackend backend;
    EmbeddedRunner<int, Tick, std::string> runner(
        backend, function, [](const Tick& t) { return t.key; }, [](const Tick& t) { return t.time; }, options);
    std::vector<Tick> ticks;
    for (int i = 1; i <= 30; ++i) ticks.push_back({i % 4, i});
    VectorSource<Tick> source(ticks);
    VectorCollector<std::string> sink;
    const RunStats stats = runner.run(source, sink);
    ASSERT_EQ(watermarks.size(), 31u);  // one per record, and the final one
    EXPECT_TRUE(std::is_sorted(watermarks.begin(), watermarks.end()));
    EXPECT_EQ(sink.values.size(), 30u);
    EXPECT_EQ(stats.controller.recordErrors.retries, 10u);
    EXPECT_EQ(stats.controller.recordErrors.retriedToSuccess, 10u);
  }
}

// Randomized accounting: records fail at random points of random attempts, under
// shuffled completion order; the policy picks skip, retry or dead letter per record.
// Every record must end exactly once as succeeded (first try or after retries),
// skipped, or dead-lettered, with the counts adding up and per-key order kept.
TEST(RecordErrorPolicyTest, EveryRecordIsAccountedForExactlyOnceUnderRandomFailures) {
  constexpr int kRecords = 400;
  constexpr int kKeys = 9;
  constexpr std::uint32_t kMaxAttempts = 3;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    struct Item {
      int id;
      int key;
    };
    auto mix = [seed](std::uint64_t a, std::uint64_t b) {
      std::uint64_t x = seed * 0x9E3779B97F4A7C15ULL ^ (a * 0xBF58476D1CE4E5B9ULL) ^ (b * 0x94D049BB133111EBULL);
      x ^= x >> 31;
      x *= 0xD6E8FEB86CD39D09ULL;
      return x ^ (x >> 29);
    };
    // Where attempt `attempt` of record `id` fails: 0 none, 1 in processing, 2 in a
    // continuation after the read, 3 in the last continuation (after the write).
    auto failsAt = [&](int id, std::uint32_t attempt) -> int {
      const std::uint64_t r = mix(static_cast<std::uint64_t>(id), attempt) % 10;
      return r < 6 ? 0 : static_cast<int>(r - 6) % 3 + 1;
    };
    auto actionFor = [&](int id) {
      switch (mix(static_cast<std::uint64_t>(id), 1000) % 3) {
        case 0: return RecordFailureAction::Skip;
        case 1: return RecordFailureAction::Retry;
        default: return RecordFailureAction::DeadLetter;
      }
    };
    const RecordFailureAction exhausted = seed % 2 == 0 ? RecordFailureAction::Skip : RecordFailureAction::DeadLetter;

    // The model: what must happen to each record.
    enum class Fate { Succeeded, RetriedToSuccess, Skipped, DeadLettered };
    std::map<int, Fate> expected;
    RecordErrorMetrics expectedCounts;
    for (int id = 0; id < kRecords; ++id) {
      for (std::uint32_t attempt = 1;; ++attempt) {
        if (failsAt(id, attempt) == 0) {
          expected[id] = attempt == 1 ? Fate::Succeeded : Fate::RetriedToSuccess;
          if (attempt > 1) ++expectedCounts.retriedToSuccess;
          break;
        }
        ++expectedCounts.failedAttempts;
        RecordFailureAction action = actionFor(id);
        if (action == RecordFailureAction::Retry && attempt >= kMaxAttempts) action = exhausted;
        if (action == RecordFailureAction::Retry) {
          ++expectedCounts.retries;
          continue;
        }
        if (action == RecordFailureAction::Skip) {
          expected[id] = Fate::Skipped;
          ++expectedCounts.skipped;
        } else {
          expected[id] = Fate::DeadLettered;
          ++expectedCounts.deadLettered;
        }
        break;
      }
    }

    std::map<int, Fate> observed;
    std::size_t doubled = 0;
    auto observe = [&](int id, Fate fate) {
      if (!observed.emplace(id, fate).second) ++doubled;
    };
    ShufflingBackend backend(seed);
    ControllerOptions o;
    o.log = nullptr;
    o.batchSize = 5;
    o.inFlightLimit = 30;
    std::size_t handlerSaw = 0;
    o.errorHandler = [&](const AsyncError&) {
      ++handlerSaw;
      return ErrorAction::Continue;
    };
    o.recordErrors.retry.maxAttempts = kMaxAttempts;
    o.recordErrors.retry.initialBackoff = 1ms;
    o.recordErrors.retry.maxBackoff = 2ms;
    o.recordErrors.whenRetriesExhausted = exhausted;
    o.recordErrors.decide = [&](const FailedRecord& failed) {
      const RecordFailureAction action = actionFor(failed.input<Item>()->id);
      if (action == RecordFailureAction::Skip ||
          (action == RecordFailureAction::Retry && failed.attempts() >= kMaxAttempts &&
           exhausted == RecordFailureAction::Skip)) {
        observe(failed.input<Item>()->id, Fate::Skipped);
      }
      return action;
    };
    o.recordErrors.deadLetter = [&](const FailedRecord& failed) {
      observe(failed.input<Item>()->id, Fate::DeadLettered);
    };
    AsyncExecutionController controller(backend, o);
    ValueState<int> last(controller, ValueStateDescriptor<int>("last"));
    std::map<int, std::vector<int>> startsPerKey;  // ids in the order their attempts started
    std::map<int, std::uint32_t> attempts;
    std::mt19937 rng(static_cast<unsigned>(seed));
    for (int id = 0; id < kRecords; ++id) {
      const Item item{id, static_cast<int>(rng() % kKeys)};
      controller.processRecord(item.key, recordWithInput(item, [&](const Item& in) {
                                 startsPerKey[in.key].push_back(in.id);
                                 const std::uint32_t attempt = ++attempts[in.id];
                                 const int failure = failsAt(in.id, attempt);
                                 if (failure == 1) throw InjectedFailure("in processing");
                                 (void)last.asyncValue()
                                     .thenCompose([&, in, failure](std::optional<int>) {
                                       if (failure == 2) throw InjectedFailure("after the read");
                                       return last.asyncUpdate(in.id);
                                     })
                                     .thenAccept([&, in, attempt, failure] {
                                       if (failure == 3) throw InjectedFailure("after the write");
                                       observe(in.id, attempt == 1 ? Fate::Succeeded : Fate::RetriedToSuccess);
                                     });
                               }));
    }
    controller.drain();

    EXPECT_EQ(doubled, 0u) << "seed " << seed;
    EXPECT_EQ(observed, expected) << "seed " << seed;
    EXPECT_EQ(handlerSaw, 0u) << "seed " << seed;
    const ControllerMetrics m = controller.metrics();
    EXPECT_EQ(m.recordErrors.failedAttempts, expectedCounts.failedAttempts) << "seed " << seed;
    EXPECT_EQ(m.recordErrors.failures, expectedCounts.failedAttempts) << "seed " << seed;  // one per failed attempt
    EXPECT_EQ(m.recordErrors.retries, expectedCounts.retries) << "seed " << seed;
    EXPECT_EQ(m.recordErrors.retriedToSuccess, expectedCounts.retriedToSuccess) << "seed " << seed;
    EXPECT_EQ(m.recordErrors.skipped, expectedCounts.skipped) << "seed " << seed;
    EXPECT_EQ(m.recordErrors.deadLettered, expectedCounts.deadLettered) << "seed " << seed;
    EXPECT_EQ(m.recordErrors.failedTask, 0u) << "seed " << seed;
    EXPECT_EQ(m.recordErrors.failedAttempts, m.recordErrors.retries + m.recordErrors.skipped +
                                                 m.recordErrors.deadLettered + m.recordErrors.failedTask);
    EXPECT_EQ(m.inFlightRecords, 0u);
    EXPECT_EQ(m.retryingRecords, 0u);
    // Per-key order: a key's attempts start in record order, a record's retries before
    // any later record of its key.
    for (const auto& [key, ids] : startsPerKey) {
      EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end())) << "key " << key << " seed " << seed;
    }
  }
}

}  // namespace
}  // namespace asyncstate
