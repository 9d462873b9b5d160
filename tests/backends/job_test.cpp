// The example job through the real backends: a run that moves memory -> RocksDB ->
// Redis -> memory through checkpoints gives the uninterrupted output, and a storage
// outage during a run delays it without changing its output or its final state.

#include "../support/ecommerce_job.hpp"
#include "backend_factories.hpp"
#include "backend_test_util.hpp"

#include "ecommerce/async_job.hpp"

#include <asyncstate/asyncstate.hpp>
#include <asyncstate/backend/latency.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <sstream>

namespace asyncstate::test {
namespace {

using namespace std::chrono_literals;
using ecommerce::Event;
using ecommerce::WindowCount;
using Runner = EmbeddedRunner<std::string, Event, WindowCount>;

std::unique_ptr<BackendStack> make(const std::string& name) {
  for (auto& f : backendFactories()) {
    if (f.name == name) return f.make();
  }
  throw std::runtime_error("no backend factory '" + name + "' in this build");
}

std::vector<WindowCount> uninterrupted(const std::vector<Event>& events, StateBackend& backend) {
  ecommerce::AsyncActivityFunction function;
  Runner runner(backend, function, ecommerceKeyOf, ecommerceTimeOf, ecommerceRunnerOptions());
  VectorSource<Event> source(events);
  VectorCollector<WindowCount> sink;
  runner.run(source, sink);
  std::sort(sink.values.begin(), sink.values.end());
  return sink.values;
}

TEST(ExampleJob, MovesMemoryToRocksDbToRedisToMemoryThroughCheckpointsWithIdenticalOutput) {
  const auto events = ecommerce::generateEvents(16000, 21, 300);
  MemoryBackend reference;
  const auto expected = uninterrupted(events, reference);
  ASSERT_GT(expected.size(), 100u);

  std::vector<std::string> stages{"memory"};
#if ASYNCSTATE_TEST_WITH_ROCKSDB
  stages.push_back("rocksdb");
#endif
#if ASYNCSTATE_TEST_WITH_REDIS
  stages.push_back("redis");
#endif
  stages.push_back("memory");

  std::optional<Savepoint> checkpoint;
  std::vector<WindowCount> emitted;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    SCOPED_TRACE("stage " + std::to_string(i) + ": " + stages[i]);
    const bool lastStage = i + 1 == stages.size();
    auto stack = make(stages[i]);
    ecommerce::AsyncActivityFunction function;
    RunnerOptions o = ecommerceRunnerOptions();
    o.checkpointEvery = 1500;
    o.stopAfter = lastStage ? 0 : 4000;  // "killed" between checkpoints
    o.onCheckpoint = [&](const Savepoint& sp) { checkpoint = Savepoint::parse(sp.serialize()); };
    Runner runner(stack->backend(), function, ecommerceKeyOf, ecommerceTimeOf, o);
    VectorSource<Event> source(events);
    VectorCollector<WindowCount> sink;
    if (checkpoint) {
      const std::uint64_t committed = runner.restore(*checkpoint, source);
      ASSERT_LE(committed, emitted.size());
      sink.values.assign(emitted.begin(), emitted.begin() + static_cast<std::ptrdiff_t>(committed));
    }
    runner.run(source, sink);
    emitted = std::move(sink.values);
  }
  std::sort(emitted.begin(), emitted.end());
  EXPECT_TRUE(emitted == expected) << emitted.size() << " outputs vs " << expected.size() << " uninterrupted";
}

// Starts an outage when the job reaches `at` records, so that it hits a running job.
class OutageAt final : public Source<Event> {
 public:
  OutageAt(const std::vector<Event>& events, std::uint64_t at, LatencyInjectingBackend& faulty,
           std::chrono::milliseconds length)
      : inner_(events), at_(at), faulty_(faulty), length_(length) {}
  std::optional<Event> next() override {
    if (inner_.position() == at_) {
      const auto now = std::chrono::steady_clock::now();
      faulty_.addOutage(now, now + length_, OutageMode::Fail);
    }
    return inner_.next();
  }
  bool finished() const override { return inner_.finished(); }
  std::uint64_t position() const override { return inner_.position(); }
  void seek(std::uint64_t position) override { inner_.seek(position); }

 private:
  VectorSource<Event> inner_;
  std::uint64_t at_;
  LatencyInjectingBackend& faulty_;
  std::chrono::milliseconds length_;
};

TEST(ExampleJob, AStorageOutageDuringTheRunLosesNothing) {
  const auto events = ecommerce::generateEvents(8000, 5, 200);
  MemoryBackend reference;
  const auto expected = uninterrupted(events, reference);

  MemoryBackend memory;
  LatencyOptions latency;
  latency.distribution = LatencyDistribution::LogNormal;
  latency.latency = 200us;
  latency.seed = 3;
  LatencyInjectingBackend faulty(memory, latency);
  RetryOptions retry;
  retry.maxBackoff = 100ms;
  RetryingBackend backend(faulty, retry);

  ecommerce::AsyncActivityFunction function;
  Runner runner(backend, function, ecommerceKeyOf, ecommerceTimeOf, ecommerceRunnerOptions());
  OutageAt source(events, 3000, faulty, 2000ms);
  VectorCollector<WindowCount> sink;
  const auto start = std::chrono::steady_clock::now();
  runner.run(source, sink);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 2000ms) << "the job must have waited out the outage";
  std::sort(sink.values.begin(), sink.values.end());
  EXPECT_TRUE(sink.values == expected) << sink.values.size() << " outputs vs " << expected.size();
  EXPECT_EQ(savepointBytes(memory), savepointBytes(reference));
  EXPECT_GT(faulty.latencyStats().outageFailures, 0u);
  EXPECT_GT(backend.retryStats().retries, 0u);
  EXPECT_EQ(backend.retryStats().gaveUp, 0u);
}

TEST(ExampleJob, TheControllerLogsTheNoCacheWarningAtStart) {
  MemoryBackend memory;
  LatencyInjectingBackend remote(memory, {});
  CachingBackend noCache(remote, 0);
  CachingBackend cache(remote, 1 << 20);
  auto logOf = [](StateBackend& backend) {
    std::ostringstream log;
    ControllerOptions o;
    o.log = &log;
    AsyncExecutionController controller(backend, o);
    return log.str();
  };
  EXPECT_NE(logOf(remote).find("\nWARNING: no local state cache"), std::string::npos) << logOf(remote);
  EXPECT_NE(logOf(noCache).find("\nWARNING: local state cache is 0 bytes"), std::string::npos) << logOf(noCache);
  EXPECT_EQ(logOf(cache).find("WARNING"), std::string::npos) << logOf(cache);
}

}  // namespace
}  // namespace asyncstate::test
