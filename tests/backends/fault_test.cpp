// Latency and fault injection, retries, the local cache, and tearing a job down while
// a backend still owes answers (then restarting it from its last checkpoint).

#include "../support/ecommerce_job.hpp"
#include "backend_factories.hpp"
#include "backend_test_util.hpp"
#include "tcp_proxy.hpp"

#include "../support/controller_fixture.hpp"
#include "../support/test_backends.hpp"
#include "ecommerce/async_job.hpp"

#include <asyncstate/asyncstate.hpp>
#include <asyncstate/backend/cache.hpp>
#include <asyncstate/backend/latency.hpp>
#include <asyncstate/backend/memory.hpp>
#include <asyncstate/backend/retry.hpp>
#if ASYNCSTATE_TEST_WITH_REDIS
#include <asyncstate/backend/redis.hpp>
#endif

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <thread>

namespace asyncstate::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(LatencyInjection, FixedLatencyDelaysEveryBatchFromAnotherThread) {
  MemoryBackend memory;
  LatencyOptions options;
  options.latency = 30ms;
  LatencyInjectingBackend backend(memory, options);
  const std::uint32_t s = backend.registerState("v", StateKind::Value);

  struct ThreadSink : CompletionSink {
    std::atomic<bool> otherThread{false};
    std::atomic<int> done{0};
    std::thread::id caller = std::this_thread::get_id();
    void complete(std::uint64_t, StateResult) override {
      otherThread = std::this_thread::get_id() != caller;
      ++done;
    }
    void fail(std::uint64_t, std::exception_ptr) override { ++done; }
  } sink;
  const auto start = Clock::now();
  backend.executeBatch({put(s, "k", "v")}, sink);
  EXPECT_EQ(sink.done.load(), 0) << "completed before the injected latency";
  while (sink.done.load() == 0 && Clock::now() - start < 5s) std::this_thread::sleep_for(1ms);
  EXPECT_GE(Clock::now() - start, 30ms);
  EXPECT_TRUE(sink.otherThread.load());
  EXPECT_EQ(shown(run(backend, {get(s, "k")})[0]), "v");
}

TEST(LatencyInjection, SeededDistributionsAreReproducible) {
  auto total = [](LatencyDistribution d, std::uint64_t seed) {
    MemoryBackend memory;
    LatencyOptions options;
    options.distribution = d;
    options.latency = 200us;
    options.seed = seed;
    LatencyInjectingBackend backend(memory, options);
    const std::uint32_t s = backend.registerState("v", StateKind::Value);
    for (int i = 0; i < 20; ++i) run(backend, {get(s, "k")});
    return backend.latencyStats().totalInjectedLatency;
  };
  for (auto d : {LatencyDistribution::Exponential, LatencyDistribution::LogNormal}) {
    EXPECT_EQ(total(d, 5), total(d, 5));
    EXPECT_NE(total(d, 5), total(d, 6));
  }
  EXPECT_EQ(total(LatencyDistribution::Fixed, 5), 20 * 200us);
}

TEST(LatencyInjection, ErrorRateFailsWithInjectedFaultAndAppliesNothing) {
  MemoryBackend memory;
  LatencyOptions options;
  options.latency = 0us;
  options.errorRate = 1.0;
  LatencyInjectingBackend backend(memory, options);
  const std::uint32_t s = backend.registerState("orders", StateKind::List);
  auto r = run(backend, {append(s, "k1", "x"), get(s, "k1")});
  for (const Outcome& o : r) {
    ASSERT_FALSE(o.ok);
    EXPECT_NE(o.error.find("injected fault"), std::string::npos) << o.error;
    EXPECT_NE(o.error.find("state 'orders'"), std::string::npos) << o.error;
    EXPECT_NE(o.error.find("key 'k1'"), std::string::npos) << o.error;
  }
  EXPECT_EQ(backend.latencyStats().injectedErrors, 2u);
  EXPECT_EQ(savepointBytes(memory), [] {
    MemoryBackend empty;
    empty.registerState("orders", StateKind::List);
    return savepointBytes(empty);
  }());
}

TEST(LatencyInjection, RequestsOfAKeyFailTogetherWithinABatch) {
  MemoryBackend memory;
  LatencyOptions options;
  options.latency = 0us;
  options.errorRate = 0.3;
  options.seed = 99;
  LatencyInjectingBackend backend(memory, options);
  const std::uint32_t s = backend.registerState("l", StateKind::List);
  int onlyOneKeyFailed = 0;
  for (int b = 0; b < 200; ++b) {
    auto r = run(backend, {append(s, "a", "1"), append(s, "b", "1"), append(s, "a", "2"), append(s, "a", "3")});
    EXPECT_EQ(r[0].ok, r[2].ok) << "batch " << b;
    EXPECT_EQ(r[0].ok, r[3].ok) << "batch " << b;
    onlyOneKeyFailed += r[0].ok != r[1].ok;
  }
  EXPECT_GT(onlyOneKeyFailed, 0) << "keys draw their faults independently";
}

TEST(LatencyInjection, FailWindowRejectsThenRecovers) {
  MemoryBackend memory;
  LatencyOptions options;
  options.latency = 0us;
  options.outages = {{0ms, 300ms, OutageMode::Fail}};
  LatencyInjectingBackend backend(memory, options);
  const std::uint32_t s = backend.registerState("v", StateKind::Value);
  auto during = run(backend, {put(s, "k", "v")})[0];
  ASSERT_FALSE(during.ok);
  EXPECT_NE(during.error.find("injected outage"), std::string::npos) << during.error;
  std::this_thread::sleep_for(320ms);
  EXPECT_TRUE(run(backend, {put(s, "k", "v")})[0].ok);
  EXPECT_EQ(backend.latencyStats().outageFailures, 1u);
}

TEST(LatencyInjection, StallWindowHoldsBatchesAndRunsThemInOrder) {
  MemoryBackend memory;
  LatencyOptions options;
  options.latency = 0us;
  LatencyInjectingBackend backend(memory, options);
  const std::uint32_t s = backend.registerState("l", StateKind::List);
  const auto start = Clock::now();
  backend.addOutage(start, start + 250ms, OutageMode::Stall);
  CollectingSink sink;
  std::vector<StateRequest> first{append(s, "k", "a")}, second{append(s, "k", "b")};
  first[0].ticket = 1;
  second[0].ticket = 2;
  backend.executeBatch(std::move(first), sink);
  backend.executeBatch(std::move(second), sink);
  ASSERT_TRUE(sink.waitFor(2, backend, 5s));
  EXPECT_GE(Clock::now() - start, 250ms);
  EXPECT_EQ(shown(run(backend, {get(s, "k")})[0]), "ab");
  EXPECT_EQ(backend.latencyStats().stalledBatches, 2u);
}

TEST(LatencyInjection, DescriptionWarnsThatThereIsNoCache) {
  MemoryBackend memory;
  LatencyInjectingBackend backend(memory, {});
  EXPECT_NE(backend.describeConfiguration().find(std::string("\n") + std::string(kNoLocalCacheWarning)),
            std::string::npos);
}

// The same requests through a faulty, retried stack and straight into memory must
// leave identical state: nothing lost, nothing applied twice, per-key order kept.
TEST(Retrying, RidesOutAnOutageWithoutLosingOrReorderingAnything) {
  MemoryBackend memory, reference;
  LatencyOptions options;
  options.latency = 200us;
  options.outages = {{300ms, 2300ms, OutageMode::Fail}};
  LatencyInjectingBackend faulty(memory, options);
  RetryOptions retry;
  retry.maxBackoff = 100ms;
  RetryingBackend backend(faulty, retry);
  const std::uint32_t list = backend.registerState("events", StateKind::List);
  const std::uint32_t count = backend.registerState("count", StateKind::Value);
  reference.registerState("events", StateKind::List);
  reference.registerState("count", StateKind::Value);

  CollectingSink sink, referenceSink;
  std::uint64_t ticket = 0;
  const auto start = Clock::now();
  int batches = 0;
  while (Clock::now() - start < 2600ms) {
    std::vector<StateRequest> batch;
    for (int k = 0; k < 5; ++k) {
      const std::string key = "user" + std::to_string(k);
      batch.push_back(append(list, key, std::to_string(batches) + ","));
      batch.push_back(put(count, key, std::to_string(batches)));
    }
    for (auto& r : batch) r.ticket = ++ticket;
    reference.executeBatch(batch, referenceSink);
    backend.executeBatch(std::move(batch), sink);
    ++batches;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(sink.waitFor(ticket, backend, 30s));
  for (const auto& [t, o] : sink.take()) EXPECT_TRUE(o.ok) << o.error;
  EXPECT_EQ(savepointBytes(backend), savepointBytes(reference));
  EXPECT_GT(faulty.latencyStats().outageFailures, 0u);
  EXPECT_GT(backend.retryStats().retries, 0u);
  EXPECT_GT(backend.retryStats().heldBack, 0u) << "later batches of a failing key must wait behind it";
  EXPECT_EQ(backend.retryStats().gaveUp, 0u);
}

TEST(Retrying, KeepsPerKeyOrderUnderRandomFaults) {
  MemoryBackend memory, reference;
  LatencyOptions options;
  options.distribution = LatencyDistribution::Exponential;
  options.latency = 300us;
  options.errorRate = 0.25;
  options.seed = 4;
  LatencyInjectingBackend faulty(memory, options);
  RetryOptions retry;
  retry.initialBackoff = 1ms;
  retry.maxBackoff = 4ms;
  RetryingBackend backend(faulty, retry);
  const std::uint32_t list = backend.registerState("l", StateKind::List);
  reference.registerState("l", StateKind::List);
  CollectingSink sink, referenceSink;
  std::uint64_t ticket = 0;
  std::mt19937 rng(1);
  for (int b = 0; b < 300; ++b) {
    std::vector<StateRequest> batch;
    for (int i = 0; i < 4; ++i)
      batch.push_back(append(list, "k" + std::to_string(rng() % 3), std::to_string(b * 4 + i) + ";"));
    for (auto& r : batch) r.ticket = ++ticket;
    reference.executeBatch(batch, referenceSink);
    backend.executeBatch(std::move(batch), sink);  // no waiting between batches
  }
  ASSERT_TRUE(sink.waitFor(ticket, backend, 30s));
  for (const auto& [t, o] : sink.take()) EXPECT_TRUE(o.ok) << o.error;
  EXPECT_EQ(savepointBytes(backend), savepointBytes(reference));
  EXPECT_GT(faulty.latencyStats().injectedErrors, 0u);
}

TEST(Retrying, GivesUpAfterMaxAttemptsNamingTheLastError) {
  MemoryBackend memory;
  LatencyOptions options;
  options.latency = 0us;
  options.errorRate = 1.0;
  LatencyInjectingBackend faulty(memory, options);
  RetryOptions retry;
  retry.maxAttempts = 3;
  retry.initialBackoff = 1ms;
  RetryingBackend backend(faulty, retry);
  const std::uint32_t s = backend.registerState("v", StateKind::Value);
  auto o = run(backend, {put(s, "k", "v")})[0];
  ASSERT_FALSE(o.ok);
  EXPECT_NE(o.error.find("gave up after 3 attempts"), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("injected fault"), std::string::npos) << o.error;
  EXPECT_EQ(backend.retryStats().gaveUp, 1u);
}

TEST(Retrying, DoesNotRetryFailuresThatMayHaveTakenEffect) {
  testing::FailingBackend failing;
  RetryingBackend backend(failing, {});
  const std::uint32_t s = backend.registerState("v", StateKind::Value);
  auto o = run(backend, {put(s, "k", "v")})[0];
  ASSERT_FALSE(o.ok);
  EXPECT_NE(o.error.find("after 1 attempts"), std::string::npos) << o.error;
  EXPECT_EQ(backend.retryStats().retries, 0u);
}

TEST(Cache, CountsHitsMissesAndEvictsLeastRecentlyUsed) {
  MemoryBackend memory;
  const std::size_t entry = CachingBackend::kEntryOverhead + 2 + 2 + 10;  // "0:kN" + 10-byte value
  CachingBackend backend(memory, 3 * entry);
  const std::uint32_t s = backend.registerState("v", StateKind::Value);
  run(backend, {put(s, "k1", "0123456789"), put(s, "k2", "0123456789"), put(s, "k3", "0123456789")});
  EXPECT_EQ(backend.cacheStats().entries, 3u);
  EXPECT_EQ(backend.cacheStats().bytes, 3 * entry);
  run(backend, {get(s, "k1")});  // k2 is now least recently used
  run(backend, {put(s, "k4", "0123456789")});
  CacheStats stats = backend.cacheStats();
  EXPECT_EQ(stats.evictions, 1u);
  EXPECT_EQ(stats.hits, 1u);
  auto r = run(backend, {get(s, "k1"), get(s, "k2"), get(s, "k3"), get(s, "k4")});
  for (const Outcome& o : r) EXPECT_EQ(shown(o), "0123456789");
  stats = backend.cacheStats();
  EXPECT_EQ(stats.hits, 1u + 3u);
  EXPECT_EQ(stats.misses, 1u) << "only the evicted k2 goes to the backend";
  EXPECT_LE(stats.bytes, stats.capacityBytes);
  EXPECT_DOUBLE_EQ(stats.hitRate(), 4.0 / 5.0);
}

TEST(Cache, AnAnswerThatArrivesAfterAWriteDoesNotOverwriteIt) {
  MemoryBackend memory;
  LatencyOptions options;
  options.latency = 30ms;
  LatencyInjectingBackend slow(memory, options);
  CachingBackend backend(slow, 1 << 16);
  const std::uint32_t s = backend.registerState("v", StateKind::Value);
  CollectingSink sink;
  std::vector<StateRequest> read{get(s, "k")}, write{put(s, "k", "new")};
  read[0].ticket = 1;
  write[0].ticket = 2;
  backend.executeBatch(std::move(read), sink);   // misses; its answer ("absent") arrives in 30 ms
  backend.executeBatch(std::move(write), sink);  // cached at once
  ASSERT_TRUE(sink.waitFor(2, backend, 5s));
  EXPECT_EQ(shown(sink.take().at(1)), "<absent>");
  EXPECT_EQ(shown(run(backend, {get(s, "k")})[0]), "new");
  EXPECT_EQ(backend.cacheStats().hits, 1u);
}

TEST(Cache, AFailedWriteIsForgotten) {
  testing::FailingBackend failing;
  failing.shouldFail = [](const StateRequest& r) { return r.type == RequestType::Put; };
  CachingBackend backend(failing, 1 << 16);
  const std::uint32_t s = backend.registerState("v", StateKind::Value);
  auto r = run(backend, {put(s, "k", "v"), get(s, "k")});
  EXPECT_FALSE(r[0].ok);
  EXPECT_EQ(shown(run(backend, {get(s, "k")})[0]), "<absent>") << "the cache must not keep what the backend refused";
}

TEST(Cache, ZeroBytesIsAWarningAndCachesNothing) {
  MemoryBackend memory;
  LatencyInjectingBackend remote(memory, {});
  CachingBackend none(remote, 0);
  const std::string text = none.describeConfiguration();
  EXPECT_NE(text.find("\nWARNING: local state cache is 0 bytes"), std::string::npos) << text;
  const std::uint32_t s = none.registerState("v", StateKind::Value);
  run(none, {put(s, "k", "v"), get(s, "k")});
  run(none, {get(s, "k")});
  EXPECT_EQ(none.cacheStats().hits, 0u);
  EXPECT_EQ(none.cacheStats().misses, 2u);

  CachingBackend sized(remote, 1 << 20);
  EXPECT_EQ(sized.describeConfiguration().find("WARNING"), std::string::npos) << sized.describeConfiguration();
}

// Issue 11.1: after a drain hit the stall timeout, the controller was destroyed while
// the wrapper still held it as the sink of a stalled batch; when the outage ended, the
// timer thread answered into freed memory.
TEST(Teardown, AControllerDestroyedAfterAStallTimeoutIsNeverCalledByTheTimerThread) {
  MemoryBackend memory;
  LatencyOptions options;
  options.latency = 0us;
  LatencyInjectingBackend backend(memory, options);
  backend.addOutage(Clock::now(), Clock::now() + 1s, OutageMode::Stall);
  testing::ManualClock time(400ms);
  ControllerOptions o;
  o.log = nullptr;
  o.stallTimeout = 1s;
  o.clock = time.clock();
  {
    AsyncExecutionController controller(backend, o);
    ValueState<int> v(controller, ValueStateDescriptor<int>("v"));
    controller.processRecord(1, [&] { (void)v.asyncUpdate(1); });
    EXPECT_THROW(controller.drain(), AsyncStateException);
  }
  // The outage ends: the timer thread runs the held batch and answers the mailbox the
  // controller left behind.
  while (backend.latencyStats().answersDelivered == 0) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(backend.latencyStats().stalledBatches, 1u);
}

#if ASYNCSTATE_TEST_WITH_REDIS
using ecommerce::Event;
using ecommerce::WindowCount;
using Runner = EmbeddedRunner<std::string, Event, WindowCount>;

// Silences the network when the job reaches `at` records: the next reply never comes,
// and the controller's clock starts running so that it gives up (stalls) at once.
class BlackoutAt final : public Source<Event> {
 public:
  BlackoutAt(const std::vector<Event>& events, std::uint64_t at, TcpProxy& proxy, testing::ManualClock& time)
      : inner_(events), at_(at), proxy_(proxy), time_(time) {}
  std::optional<Event> next() override {
    if (inner_.position() == at_) {
      proxy_.dropNextScriptReply();
      time_.setStep(400ms);
    }
    return inner_.next();
  }
  bool finished() const override { return inner_.finished(); }
  std::uint64_t position() const override { return inner_.position(); }
  void seek(std::uint64_t position) override { inner_.seek(position); }

 private:
  VectorSource<Event> inner_;
  std::uint64_t at_;
  TcpProxy& proxy_;
  testing::ManualClock& time_;
};

// Issue 11.1 on Redis: the runner and then the backend are destroyed in the normal
// order after a network blackout; the I/O thread's late failure used to reach the
// destroyed controller. Restarting from the last checkpoint must give the output of
// an uninterrupted run.
TEST(Teardown, AfterANetworkBlackoutTheJobRestartsFromItsLastCheckpointWithIdenticalOutput) {
  const auto events = ecommerce::generateEvents(6000, 21, 300);
  std::vector<WindowCount> expected;
  {
    MemoryBackend reference;
    ecommerce::AsyncActivityFunction function;
    Runner runner(reference, function, ecommerceKeyOf, ecommerceTimeOf, ecommerceRunnerOptions());
    VectorSource<Event> source(events);
    VectorCollector<WindowCount> sink;
    runner.run(source, sink);
    expected = std::move(sink.values);
  }
  ASSERT_GT(expected.size(), 10u);

  RedisOptions redisOptions = redisOptionsFor({});
  redisOptions.maxAttempts = 1;  // the lost reply fails its batch instead of being retried
  redisOptions.commandTimeout = 1500ms;
  std::optional<Savepoint> checkpoint;
  std::vector<WindowCount> emitted;
  {
    TcpProxy proxy(sharedRedis().port());
    redisOptions.seeds = {proxy.address()};
    RedisBackend redis(redisOptions);
    testing::ManualClock time;
    RunnerOptions o = ecommerceRunnerOptions();
    o.checkpointEvery = 1500;
    o.onCheckpoint = [&](const Savepoint& sp) { checkpoint = Savepoint::parse(sp.serialize()); };
    o.controller.stallTimeout = 1s;
    o.controller.clock = time.clock();
    ecommerce::AsyncActivityFunction function;
    BlackoutAt source(events, 4000, proxy, time);
    VectorCollector<WindowCount> sink;
    {
      Runner runner(redis, function, ecommerceKeyOf, ecommerceTimeOf, o);
      EXPECT_THROW(runner.run(source, sink), AsyncStateException);
    }  // runner and controller gone while Redis still waits for the lost reply
    emitted = std::move(sink.values);
  }  // the backend: its I/O thread gives up and answers the closed mailbox
  ASSERT_TRUE(checkpoint.has_value());

  redisOptions.seeds = {sharedRedis().address()};
  RedisBackend redis(redisOptions);
  ecommerce::AsyncActivityFunction function;
  Runner runner(redis, function, ecommerceKeyOf, ecommerceTimeOf, ecommerceRunnerOptions());
  VectorSource<Event> source(events);
  VectorCollector<WindowCount> sink;
  const std::uint64_t committed = runner.restore(*checkpoint, source);
  ASSERT_LE(committed, emitted.size());
  sink.values.assign(emitted.begin(), emitted.begin() + static_cast<std::ptrdiff_t>(committed));
  runner.run(source, sink);
  std::sort(sink.values.begin(), sink.values.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_TRUE(sink.values == expected) << sink.values.size() << " outputs vs " << expected.size() << " uninterrupted";
}
#endif

}  // namespace
}  // namespace asyncstate::test
